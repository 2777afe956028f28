"""Backend fixtures: the real app (lifespan and all) on a fresh database, seeded with the demo world,
talking to a real simulator process for the health authority and the SMS provider."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.db import make_engine, make_session_factory
from app.main import create_app
from app.seed import DEMO_PASSWORD, seed_demo_world
from app.settings import Settings
from tests.app.harness import World, cheap_password_hash, open_db

SIM_READY_TIMEOUT_S = 30.0
AUTHORITY_KEY, SMS_KEY = "test-authority-key", "test-sms-key"
DEMO_PASSWORD_HASH = cheap_password_hash(DEMO_PASSWORD)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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

    def set_colour(self, code: str, colour: str) -> None:
        self.http.put(f"{self.authority_url}/health-codes/{code}", json={"colour": colour},
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
    http_port, hci_port = _free_port(), _free_port()
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


@pytest.fixture
async def backend(database_url: str, simulator: SimulatorProcess) -> AsyncIterator[Backend]:
    """The app with its lifespan running, seeded; requests go through ASGITransport."""
    engine = make_engine(database_url)
    async with make_session_factory(engine)() as session, session.begin():
        world = await seed_demo_world(session, dt.datetime.now(dt.UTC), DEMO_PASSWORD_HASH)
    await engine.dispose()
    for code in world["simulator_world"]["health_codes"]:
        simulator.set_colour(code["code"], code["colour"])
    settings = Settings(
        database_url=database_url, secret_key=secrets.token_hex(16),
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
