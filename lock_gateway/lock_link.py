"""One BLE link per served lock: find, connect, read INFO (clock offset, battery), subscribe to EVENTS.

Everything that touches one physical lock runs under that link's `mutex`. Only bleak's public API is
used here; the backend is whatever `BleStack` selected.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from lock_gateway.ble.stack import BleStack
from lock_gateway.clock import Clock
from lock_gateway.errors import LockNotFound, LockUnreachable
from lock_gateway.protocol import lock_frames
from lock_gateway.protocol.lock_frames import FrameError, InfoFrame

log = structlog.get_logger(__name__)

# Connect attempts inside one establish_connection call; the gateway's own deadline bounds them anyway.
CONNECT_ATTEMPTS = 2
# Closing a link: a controller that does not confirm by then has lost the link already.
DISCONNECT_TIMEOUT_S = 3.0

EventSink = Callable[[bytes, int], None]  # (raw event frame, received_at_ms by the gateway clock)


@dataclass(frozen=True)
class LinkTimeouts:
    connect_budget_s: float
    scan_timeout_s: float
    gatt_op_timeout_s: float


@dataclass
class LinkStatus:
    connected: bool = False
    rssi: int | None = None
    battery_pct: int | None = None
    clock_offset_ms: int | None = None  # lock clock minus gateway clock
    last_error: str = ""


class LockLink:
    def __init__(self, lock_id: uuid.UUID, ble_address: str, ble: BleStack, timeouts: LinkTimeouts,
                 clock: Clock, on_event: EventSink) -> None:
        self.lock_id = lock_id
        self.ble_address = ble_address.upper()
        self.mutex = asyncio.Lock()  # serialises every operation on this physical lock
        self.status = LinkStatus()
        self.link_lost = asyncio.Event()
        self._ble = ble
        self._timeouts = timeouts
        self._clock = clock
        self._on_event = on_event
        self._client: BleakClient | None = None

    @property
    def client(self) -> BleakClient | None:
        client = self._client
        return client if client is not None and client.is_connected else None

    def _log(self) -> structlog.typing.FilteringBoundLogger:
        return log.bind(lock_id=str(self.lock_id), address=self.ble_address)  # type: ignore[no-any-return]

    async def ensure_connected(self) -> BleakClient:
        """Return a live client, connecting first if needed. Call with `mutex` held."""
        client = self.client
        if client is not None:
            return client
        try:
            async with asyncio.timeout(self._timeouts.connect_budget_s):
                async with self._ble.connect_gate:
                    device = await self._find()
                    client = await self._connect(device)
                await self._start_session(client)
        except TimeoutError as exc:
            await self._abandon()
            raise self._record(LockUnreachable(
                f"lock {self.lock_id} ({self.ble_address}): "
                f"no link within {self._timeouts.connect_budget_s} s"
            )) from exc
        except BleakError as exc:
            await self._abandon()
            raise self._record(LockUnreachable(
                f"lock {self.lock_id} ({self.ble_address}): {type(exc).__name__}: {exc}"
            )) from exc
        return client

    async def _find(self) -> BLEDevice:
        seen: dict[str, int] = {}

        def is_our_lock(device: BLEDevice, adv: AdvertisementData) -> bool:
            if device.address.upper() != self.ble_address:
                return False
            seen["rssi"] = adv.rssi
            return True

        device = await BleakScanner.find_device_by_filter(
            is_our_lock, timeout=self._timeouts.scan_timeout_s, **self._ble.scanner_kwargs
        )
        if device is None:
            raise self._record(LockNotFound(
                f"lock {self.lock_id} ({self.ble_address}) not advertising "
                f"within {self._timeouts.scan_timeout_s} s"
            ))
        self.status.rssi = seen.get("rssi")
        return device

    async def _connect(self, device: BLEDevice) -> BleakClient:
        self.link_lost.clear()
        client = await establish_connection(
            BleakClient, device, f"lock-{self.lock_id.hex[:8]}",
            disconnected_callback=self._on_disconnected, max_attempts=CONNECT_ATTEMPTS,
            **self._ble.client_kwargs,
        )
        self._client = client
        return client

    async def _start_session(self, client: BleakClient) -> None:
        await self.refresh_info(client)
        async with asyncio.timeout(self._timeouts.gatt_op_timeout_s):
            await client.start_notify(lock_frames.EVENTS_CHAR_UUID, self._on_notification)
        self.status.connected = True
        self.status.last_error = ""
        self._log().info("lock_link_up", rssi=self.status.rssi, battery_pct=self.status.battery_pct,
                         clock_offset_ms=self.status.clock_offset_ms)

    async def refresh_info(self, client: BleakClient) -> InfoFrame:
        """Read INFO; the lock's clock is compared with the midpoint of the read. Call with `mutex` held."""
        sent_ms = self._clock.now_ms()
        async with asyncio.timeout(self._timeouts.gatt_op_timeout_s):
            raw = await client.read_gatt_char(lock_frames.INFO_CHAR_UUID)
        answered_ms = self._clock.now_ms()
        try:
            info = InfoFrame.decode(bytes(raw))
        except FrameError as exc:
            raise BleakError(f"INFO frame unreadable: {exc}") from exc
        if info.lock_id != self.lock_id:
            raise BleakError(f"a different lock ({info.lock_id}) answers at {self.ble_address}")
        self.status.clock_offset_ms = info.clock_ms - (sent_ms + answered_ms) // 2
        self.status.battery_pct = max(0, min(100, info.battery_pct))
        return info

    def _on_notification(self, _char: object, data: bytearray) -> None:
        self._on_event(bytes(data), self._clock.now_ms())

    def _on_disconnected(self, client: BleakClient) -> None:
        if client is not self._client:
            return  # a callback from a link we already replaced
        self.status.connected = False
        self.link_lost.set()
        self._log().info("lock_link_lost")

    def _record(self, error: Exception) -> Exception:
        self.status.last_error = str(error)[:300]
        self.status.connected = False
        return error

    async def _abandon(self) -> None:
        """Drop a half-made link (connected but INFO or subscription failed)."""
        client, self._client = self._client, None
        self.status.connected = False
        if client is not None:
            with contextlib.suppress(BleakError, TimeoutError):
                async with asyncio.timeout(DISCONNECT_TIMEOUT_S):
                    await client.disconnect()
        if self._client is None:  # a reconnect during the disconnect owns a fresh, live link: leave it be
            self.link_lost.set()

    async def drop(self, why: str) -> None:
        """Close the link on purpose (unusable after a lost answer, or lock unassigned)."""
        self.status.last_error = why[:300]
        await self._abandon()
