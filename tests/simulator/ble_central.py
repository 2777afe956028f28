"""A bumble host on the simulator's HCI port: what a gateway (or a test acting as one) sees over BLE."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bumble import att, hci
from bumble.core import UUID
from bumble.device import Connection, Device, Peer
from bumble.transport import open_transport

from lock_gateway.protocol.lock_frames import (
    CONTROL_CHAR_UUID,
    EVENTS_CHAR_UUID,
    INFO_CHAR_UUID,
    Action,
    CommandFrame,
    EventFrame,
    EventKind,
    InfoFrame,
)

STEP_TIMEOUT_S = 5.0  # any single HCI or GATT step on loopback


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def signed_unlock(lock_id: uuid.UUID, key: bytes, counter: int, expires_in_ms: int = 60_000) -> CommandFrame:
    return CommandFrame(lock_id, uuid.uuid4(), counter, now_ms() + expires_in_ms, Action.UNLOCK).signed(key)


@dataclass
class LockLink:
    connection: Connection
    peer: Peer
    events: asyncio.Queue[EventFrame] = field(default_factory=asyncio.Queue)

    def _char(self, uuid_str: str):  # type: ignore[no-untyped-def]
        return self.peer.get_characteristics_by_uuid(UUID(uuid_str))[0]

    async def read_info(self) -> InfoFrame:
        raw = await asyncio.wait_for(self.peer.read_value(self._char(INFO_CHAR_UUID)), STEP_TIMEOUT_S)
        return InfoFrame.decode(bytes(raw))

    async def subscribe(self) -> None:
        def on_value(value: bytes) -> None:
            self.events.put_nowait(EventFrame.decode(bytes(value)))

        await asyncio.wait_for(self.peer.subscribe(self._char(EVENTS_CHAR_UUID), on_value), STEP_TIMEOUT_S)

    async def write(self, frame: bytes) -> int | None:
        """Writes to CONTROL with response; returns the ATT error code, or None when accepted."""
        try:
            await asyncio.wait_for(
                self.peer.write_value(self._char(CONTROL_CHAR_UUID), frame, with_response=True), STEP_TIMEOUT_S
            )
        except att.ATT_Error as exc:
            return int(exc.error_code)
        return None

    async def next_event(self, timeout_s: float = STEP_TIMEOUT_S) -> EventFrame:
        return await asyncio.wait_for(self.events.get(), timeout_s)

    async def event_of_kind(self, kind: EventKind, timeout_s: float = STEP_TIMEOUT_S) -> list[EventFrame]:
        """Events up to and including the first one of `kind`."""
        seen: list[EventFrame] = []
        async with asyncio.timeout(timeout_s):
            while True:
                seen.append(await self.events.get())
                if seen[-1].kind is kind:
                    return seen


class Central:
    def __init__(self, device: Device) -> None:
        self.device = device

    @contextlib.asynccontextmanager
    async def link(self, ble_address: str) -> AsyncIterator[LockLink]:
        target = hci.Address(ble_address, hci.Address.RANDOM_DEVICE_ADDRESS)
        connection = await asyncio.wait_for(self.device.connect(target, timeout=STEP_TIMEOUT_S), STEP_TIMEOUT_S + 1)
        try:
            peer = Peer(connection)
            await asyncio.wait_for(peer.request_mtu(247), STEP_TIMEOUT_S)
            await asyncio.wait_for(peer.discover_all(), STEP_TIMEOUT_S)
            yield LockLink(connection, peer)
        finally:
            if connection.handle in self.device.connections:  # not already dropped by the lock
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.disconnect(), STEP_TIMEOUT_S)


@contextlib.asynccontextmanager
async def hci_central(spec: str) -> AsyncIterator[Central]:
    transport = await asyncio.wait_for(open_transport(spec), STEP_TIMEOUT_S)
    try:
        address = hci.Address.generate_static_address()
        device = Device.with_hci("test-central", address, transport.source, transport.sink)
        await asyncio.wait_for(device.power_on(), STEP_TIMEOUT_S)
        yield Central(device)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(transport.close(), STEP_TIMEOUT_S)
