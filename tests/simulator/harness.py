"""Runs `python -m simulator` as a real process on free loopback ports, with a generated world."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from app.demo import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
AUTHORITY_KEY = "authority-test-key"
SMS_KEY = "sms-test-key"


@dataclass(frozen=True)
class SeededLock:
    lock_id: uuid.UUID
    key: bytes = field(repr=False)
    label: str


def write_world(
    directory: Path, n_locks: int, clock_offsets_ms: dict[int, int] | None = None
) -> tuple[Path, list[SeededLock]]:
    locks = [SeededLock(uuid.uuid4(), os.urandom(32), f"{101 + i}") for i in range(n_locks)]
    offsets = clock_offsets_ms or {}
    world = {
        "locks": [
            {"lock_id": str(lock.lock_id), "key_hex": lock.key.hex(), "label": lock.label,
             "battery_pct": 80, "clock_offset_ms": offsets.get(i, 0)}
            for i, lock in enumerate(locks)
        ],
        "health_codes": [
            {"code": "HC-GREEN", "colour": "green"},
            {"code": "HC-YELLOW", "colour": "yellow"},
            {"code": "HC-RED", "colour": "red"},
        ],
        "authority_api_key": AUTHORITY_KEY,
        "sms_api_key": SMS_KEY,
    }
    path = directory / "world.json"
    path.write_text(json.dumps(world), encoding="utf-8")
    return path, locks


class SimulatorProcess:
    def __init__(self, world: Path, state_dir: Path, log_path: Path) -> None:
        self.world = world
        self.state_dir = state_dir
        self.log_path = log_path
        self.hci_port = free_port()
        self.http_port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.ready_line = ""

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def hci_spec(self) -> str:
        return f"tcp-client:127.0.0.1:{self.hci_port}"

    def start(self) -> SimulatorProcess:
        log = self.log_path.open("a", encoding="utf-8")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--world", str(self.world),
             "--hci-port", str(self.hci_port), "--http-port", str(self.http_port),
             "--state-dir", str(self.state_dir), "--adv-interval-ms", "20"],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log, text=True,
        )
        log.close()
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            self.ready_line = lines.get(timeout=READY_TIMEOUT_S).strip()
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"simulator not ready in {READY_TIMEOUT_S} s; see {self.log_path}") from None
        if not self.ready_line.startswith("simulator ready"):
            self.stop()
            raise RuntimeError(f"simulator failed to start: {self.ready_line!r}; see {self.log_path}")
        return self

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        return int(self.proc.returncode)
