"""A simulator restart must neither reuse event sequence numbers nor lower a lock's command counter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lock_gateway.protocol.lock_frames import ATT_REJECTION_BASE, EventKind, RejectReason, ble_address_for
from tests.simulator.ble_central import hci_central, signed_unlock
from tests.simulator.harness import SeededLock, SimulatorProcess, write_world

HTTP_TIMEOUT_S = 10.0


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[tuple[Path, list[SeededLock], list[SimulatorProcess]]]:
    world, locks = write_world(tmp_path, n_locks=1)
    started: list[SimulatorProcess] = []
    yield world, locks, started
    for sim in started:
        sim.stop()


async def test_restart_keeps_sequence_numbers_and_counters_monotonic(
    restartable: tuple[Path, list[SeededLock], list[SimulatorProcess]], tmp_path: Path
) -> None:
    world, (lock,), started = restartable
    first = SimulatorProcess(world, tmp_path / "state", tmp_path / "sim.log").start()
    started.append(first)
    command = signed_unlock(lock.lock_id, lock.key, counter=5)
    async with hci_central(first.hci_spec) as gateway, gateway.link(ble_address_for(lock.lock_id)) as link:
        await link.subscribe()
        assert await link.write(command.encode()) is None
        before = await link.next_event()
    assert first.stop() == 0  # SIGTERM is a clean exit

    second = SimulatorProcess(world, tmp_path / "state", tmp_path / "sim.log").start()
    started.append(second)
    async with hci_central(second.hci_spec) as gateway, gateway.link(ble_address_for(lock.lock_id)) as link:
        info = await link.read_info()
        await link.subscribe()
        replay_error = await link.write(command.encode())
        rejected = await link.next_event()
        assert await link.write(signed_unlock(lock.lock_id, lock.key, counter=6).encode()) is None
        unlocked = await link.next_event()
    async with httpx.AsyncClient(base_url=second.http_url, timeout=HTTP_TIMEOUT_S) as client:
        state = (await client.get(f"/locks/{lock.lock_id}")).json()

    assert before.seq == 1
    assert info.last_event_seq == 1
    assert replay_error == ATT_REJECTION_BASE + RejectReason.REPLAYED
    assert (rejected.kind, rejected.seq) == (EventKind.COMMAND_REJECTED, 2)
    assert (unlocked.kind, unlocked.seq) == (EventKind.UNLOCKED, 3)
    assert state["last_counter"] == 6
    assert (tmp_path / "state" / "simulator-lock-state.json").exists()


def test_a_world_file_with_a_bad_key_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "world.json").write_text(
        '{"locks": [{"lock_id": "6f1c1c0e-8a47-4a43-9d8e-2b1f4a3b5c6d", "key_hex": "abcd"}],'
        ' "authority_api_key": "a", "sms_api_key": "s"}',
        encoding="utf-8",
    )
    sim = SimulatorProcess(tmp_path / "world.json", tmp_path, tmp_path / "sim.log")
    with pytest.raises(RuntimeError, match="failed to start"):
        sim.start()
    assert sim.stop() == 1
    assert "key_hex must encode 32 bytes" in (tmp_path / "sim.log").read_text(encoding="utf-8")
