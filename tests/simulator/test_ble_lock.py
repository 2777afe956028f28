"""The virtual locks over the simulator's HCI port, with a bumble host playing the gateway and backend."""

from __future__ import annotations

import asyncio
import os
import uuid

import httpx
import pytest
from bumble import core, hci
from bumble.device import Device
from bumble.transport import open_transport

from lock_gateway.protocol.lock_frames import (
    ATT_REJECTION_BASE,
    CLOCK_SKEW_TOLERANCE_MS,
    COMMAND_FRAME_LEN,
    MAC_LEN,
    NO_COMMAND,
    Action,
    CommandFrame,
    EventKind,
    RejectReason,
    ble_address_for,
    compute_mac,
)
from tests.simulator.ble_central import hci_central, now_ms, signed_unlock
from tests.simulator.conftest import LOCK_CLOCK_OFFSET_MS
from tests.simulator.harness import SeededLock, SimulatorProcess

HTTP_TIMEOUT_S = 10.0


async def lock_state(sim: SimulatorProcess, lock: SeededLock) -> dict:
    async with httpx.AsyncClient(base_url=sim.http_url, timeout=HTTP_TIMEOUT_S) as client:
        response = await client.get(f"/locks/{lock.lock_id}")
        response.raise_for_status()
        return response.json()


async def test_info_reports_the_locks_own_clock_and_last_sequence(
    simulator: SimulatorProcess, locks: list[SeededLock]
) -> None:
    lock = locks[0]
    async with hci_central(simulator.hci_spec) as central, central.link(ble_address_for(lock.lock_id)) as link:
        info = await link.read_info()
    assert info.lock_id == lock.lock_id
    assert info.battery_pct == 80
    assert info.last_event_seq == 0
    assert abs(info.clock_ms - (now_ms() + LOCK_CLOCK_OFFSET_MS)) < 5_000


async def test_signed_unlock_is_acted_on_and_confirmed_by_signed_events(
    simulator: SimulatorProcess, locks: list[SeededLock]
) -> None:
    lock = locks[1]
    command = signed_unlock(lock.lock_id, lock.key, counter=1)
    async with hci_central(simulator.hci_spec) as central, central.link(ble_address_for(lock.lock_id)) as link:
        await link.subscribe()
        assert await link.write(command.encode()) is None
        unlocked = await link.next_event()
        assert (await lock_state(simulator, lock))["bolt"] == "unlocked"
        locked = await link.next_event(timeout_s=6.0)  # relock after 3 s

    assert unlocked.kind is EventKind.UNLOCKED
    assert unlocked.command_id == command.command_id
    assert unlocked.verify(lock.key)
    assert not unlocked.verify(os.urandom(32))
    assert (unlocked.seq, locked.seq) == (1, 2)
    assert locked.kind is EventKind.LOCKED
    assert locked.verify(lock.key)
    assert locked.occurred_at_ms - unlocked.occurred_at_ms >= 2_900
    state = await lock_state(simulator, lock)
    assert (state["actuations"], state["last_counter"], state["next_seq"], state["bolt"]) == (1, 1, 3, "locked")


async def test_replayed_forged_expired_and_malformed_commands_are_refused_and_reported(
    simulator: SimulatorProcess, locks: list[SeededLock]
) -> None:
    lock = locks[2]
    accepted = signed_unlock(lock.lock_id, lock.key, counter=10)
    forged = CommandFrame(lock.lock_id, uuid.uuid4(), 11, now_ms() + 60_000, Action.UNLOCK, os.urandom(MAC_LEN))
    expired = signed_unlock(lock.lock_id, lock.key, counter=12, expires_in_ms=-(CLOCK_SKEW_TOLERANCE_MS + 5_000))
    other_lock = signed_unlock(uuid.uuid4(), lock.key, counter=13)
    unsupported = bytearray(signed_unlock(lock.lock_id, lock.key, counter=14).body())
    unsupported[-1] = 0x7F  # an action this lock does not know, correctly signed
    unsupported_frame = bytes(unsupported) + compute_mac(lock.key, bytes(unsupported))
    cases = [
        (accepted.encode(), RejectReason.REPLAYED, accepted.command_id),
        (forged.encode(), RejectReason.BAD_MAC, forged.command_id),
        (expired.encode(), RejectReason.EXPIRED, expired.command_id),
        (other_lock.encode(), RejectReason.WRONG_LOCK, other_lock.command_id),
        (b"\x01\x01garbage", RejectReason.MALFORMED, NO_COMMAND),
        (unsupported_frame, RejectReason.UNSUPPORTED_ACTION, None),
    ]
    assert len(unsupported_frame) == COMMAND_FRAME_LEN

    async with hci_central(simulator.hci_spec) as central, central.link(ble_address_for(lock.lock_id)) as link:
        await link.subscribe()
        assert await link.write(accepted.encode()) is None
        assert (await link.next_event()).kind is EventKind.UNLOCKED
        for frame, reason, command_id in cases:
            assert await link.write(frame) == ATT_REJECTION_BASE + reason, reason.name
            event = await link.next_event()
            assert event.kind is EventKind.COMMAND_REJECTED, reason.name
            assert event.value == reason
            assert event.verify(lock.key)
            if command_id is not None:
                assert event.command_id == command_id

    state = await lock_state(simulator, lock)
    assert state["actuations"] == 1
    assert state["last_counter"] == 10
    assert [r["reason"] for r in state["rejections"]] == [reason.name for _, reason, _ in cases]


async def test_events_without_a_subscriber_are_buffered_and_flushed_in_order(
    simulator: SimulatorProcess, locks: list[SeededLock]
) -> None:
    lock = locks[3]
    async with httpx.AsyncClient(base_url=simulator.http_url, timeout=HTTP_TIMEOUT_S) as client:
        assert (await client.post(f"/locks/{lock.lock_id}/battery", json={"pct": 55})).status_code == 200
        assert (await client.post(f"/locks/{lock.lock_id}/battery", json={"pct": 54})).status_code == 200
        assert (await client.get(f"/locks/{lock.lock_id}")).json()["buffered_events"] == 2
    async with hci_central(simulator.hci_spec) as central, central.link(ble_address_for(lock.lock_id)) as link:
        await link.subscribe()
        first, second = await link.next_event(), await link.next_event()
    assert [(e.seq, e.kind, e.value, e.battery_pct) for e in (first, second)] == [
        (1, EventKind.BATTERY, 55, 55), (2, EventKind.BATTERY, 54, 54)
    ]
    assert all(e.verify(lock.key) for e in (first, second))


async def test_a_vanished_lock_drops_its_link_and_comes_back(
    simulator: SimulatorProcess, locks: list[SeededLock]
) -> None:
    lock = locks[4]
    async with httpx.AsyncClient(base_url=simulator.http_url, timeout=HTTP_TIMEOUT_S) as client:
        async with hci_central(simulator.hci_spec) as central:
            async with central.link(ble_address_for(lock.lock_id)) as link:
                dropped = asyncio.get_running_loop().create_future()
                link.connection.on("disconnection", lambda reason: dropped.set_result(reason))
                assert (await client.get(f"/locks/{lock.lock_id}")).json()["centrals"] == 1
                assert (await client.post(f"/locks/{lock.lock_id}/vanish")).json()["present"] is False
                assert await asyncio.wait_for(dropped, 3.0) == 0x08  # supervision timeout
            assert (await client.post(f"/locks/{lock.lock_id}/appear")).json()["present"] is True
            async with central.link(ble_address_for(lock.lock_id)) as link:
                assert (await link.read_info()).lock_id == lock.lock_id


async def wait_for_centrals(client: httpx.AsyncClient, lock: SeededLock, expected: int, timeout_s: float) -> None:
    # Polling is the only way to watch another process's state over HTTP.
    async with asyncio.timeout(timeout_s):
        while (await client.get(f"/locks/{lock.lock_id}")).json()["centrals"] != expected:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_a_gateway_that_drops_its_hci_connection_frees_the_locks(
    simulator: SimulatorProcess, locks: list[SeededLock]
) -> None:
    lock = locks[5]
    async with httpx.AsyncClient(base_url=simulator.http_url, timeout=HTTP_TIMEOUT_S) as client:
        transport = await asyncio.wait_for(open_transport(simulator.hci_spec), 5.0)
        device = Device.with_hci("crashing-gateway", hci.Address.generate_static_address(),
                                 transport.source, transport.sink)
        await asyncio.wait_for(device.power_on(), 5.0)
        target = hci.Address(ble_address_for(lock.lock_id), hci.Address.RANDOM_DEVICE_ADDRESS)
        await asyncio.wait_for(device.connect(target, timeout=5.0), 6.0)
        await wait_for_centrals(client, lock, 1, timeout_s=3.0)
        await asyncio.wait_for(transport.close(), 5.0)  # the gateway process dies: no disconnect sent
        await wait_for_centrals(client, lock, 0, timeout_s=3.0)
        async with hci_central(simulator.hci_spec) as central, central.link(ble_address_for(lock.lock_id)) as link:
            assert (await link.read_info()).lock_id == lock.lock_id


async def test_connecting_to_an_absent_lock_times_out_and_leaves_the_dongle_usable(
    simulator: SimulatorProcess, locks: list[SeededLock]
) -> None:
    absent, present = locks[6], locks[7]
    async with httpx.AsyncClient(base_url=simulator.http_url, timeout=HTTP_TIMEOUT_S) as client:
        await client.post(f"/locks/{absent.lock_id}/vanish")
        try:
            async with hci_central(simulator.hci_spec) as central:
                target = hci.Address(ble_address_for(absent.lock_id), hci.Address.RANDOM_DEVICE_ADDRESS)
                with pytest.raises((core.BaseBumbleError, TimeoutError)):
                    # bumble cancels the pending connect after 1 s; the dongle must complete the cancel.
                    await asyncio.wait_for(central.device.connect(target, timeout=1.0), 4.0)
                async with central.link(ble_address_for(present.lock_id)) as link:
                    assert (await link.read_info()).lock_id == present.lock_id
        finally:
            await client.post(f"/locks/{absent.lock_id}/appear")
