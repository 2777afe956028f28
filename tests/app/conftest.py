"""Backend fixtures: the real app (lifespan and all) on a fresh database, seeded with the demo world,
talking to a real simulator process for the health authority and the SMS provider.

Each test's database is a copy of a migrated, seeded template made once per session and engine
(see SeededTemplates): the same fresh-database-per-test isolation as tests/conftest.py's `database_url`.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from app.db import make_engine, make_session_factory
from app.demo import free_port
from app.main import create_app
from app.seed import DEMO_PASSWORD, seed_demo_world
from app.settings import Settings, async_url
from models.migrate import upgrade_to_head
from tests.app.harness import World, cheap_password_hash, open_db
from tests.conftest import PG_ENV, _admin

SIM_READY_TIMEOUT_S = 30.0
AUTHORITY_KEY, SMS_KEY = "test-authority-key", "test-sms-key"
# Seeded ID-number digests are keyed by it, so the seed and the app under test must share it.
TEST_SECRET_KEY = "test-secret-key-for-digests-0001"
DEMO_PASSWORD_HASH = cheap_password_hash(DEMO_PASSWORD)


@dataclass(frozen=True)
class SimulatorProcess:
    url: str
    # One client for the session: a new httpx.Client per call builds an SSL context (~0.1 s each).
    http: httpx.Client

    @property
    def authority_url(self) -> str:
        return f"{self.url}/authority/v1"

    @property
    def sms_url(self) -> str:
        return f"{self.url}/sms/v1"

    def set_colour(self, code: str, colour: str, holder_id_number: str | None = None) -> None:
        body = {"colour": colour}
        if holder_id_number is not None:
            body["holder_id_number"] = holder_id_number
        self.http.put(f"{self.authority_url}/health-codes/{code}", json=body,
                      headers={"X-Api-Key": AUTHORITY_KEY}).raise_for_status()

    def outage(self, service: str, down: bool) -> None:
        self.http.post(f"{self.url}/{service}/v1/outage", json={"down": down}).raise_for_status()

    def sms_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.http.get(f"{self.sms_url}/messages").json()["messages"]
        return messages


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    """A real simulator process with no locks: the backend tests use its authority and SMS provider."""
    workdir = tmp_path_factory.mktemp("sim")
    world = workdir / "world.json"
    world.write_text(json.dumps({"locks": [], "health_codes": [], "authority_api_key": AUTHORITY_KEY,
                                 "sms_api_key": SMS_KEY}))
    http_port, hci_port = free_port(), free_port()
    log = (workdir / "simulator.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--world", str(world), "--http-port", str(http_port),
         "--hci-port", str(hci_port), "--state-dir", str(workdir / "state")],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + SIM_READY_TIMEOUT_S
    while True:
        assert process.poll() is None, (workdir / "simulator.log").read_text()
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "simulator did not start"
        time.sleep(0.1)
    try:
        with httpx.Client(timeout=5, trust_env=False) as http:
            yield SimulatorProcess(url, http)
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@dataclass
class Backend:
    app: FastAPI
    client: httpx.AsyncClient
    world: dict[str, Any]  # seed output: "manifest" and "simulator_world"
    simulator: SimulatorProcess
    database_url: str

    @property
    def manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = self.world["manifest"]
        return manifest

    async def login(self, phone: str, password: str = "healthlock-demo") -> dict[str, str]:  # noqa: S107
        r = await self.client.post("/api/v1/auth/login", json={"phone": phone, "password": password})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    async def as_person(self, key: str) -> dict[str, str]:
        return await self.login(self.manifest["people"][key]["phone"])

    @property
    def gateway_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.manifest['gateway_token']}"}


@dataclass(frozen=True)
class SeededDatabase:
    url: str  # async SQLAlchemy URL of a fresh database of this test's own
    world: dict[str, Any]  # what seed_demo_world returned when the template was made


class SeededTemplates:
    """One migrated and seeded database per engine, made on first use and copied for every test.

    Migrating, seeding and telling the authority the codes cost ~0.7 s a test; copying a template costs
    a few ms on SQLite and ~0.2 s on PostgreSQL. Every test still gets a database of its own. The seeded
    ids, keys and health codes are the same in every copy: a test that changes a colour at the
    authority must put it back.
    """

    def __init__(self, workdir: Path, simulator: SimulatorProcess) -> None:
        self._workdir, self._simulator = workdir, simulator
        self._made: dict[str, SeededDatabase] = {}

    def get(self, kind: str, base_url: str | None) -> SeededDatabase:
        if kind not in self._made:
            url = (f"sqlite+aiosqlite:///{self._workdir / 'template.db'}" if kind == "sqlite"
                   else make_url(async_url(base_url or "")).set(database=f"hl_tmpl_{uuid.uuid4().hex[:12]}")
                   .render_as_string(hide_password=False))
            if kind != "sqlite":
                asyncio.run(_admin(_admin_url(url), f'CREATE DATABASE "{make_url(url).database}"'))
            upgrade_to_head(url)
            world = asyncio.run(_seed(url))
            for code in world["simulator_world"]["health_codes"]:
                self._simulator.set_colour(code["code"], code["colour"], code["holder_id_number"])
            self._made[kind] = SeededDatabase(url, world)
        return self._made[kind]

    def drop_all(self) -> None:
        for kind, made in self._made.items():
            if kind != "sqlite":
                asyncio.run(_admin(_admin_url(made.url), f'DROP DATABASE IF EXISTS "{make_url(made.url).database}"'))


async def _seed(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            return await seed_demo_world(session, dt.datetime.now(dt.UTC), TEST_SECRET_KEY, DEMO_PASSWORD_HASH)
    finally:
        await engine.dispose()  # on SQLite this checkpoints the WAL into the file we copy


def _admin_url(url: str) -> str:
    return make_url(url).set(database="postgres").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def seeded_templates(tmp_path_factory: pytest.TempPathFactory,
                     simulator: SimulatorProcess) -> Iterator[SeededTemplates]:
    templates = SeededTemplates(tmp_path_factory.mktemp("templates"), simulator)
    try:
        yield templates
    finally:
        templates.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def seeded_database(request: pytest.FixtureRequest, tmp_path: Path,
                    seeded_templates: SeededTemplates) -> Iterator[SeededDatabase]:
    """Like tests/conftest.py's `database_url` (fresh, at the newest schema, on both engines), but seeded."""
    if request.param == "sqlite":
        template = seeded_templates.get("sqlite", None)
        target = tmp_path / "healthlock.db"
        shutil.copyfile(make_url(template.url).database or "", target)
        yield SeededDatabase(f"sqlite+aiosqlite:///{target}", template.world)
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL not configured: set {PG_ENV}=postgresql://user@host:5432/db to run these cases")
    template = seeded_templates.get("postgresql", base)
    url = make_url(template.url).set(database=f"hl_test_{uuid.uuid4().hex[:12]}").render_as_string(hide_password=False)
    name = make_url(url).database
    asyncio.run(_admin(_admin_url(url), f'CREATE DATABASE "{name}" TEMPLATE "{make_url(template.url).database}"'))
    try:
        yield SeededDatabase(url, template.world)
    finally:
        asyncio.run(_admin(_admin_url(url), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def backend(seeded_database: SeededDatabase, simulator: SimulatorProcess) -> AsyncIterator[Backend]:
    """The app with its lifespan running on a fresh seeded database; requests go through ASGITransport."""
    database_url, world = seeded_database.url, copy.deepcopy(seeded_database.world)
    settings = Settings(
        database_url=database_url, secret_key=TEST_SECRET_KEY,
        health_authority_url=simulator.authority_url, health_authority_api_key=AUTHORITY_KEY,
        sms_provider_url=simulator.sms_url, sms_api_key=SMS_KEY, delivery_poll_s=0.05,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://backend") as client:
            yield Backend(app, client, world, simulator, database_url)
    simulator.outage("authority", False)
    simulator.outage("sms", False)




@pytest.fixture
async def world(backend: Backend) -> AsyncIterator[World]:
    """The backend plus a session factory on its database and signing keys for its locks."""
    async with open_db(backend.database_url) as db:
        yield World(backend, db)
