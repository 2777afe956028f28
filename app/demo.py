"""Start the whole system as separate OS processes on loopback: simulator, backend, gateway.

Used by `healthlock demo` and by the end-to-end tests, so both exercise the same wiring.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.db import make_engine, make_session_factory
from app.seed import seed_demo_world, write_private_json
from app.settings import async_url
from models.migrate import upgrade_to_head

READY_TIMEOUT_S = 60.0  # first start imports bumble and FastAPI: a few seconds on a slow machine
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


@dataclass
class DemoStack:
    workdir: Path
    database_url: str | None = None  # default: a fresh SQLite file in workdir
    with_gateway: bool = True  # the benchmark measures the backend alone
    children: list[Child] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    backend_url: str = ""
    simulator_url: str = ""
    db_url: str = ""  # the database in use, once started
    secret_key: str = field(default="", repr=False)  # the backend's HEALTHLOCK_SECRET_KEY, made per run

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        db_url = self.database_url or f"sqlite+aiosqlite:///{self.workdir / 'healthlock.db'}"
        if self.database_url is None:
            for suffix in ("", "-wal", "-shm"):
                (self.workdir / f"healthlock.db{suffix}").unlink(missing_ok=True)
        self.db_url = async_url(db_url)
        upgrade_to_head(self.db_url)
        self.secret_key = os.urandom(16).hex()
        seeded = asyncio.run(_seed(self.db_url, self.secret_key))
        world_path, manifest_path = self.workdir / "simulator-world.json", self.workdir / "demo-manifest.json"
        write_private_json(world_path, seeded["simulator_world"])
        sim_http, hci, api = free_port(), free_port(), free_port()
        self.simulator_url, self.backend_url = f"http://127.0.0.1:{sim_http}", f"http://127.0.0.1:{api}"
        self.manifest = {**seeded["manifest"], "backend_url": self.backend_url, "simulator_url": self.simulator_url}
        write_private_json(manifest_path, self.manifest)
        state_dir = self.workdir / "simulator-state"
        if state_dir.exists():
            for stale in state_dir.iterdir():
                stale.unlink()
        try:
            self._spawn("simulator", [sys.executable, "-m", "simulator", "--world", str(world_path),
                                      "--hci-port", str(hci), "--http-port", str(sim_http),
                                      "--state-dir", str(state_dir)], {}, ready_line="simulator ready")
            self._spawn("backend", [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
                                    "--host", "127.0.0.1", "--port", str(api), "--log-level", "warning"],
                        self._backend_env(db_url, sim_http), ready_url=f"{self.backend_url}/healthz")
            if not self.with_gateway:
                return
            self._spawn("gateway", [sys.executable, "-m", "lock_gateway"], {
                "HEALTHLOCK_GATEWAY_BACKEND_URL": self.backend_url,
                "HEALTHLOCK_GATEWAY_TOKEN": self.manifest["gateway_token"],
                "HEALTHLOCK_GATEWAY_QUEUE_PATH": str(self.workdir / "gateway-queue.db"),
                "HEALTHLOCK_GATEWAY_BLE_BACKEND": "bumble",
                "HEALTHLOCK_GATEWAY_BUMBLE_HCI": f"tcp-client:127.0.0.1:{hci}",
            }, ready_line="gateway ready")
        except BaseException:
            self.stop()
            raise

    def _backend_env(self, db_url: str, sim_http: int) -> dict[str, str]:
        return {
            "HEALTHLOCK_DATABASE_URL": db_url,
            "HEALTHLOCK_SECRET_KEY": self.secret_key,
            "HEALTHLOCK_HEALTH_AUTHORITY_URL": f"http://127.0.0.1:{sim_http}/authority/v1",
            "HEALTHLOCK_HEALTH_AUTHORITY_API_KEY": self.manifest["authority_api_key"],
            "HEALTHLOCK_SMS_PROVIDER_URL": f"http://127.0.0.1:{sim_http}/sms/v1",
            "HEALTHLOCK_SMS_API_KEY": self.manifest["sms_api_key"],
        }

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], *, ready_line: str | None = None,
               ready_url: str | None = None) -> Child:
        log_path = self.workdir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **env, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
            )
        child = Child(name, process, log_path)
        self.children.append(child)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log_tail = child.log_text()[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode} before it was ready:\n{log_tail}")
            if ready_line and ready_line in child.log_text():
                return child
            if ready_url and _answers(ready_url):
                return child
            time.sleep(0.1)
        raise TimeoutError(f"{name} was not ready within {READY_TIMEOUT_S:.0f} s:\n{child.log_text()[-3000:]}")

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        for child in reversed(self.children):
            try:
                child.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(STOP_TIMEOUT_S)
        self.children.clear()

    def __enter__(self) -> DemoStack:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


async def _seed(db_url: str, secret_key: str) -> dict[str, Any]:
    engine = make_engine(db_url)
    try:
        async with make_session_factory(engine)() as session, session.begin():
            return await seed_demo_world(session, dt.datetime.now(dt.UTC), secret_key)
    finally:
        await engine.dispose()
