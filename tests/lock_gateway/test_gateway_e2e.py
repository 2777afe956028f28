"""The gateway process end to end: simulator locks over BLE, a fake backend over HTTP, real processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lock_gateway.protocol.gateway_api import CommandOutcome, CommandResult, LockAssignment
from lock_gateway.protocol.lock_frames import EventKind, RejectReason
from tests.lock_gateway.conftest import REPO_ROOT, GatewayStarter, SimLock, Simulator, stop_process, wait_until
from tests.lock_gateway.fake_backend import FakeBackend, now_ms

pytestmark = pytest.mark.e2e

RESULT_TIMEOUT_S = 15.0
COMMAND_TTL_MS = 60_000


def _assign(backend: FakeBackend, *locks: SimLock) -> None:
    backend.assignments = [LockAssignment(lock_id=lk.lock_id, ble_address=lk.address) for lk in locks]


def _linked(backend: FakeBackend, lock: SimLock) -> bool:
    beats = list(backend.heartbeats)
    return bool(beats) and any(p.lock_id == lock.lock_id and p.connected for p in beats[-1].locks)


def _send(backend: FakeBackend, sim: Simulator, lock: SimLock, *, bad_key: bool = False,
          expires_at_ms: int | None = None) -> CommandResult:
    expires = expires_at_ms if expires_at_ms is not None else now_ms() + COMMAND_TTL_MS
    command_id, frame = sim.command(lock, expires, key=bytes(32) if bad_key else None)
    backend.send(lock.lock_id, lock.address, frame, command_id, expires)
    wait_until(lambda: command_id in backend.results, RESULT_TIMEOUT_S, f"result of {command_id}")
    return backend.results[command_id]


def test_signed_command_is_acknowledged_and_bad_mac_is_rejected(
    simulator: Simulator, fake_backend: FakeBackend, start_gateway: GatewayStarter
) -> None:
    lock = simulator.locks[0]
    _assign(fake_backend, lock)
    start_gateway()
    wait_until(lambda: _linked(fake_backend, lock), RESULT_TIMEOUT_S, "lock linked in a heartbeat")

    good = _send(fake_backend, simulator, lock)
    assert good.outcome is CommandOutcome.ACKNOWLEDGED
    assert simulator.lock_view(lock)["actuations"] == 1

    bad = _send(fake_backend, simulator, lock, bad_key=True)
    assert bad.outcome is CommandOutcome.REJECTED_BY_LOCK
    assert bad.reject_reason == RejectReason.BAD_MAC
    assert simulator.lock_view(lock)["actuations"] == 1

    presence = fake_backend.heartbeats[-1].locks[0]
    assert presence.battery_pct == 77
    assert presence.lock_clock_offset_ms is not None
    assert abs(presence.lock_clock_offset_ms) < 1_000


def test_command_for_an_absent_lock_is_not_delivered(
    simulator: Simulator, fake_backend: FakeBackend, start_gateway: GatewayStarter
) -> None:
    present, absent = simulator.locks
    _assign(fake_backend, present)
    start_gateway()
    result = _send(fake_backend, simulator, SimLock(absent.lock_id, absent.key, "C3:00:00:00:00:42"))
    assert result.outcome is CommandOutcome.NOT_DELIVERED
    assert "nothing reached the lock" in result.detail


def test_expired_command_is_not_written(
    simulator: Simulator, fake_backend: FakeBackend, start_gateway: GatewayStarter
) -> None:
    lock = simulator.locks[0]
    _assign(fake_backend, lock)
    start_gateway()
    wait_until(lambda: _linked(fake_backend, lock), RESULT_TIMEOUT_S, "lock linked in a heartbeat")
    result = _send(fake_backend, simulator, lock, expires_at_ms=now_ms() - 1_000)
    assert result.outcome is CommandOutcome.NOT_DELIVERED
    assert result.detail == "expired before delivery"
    view = simulator.lock_view(lock)
    assert view["actuations"] == 0
    assert view["rejections"] == []
    assert view["last_counter"] == 0


def test_door_events_reach_the_backend_once_each(
    simulator: Simulator, fake_backend: FakeBackend, start_gateway: GatewayStarter
) -> None:
    lock = simulator.locks[0]
    _assign(fake_backend, lock)
    start_gateway()
    wait_until(lambda: _linked(fake_backend, lock), RESULT_TIMEOUT_S, "lock linked in a heartbeat")
    simulator.door(lock, "open_inside")
    simulator.door(lock, "close")
    emitted = lambda: int(simulator.lock_view(lock)["next_seq"]) - 1  # noqa: E731
    wait_until(lambda: emitted() >= 2 and len(fake_backend.events) == emitted(), RESULT_TIMEOUT_S,
               "every event the lock emitted")
    time.sleep(0.5)  # let any duplicate upload arrive before counting
    frames = [f for _, f in sorted(fake_backend.events.items(), key=lambda kv: kv[0][1])]
    assert [f.seq for f in frames] == list(range(1, emitted() + 1))
    kinds = [f.kind for f in frames]
    assert kinds.index(EventKind.DOOR_OPENED_INSIDE) < kinds.index(EventKind.DOOR_CLOSED)
    assert fake_backend.event_uploads == len(frames)  # once each: no duplicate uploads
    assert all(f.verify(lock.key) for f in frames)


def test_events_wait_out_a_backend_outage_and_a_gateway_restart(
    simulator: Simulator, fake_backend: FakeBackend, start_gateway: GatewayStarter, tmp_path: Path
) -> None:
    queue_path = tmp_path / "gateway-queue.sqlite3"
    lock = simulator.locks[0]
    _assign(fake_backend, lock)
    gateway = start_gateway()
    wait_until(lambda: _linked(fake_backend, lock), RESULT_TIMEOUT_S, "lock linked in a heartbeat")
    beats_before = len(fake_backend.heartbeats)

    fake_backend.down = True
    simulator.door(lock, "open_inside")
    simulator.door(lock, "close")
    wait_until(lambda: simulator.lock_view(lock)["buffered_events"] == 0, RESULT_TIMEOUT_S,
               "lock handed its events to the gateway")
    time.sleep(1.0)  # several failed uploads
    assert fake_backend.events == {}
    assert stop_process(gateway) == 0  # SIGTERM: clean exit
    emitted = int(simulator.lock_view(lock)["next_seq"]) - 1
    with sqlite3.connect(queue_path) as db:  # the events are on the gateway's disk, not in the lock
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == emitted

    fake_backend.down = False
    start_gateway()
    assert emitted >= 2
    wait_until(lambda: len(fake_backend.events) == emitted, RESULT_TIMEOUT_S, "queued events after restart")
    assert {seq for _, seq in fake_backend.events} == set(range(1, emitted + 1))
    wait_until(lambda: len(fake_backend.heartbeats) > beats_before and
               fake_backend.heartbeats[-1].queued_events == 0, RESULT_TIMEOUT_S, "empty queue reported")


def test_a_refused_token_stops_the_gateway_with_a_clear_error(fake_backend: FakeBackend, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HEALTHLOCK_GATEWAY_BACKEND_URL": fake_backend.url,
        "HEALTHLOCK_GATEWAY_TOKEN": "revoked-token-value",
        "HEALTHLOCK_GATEWAY_QUEUE_PATH": str(tmp_path / "q.sqlite3"),
        "HEALTHLOCK_GATEWAY_BLE_BACKEND": "bumble",
        "HEALTHLOCK_GATEWAY_BUMBLE_HCI": "tcp-client:127.0.0.1:9",  # nothing there: BLE is not the point
    }
    done = subprocess.run([sys.executable, "-m", "lock_gateway"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 3
    assert "gateway ready" not in done.stdout
    assert "gateway_token_refused_stopping" in done.stderr
    assert "revoked-token-value" not in done.stderr  # the token never reaches the log
