"""Real parts for gateway tests: the project's simulator process, a contract-following fake backend
served by uvicorn on loopback, and the gateway itself as `python -m lock_gateway`."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn

from app.demo import free_port
from lock_gateway.protocol.lock_frames import Action, CommandFrame, ble_address_for
from tests.lock_gateway.fake_backend import FakeBackend, create_fake_backend_app

REPO_ROOT = Path(__file__).resolve().parents[2]
PROCESS_START_TIMEOUT_S = 20.0  # a cold Python start plus bumble/uvicorn imports on a slow CI box
PROCESS_STOP_TIMEOUT_S = 10.0


def wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout_s: float) -> str:
    """Read stdout until a line starting with `prefix` (the process's ready line)."""
    found: list[str] = []

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(prefix):
                found.append(line.strip())
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not found:
        proc.kill()
        raise AssertionError(f"no {prefix!r} line within {timeout_s} s (exit code {proc.poll()})")
    return found[0]


def stop_process(proc: subprocess.Popen[str]) -> int:
    proc.terminate()
    try:
        return proc.wait(PROCESS_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(PROCESS_STOP_TIMEOUT_S)
        raise AssertionError("process did not stop on SIGTERM") from None


@dataclass(frozen=True)
class SimLock:
    lock_id: uuid.UUID
    key: bytes
    address: str


@dataclass
class Simulator:
    hci_spec: str
    http_url: str
    locks: list[SimLock]
    _counter: int = field(default=0)

    def lock_view(self, lock: SimLock) -> dict[str, object]:
        reply = httpx.get(f"{self.http_url}/locks/{lock.lock_id}", timeout=5)
        reply.raise_for_status()
        return dict(reply.json())

    def door(self, lock: SimLock, action: str) -> None:
        httpx.post(f"{self.http_url}/locks/{lock.lock_id}/door", json={"action": action},
                   timeout=5).raise_for_status()

    def command(self, lock: SimLock, expires_at_ms: int, key: bytes | None = None) -> tuple[uuid.UUID, bytes]:
        """A command frame signed as the backend would (wrong key -> bad MAC)."""
        self._counter += 1
        command_id = uuid.uuid4()
        frame = CommandFrame(lock.lock_id, command_id, self._counter, expires_at_ms, Action.UNLOCK)
        return command_id, frame.signed(key or lock.key).encode()


def _write_world(path: Path, lock_count: int) -> list[SimLock]:
    locks = [SimLock(uuid.uuid4(), secrets.token_bytes(32), "") for _ in range(lock_count)]
    locks = [SimLock(lk.lock_id, lk.key, ble_address_for(lk.lock_id)) for lk in locks]
    world = {
        "locks": [{"lock_id": str(lk.lock_id), "key_hex": lk.key.hex(), "label": f"room {i}",
                   "battery_pct": 77, "clock_offset_ms": 0} for i, lk in enumerate(locks)],
        "health_codes": [], "authority_api_key": "k", "sms_api_key": "k",
    }
    path.write_text(json.dumps(world))
    return locks


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Simulator]:
    locks = _write_world(tmp_path / "world.json", lock_count=2)
    hci_port, http_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "--world", str(tmp_path / "world.json"),
         "--hci-port", str(hci_port), "--http-port", str(http_port), "--state-dir", str(tmp_path)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=open(tmp_path / "simulator.log", "w"), text=True,
    )
    try:
        wait_for_line(proc, "simulator ready", PROCESS_START_TIMEOUT_S)
        yield Simulator(f"tcp-client:127.0.0.1:{hci_port}", f"http://127.0.0.1:{http_port}", locks)
    finally:
        stop_process(proc)


@pytest.fixture
def fake_backend() -> Iterator[FakeBackend]:
    state = FakeBackend()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_fake_backend_app(state), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + PROCESS_START_TIMEOUT_S
    while not server.started:
        assert time.monotonic() < deadline, "fake backend did not start"
        time.sleep(0.02)
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        server.should_exit = True
        thread.join(PROCESS_STOP_TIMEOUT_S)


GatewayStarter = Callable[[], subprocess.Popen[str]]


@pytest.fixture
def start_gateway(tmp_path: Path, simulator: Simulator, fake_backend: FakeBackend) -> Iterator[GatewayStarter]:
    procs: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        env = {
            **os.environ,
            "HEALTHLOCK_GATEWAY_BACKEND_URL": fake_backend.url,
            "HEALTHLOCK_GATEWAY_TOKEN": fake_backend.token,
            "HEALTHLOCK_GATEWAY_QUEUE_PATH": str(tmp_path / "gateway-queue.sqlite3"),
            "HEALTHLOCK_GATEWAY_BLE_BACKEND": "bumble",
            "HEALTHLOCK_GATEWAY_BUMBLE_HCI": simulator.hci_spec,
            "HEALTHLOCK_GATEWAY_LONG_POLL_MS": "1000",
            "HEALTHLOCK_GATEWAY_HEARTBEAT_S": "0.5",
            "HEALTHLOCK_GATEWAY_SCAN_TIMEOUT_S": "1.5",
            "HEALTHLOCK_GATEWAY_CONNECT_BUDGET_S": "3",
            "HEALTHLOCK_GATEWAY_RETRY_CAP_S": "1",
            "HEALTHLOCK_GATEWAY_LOG_LEVEL": "DEBUG",
        }
        log = open(tmp_path / f"gateway-{len(procs)}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "lock_gateway"], cwd=REPO_ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=log, text=True)
        procs.append(proc)
        wait_for_line(proc, "gateway ready", PROCESS_START_TIMEOUT_S)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                stop_process(proc)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)
