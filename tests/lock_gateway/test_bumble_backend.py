"""The bumble bleak backend, driven only through bleak's public API, against the simulator's locks."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.exc import BleakError, BleakGATTProtocolError
from bumble.hci import Address

from lock_gateway.ble.stack import BleStack, bumble_stack
from lock_gateway.protocol import lock_frames
from lock_gateway.protocol.lock_frames import EventFrame, EventKind, InfoFrame, RejectReason
from tests.lock_gateway.conftest import Simulator

STEP_TIMEOUT_S = 10.0


async def _up(simulator: Simulator) -> tuple[BleStack, asyncio.Task[None]]:
    stack = bumble_stack(simulator.hci_spec)
    keeper = asyncio.create_task(stack.run())
    async with asyncio.timeout(STEP_TIMEOUT_S):
        await stack.wait_up()
    return stack, keeper


async def _down(keeper: asyncio.Task[None], stack: BleStack) -> None:
    keeper.cancel()
    await asyncio.gather(keeper, return_exceptions=True)
    await stack.close()


async def test_connects_reads_writes_and_notifies_through_bleak(simulator: Simulator) -> None:
    stack, keeper = await _up(simulator)
    lock = simulator.locks[0]
    notifications: asyncio.Queue[bytes] = asyncio.Queue()
    try:
        async with asyncio.timeout(STEP_TIMEOUT_S):
            device = await BleakScanner.find_device_by_address(lock.address, timeout=3, **stack.scanner_kwargs)
            assert device is not None
            async with BleakClient(device, timeout=3, **stack.client_kwargs) as client:
                info = InfoFrame.decode(bytes(await client.read_gatt_char(lock_frames.INFO_CHAR_UUID)))
                assert info.lock_id == lock.lock_id
                assert info.battery_pct == 77
                await client.start_notify(lock_frames.EVENTS_CHAR_UUID,
                                          lambda _c, data: notifications.put_nowait(bytes(data)))

                _, good = simulator.command(lock, int(time.time() * 1000) + 60_000)
                await client.write_gatt_char(lock_frames.CONTROL_CHAR_UUID, good, response=True)
                unlocked = EventFrame.decode(await notifications.get())
                assert unlocked.kind is EventKind.UNLOCKED
                assert unlocked.verify(lock.key)

                _, forged = simulator.command(lock, int(time.time() * 1000) + 60_000, key=bytes(32))
                with pytest.raises(BleakGATTProtocolError) as refused:
                    await client.write_gatt_char(lock_frames.CONTROL_CHAR_UUID, forged, response=True)
                assert refused.value.args[0] == lock_frames.ATT_REJECTION_BASE + RejectReason.BAD_MAC
    finally:
        await _down(keeper, stack)


def _ghost(stack: BleStack) -> BLEDevice:
    """A device nobody advertises, handed straight to the client: exercises the LE connect itself."""
    address = "C3:99:99:99:99:99"
    return BLEDevice(address, None, (stack.adapter, Address(address)))


async def test_connect_timeout_is_enforced_by_the_backend(simulator: Simulator) -> None:
    stack, keeper = await _up(simulator)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await BleakClient(_ghost(stack), timeout=1.0, **stack.client_kwargs).connect()
        assert time.monotonic() - started < 2.0
        async with asyncio.timeout(STEP_TIMEOUT_S):
            async with BleakClient(simulator.locks[1].address, timeout=3, **stack.client_kwargs) as client:
                assert client.is_connected  # the initiator was freed by the timeout
    finally:
        await _down(keeper, stack)


async def test_cancelled_connect_frees_the_initiator(simulator: Simulator) -> None:
    stack, keeper = await _up(simulator)
    try:
        attempt = asyncio.create_task(BleakClient(_ghost(stack), timeout=30, **stack.client_kwargs).connect())
        await asyncio.sleep(0.3)
        attempt.cancel()
        await asyncio.gather(attempt, return_exceptions=True)
        async with asyncio.timeout(STEP_TIMEOUT_S):
            async with BleakClient(simulator.locks[0].address, timeout=3, **stack.client_kwargs) as client:
                assert client.is_connected
    finally:
        await _down(keeper, stack)


async def test_link_lost_mid_write_is_a_bleak_error_not_a_cancellation(simulator: Simulator) -> None:
    """bumble cancels its pending ATT transaction on disconnect; bleak's caller must see a lost link."""
    stack, keeper = await _up(simulator)
    lock = simulator.locks[0]
    try:
        async with asyncio.timeout(STEP_TIMEOUT_S):
            device = await BleakScanner.find_device_by_address(lock.address, timeout=3, **stack.scanner_kwargs)
            assert device is not None
            client = BleakClient(device, timeout=3, **stack.client_kwargs)
            await client.connect()
            async with httpx.AsyncClient(timeout=5) as knobs:
                armed = await knobs.post(f"{simulator.http_url}/locks/{lock.lock_id}/drop-link-after-write")
                armed.raise_for_status()
            _, good = simulator.command(lock, int(time.time() * 1000) + 60_000)
            with pytest.raises(BleakError, match="link was lost"):
                await client.write_gatt_char(lock_frames.CONTROL_CHAR_UUID, good, response=True)
            assert not client.is_connected
        assert simulator.lock_view(lock)["actuations"] == 1  # the lock did act: the answer was what got lost
    finally:
        await _down(keeper, stack)
