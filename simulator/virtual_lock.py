"""One virtual lock on the air: a bumble controller + host + device serving the lock's GATT profile.

    INFO     read                 InfoFrame: lock id, battery, the lock's own clock, last event seq
    CONTROL  write with response  CommandFrame; a refusal fails the write with ATT_REJECTION_BASE + reason
    EVENTS   notify               EventFrame, one per notification

Events go out in sequence order to every subscribed central. While no central is subscribed they wait in
a bounded buffer (EVENT_BUFFER_LEN, oldest dropped: a gap the backend detects) and are flushed, in
order, when a central writes the EVENTS CCCD. Centrals must exchange an ATT MTU of at least
EVENT_FRAME_LEN + 3 first, as any client of this profile must: a 23-byte default MTU truncates frames.

The lock accepts MAX_CENTRALS links at once and keeps advertising while it has fewer, so a second
("attacker") central can reach a lock the gateway holds a link to. Adverts carry the name, the 128-bit
service UUID and the battery percent in manufacturer data.

`vanish()` takes the lock out of range (both ends see a supervision timeout, adverts go nowhere);
`appear()` brings it back. Its firmware keeps running meanwhile: door events pile up in the buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from bumble import att, gatt, hci
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from lock_gateway.protocol.lock_frames import (
    ATT_REJECTION_BASE,
    CONTROL_CHAR_UUID,
    EVENTS_CHAR_UUID,
    INFO_CHAR_UUID,
    LOCK_SERVICE_UUID,
    EventFrame,
    InfoFrame,
    advertised_name,
    ble_address_for,
)
from simulator.counter_store import CounterStore
from simulator.lock_firmware import (
    DOOR_CLOSE_AFTER_S,
    RELOCK_AFTER_S,
    CommandRejected,
    LockFirmware,
)
from simulator.radio import RadioController
from simulator.world import LockSpec

log = logging.getLogger(__name__)

MAX_CENTRALS = 2  # the gateway plus one more (a tester's attacker), as cheap BLE lock chips allow
EVENT_BUFFER_LEN = 256  # about a week of door traffic for one room; older events become a visible gap
NOTIFY_TIMEOUT_S = 2.0  # one notification is a local call on the emulated link; more means it is stuck
HCI_STEP_TIMEOUT_S = 5.0  # power-on or an advertising change; bumble's own HCI waits are unbounded
LINK_RETURN_AFTER_S = 1.0  # drop-link-after-write knob: back in range soon enough for one reconnect
MANUFACTURER_ID = 0xFFFF  # Bluetooth SIG id reserved for tests: we are not a registered vendor
_SUPERVISION_TIMEOUT = hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR


class _OneShotTimer:
    """A restartable timer: starting it again replaces the pending expiry."""

    def __init__(self) -> None:
        self._handle: asyncio.TimerHandle | None = None

    def start(self, delay_s: float, callback: Callable[[], None]) -> None:
        self.cancel()
        self._handle = asyncio.get_running_loop().call_later(delay_s, self._fire, callback)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self, callback: Callable[[], None]) -> None:
        self._handle = None
        callback()


class VirtualLock:
    def __init__(self, spec: LockSpec, link: LocalLink, store: CounterStore, adv_interval_ms: float) -> None:
        self.spec = spec
        self.lock_id = spec.lock_id
        self.address = ble_address_for(spec.lock_id)
        self.name = advertised_name(spec.lock_id)
        self.present = True
        self._link = link
        self._limbo = LocalLink()  # type: ignore[no-untyped-call]  # out-of-range: adverts go nowhere
        self._adv_interval_ms = adv_interval_ms
        self._buffer: deque[bytes] = deque(maxlen=EVENT_BUFFER_LEN)
        self._wake_pump = asyncio.Event()
        self._advert_changed = asyncio.Event()
        self._relock_timer = _OneShotTimer()
        self._door_timer = _OneShotTimer()
        self._tasks: set[asyncio.Task[None]] = set()
        self.firmware = LockFirmware(
            lock_id=spec.lock_id, key=spec.key, store=store, battery_pct=spec.battery_pct,
            clock_offset_ms=spec.clock_offset_ms, emit_sink=self._queue_event,
        )
        self.controller = RadioController(self.name, link=link)
        self.device = Device(
            name=self.name,
            address=hci.Address(self.address, hci.Address.RANDOM_DEVICE_ADDRESS),
            host=Host(self.controller, AsyncPipeSink(self.controller)),
        )
        self._events_char = gatt.Characteristic(
            EVENTS_CHAR_UUID, gatt.Characteristic.Properties.NOTIFY, gatt.Characteristic.READABLE, b""
        )
        self._events_char.on(gatt.Characteristic.EVENT_SUBSCRIPTION, self._on_subscription)
        self.device.add_service(gatt.Service(LOCK_SERVICE_UUID, [
            gatt.Characteristic(
                INFO_CHAR_UUID, gatt.Characteristic.Properties.READ, gatt.Characteristic.READABLE,
                gatt.CharacteristicValue(read=self._read_info),
            ),
            gatt.Characteristic(
                CONTROL_CHAR_UUID, gatt.Characteristic.Properties.WRITE, gatt.Characteristic.WRITEABLE,
                gatt.CharacteristicValue(write=self._write_control),
            ),
            self._events_char,
        ]))
        self.device.on(Device.EVENT_CONNECTION, self._on_connection)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await asyncio.wait_for(self.device.power_on(), HCI_STEP_TIMEOUT_S)
        await self._advertise()
        self._spawn(self._pump_events())
        self._spawn(self._keep_advertising())

    async def stop(self) -> None:
        self._relock_timer.cancel()
        self._door_timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ state for the knobs
    @property
    def centrals(self) -> int:
        return sum(1 for c in self.device.connections.values() if c.role == hci.Role.PERIPHERAL)

    @property
    def buffered_events(self) -> int:
        return len(self._buffer)

    # ------------------------------------------------------------------ advertising
    def _advertising_data(self) -> bytes:
        return bytes(AdvertisingData([
            (AdvertisingData.FLAGS, bytes([0x06])),  # LE general discoverable, no BR/EDR
            (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode()),
            (AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS, bytes(UUID(LOCK_SERVICE_UUID))),
            (AdvertisingData.MANUFACTURER_SPECIFIC_DATA,
             struct.pack("<HB", MANUFACTURER_ID, self.firmware.battery_pct)),
        ]))

    async def _advertise(self) -> None:
        if self.centrals >= MAX_CENTRALS:
            await asyncio.wait_for(self.device.stop_advertising(), HCI_STEP_TIMEOUT_S)
            return
        await asyncio.wait_for(
            self.device.start_advertising(
                advertising_data=self._advertising_data(),
                advertising_interval_min=self._adv_interval_ms,
                advertising_interval_max=self._adv_interval_ms,
            ),
            HCI_STEP_TIMEOUT_S,
        )

    async def _keep_advertising(self) -> None:
        """Advertise whenever fewer than MAX_CENTRALS are connected; re-advertise on battery change."""
        while True:
            await self._advert_changed.wait()
            self._advert_changed.clear()
            try:
                await self._advertise()
            except Exception as exc:
                log.warning("%s: advertising update failed (%r); retrying on the next change", self.name, exc)

    drop_link_after_write = False  # fault knob, see _write_control

    def _on_connection(self, connection: Connection) -> None:
        connection.on(Connection.EVENT_DISCONNECTION, lambda _reason: self._advert_changed.set())
        self._advert_changed.set()

    # ------------------------------------------------------------------ GATT handlers
    def _read_info(self, _connection: Connection) -> bytes:
        fw = self.firmware
        return InfoFrame(self.lock_id, fw.battery_pct, fw.now_ms(), fw.next_seq - 1).encode()

    def _write_control(self, _connection: Connection, value: bytes) -> None:
        try:
            self.firmware.handle_command(bytes(value))
        except CommandRejected as rejected:
            log.info("%s: command rejected: %s", self.name, rejected.reason.name)
            raise att.ATT_Error(ATT_REJECTION_BASE + rejected.reason) from rejected
        if not self.firmware.bolt_locked:
            self._relock_timer.start(RELOCK_AFTER_S, self.firmware.relock_due)
        if self.drop_link_after_write:
            # F1: the lock acted, but the link dies before its answer leaves. The gateway must report
            # "unknown", and the lock's record (kept in its buffer) must confirm it once back in range.
            self.drop_link_after_write = False
            self.vanish()
            asyncio.get_running_loop().call_later(LINK_RETURN_AFTER_S, self.appear)

    # ------------------------------------------------------------------ door knobs
    def open_door(self, from_inside: bool) -> None:
        self.firmware.open_door(from_inside)
        self._door_timer.start(DOOR_CLOSE_AFTER_S, self._door_closer)

    def close_door(self) -> None:
        self.firmware.close_door()
        self._door_timer.cancel()

    def set_battery(self, pct: int) -> None:
        self.firmware.set_battery(pct)
        self._advert_changed.set()

    def _door_closer(self) -> None:
        if self.firmware.door_open:
            self.firmware.close_door()

    # ------------------------------------------------------------------ events
    def _queue_event(self, frame: EventFrame) -> None:
        if len(self._buffer) == self._buffer.maxlen:
            log.warning("%s: event buffer full; dropping the oldest event", self.name)
        self._buffer.append(frame.encode())
        self._wake_pump.set()

    def _on_subscription(self, _bearer: object, notify_enabled: bool, _indicate_enabled: bool) -> None:
        if notify_enabled:
            self._wake_pump.set()

    def _has_subscriber(self) -> bool:
        handle = self._events_char.handle
        return any(
            len(cccd) == 2 and cccd[0] & 0x01
            for subs in self.device.gatt_server.subscribers.values()
            if (cccd := subs.get(handle))
        )

    async def _pump_events(self) -> None:
        """The single sender of notifications, so events always leave in sequence order."""
        while True:
            await self._wake_pump.wait()
            self._wake_pump.clear()
            while self._buffer and self._has_subscriber() and self.present:
                frame = self._buffer.popleft()
                try:
                    await asyncio.wait_for(
                        self.device.notify_subscribers(self._events_char, frame), NOTIFY_TIMEOUT_S
                    )
                except Exception as exc:  # a link dropping mid-notify: the frame is lost
                    log.warning("%s: notification failed (%r)", self.name, exc)

    # ------------------------------------------------------------------ range
    def vanish(self) -> None:
        """Out of range: both ends see a supervision timeout; adverts go nowhere until appear()."""
        if not self.present:
            return
        self.present = False
        for connection in list(self.controller.le_connections.values()):
            peer = self._link.find_le_controller(connection.peer_address)
            if peer is not None and (peer_side := peer.le_connections.get(connection.self_address)):
                with contextlib.suppress(Exception):
                    peer.on_le_disconnected(peer_side, _SUPERVISION_TIMEOUT)
            self.controller.on_le_disconnected(connection, _SUPERVISION_TIMEOUT)
        self._link.remove_controller(self.controller)
        self.controller.link = self._limbo
        self._limbo.add_controller(self.controller)

    def appear(self) -> None:
        if self.present:
            return
        self._limbo.remove_controller(self.controller)
        self.controller.link = self._link
        self._link.add_controller(self.controller)
        self.present = True
        self._advert_changed.set()
        self._wake_pump.set()
