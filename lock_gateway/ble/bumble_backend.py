"""bleak client backend on bumble's host stack, for the demo and the tests (production uses bleak's own).

Select it through bleak's public API:

    BleakScanner(..., backend=BumbleBleakScanner, bumble_adapter=adapter)
    BleakClient(device, backend=BumbleBleakClient, bumble_adapter=adapter)

What it guarantees that bumble 0.0.236 alone does not: `connect(timeout=...)` is enforced (scan, LE
connect, MTU, discovery); a connect cancelled from outside cancels the controller's pending connection
so the single initiator is free again; every ATT operation is bounded and fails fast when the link or
the adapter goes; connects across one adapter are issued one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from bleak import BleakScanner
from bleak.args import SizedBuffer
from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bumble import att, core, gatt, hci
from bumble.device import Connection, Device, Peer

from lock_gateway.ble.bumble_adapter import HCI_COMMAND_TIMEOUT_S, BumbleAdapter
from lock_gateway.ble.bumble_scanner import BumbleBleakScanner, adapter_from_kwargs, bleak_uuid

log = structlog.get_logger(__name__)

# One ATT request/response; bumble's own default is 30 s, far beyond what a live link needs.
GATT_OP_TIMEOUT_S = 5.0
# Waiting for the controller to confirm a disconnect; after this the link is dropped locally.
DISCONNECT_TIMEOUT_S = 2.0
# Left of the connect deadline for cancelling the pending connection cleanly ourselves.
CONNECT_CANCEL_MARGIN_S = 0.3
# Cancelling a pending connect: tries, and how long each waits for the controller to confirm.
CONNECT_CANCEL_ATTEMPTS = 3
CONNECT_CANCEL_CONFIRM_S = 0.5
# Largest ATT MTU of BLE 4.2+; lock frames fit in one PDU at this size.
PREFERRED_MTU = 247
DEFAULT_ATT_MTU = 23

_T = TypeVar("_T")

_PROPERTY_NAMES: dict[int, CharacteristicPropertyName] = {
    gatt.Characteristic.Properties.BROADCAST: "broadcast",
    gatt.Characteristic.Properties.READ: "read",
    gatt.Characteristic.Properties.WRITE_WITHOUT_RESPONSE: "write-without-response",
    gatt.Characteristic.Properties.WRITE: "write",
    gatt.Characteristic.Properties.NOTIFY: "notify",
    gatt.Characteristic.Properties.INDICATE: "indicate",
    gatt.Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES: "authenticated-signed-writes",
    gatt.Characteristic.Properties.EXTENDED_PROPERTIES: "extended-properties",
}


class BumbleBleakClient(BaseBleakClient):
    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback,
                         timeout=timeout, **kwargs)
        details = address_or_ble_device.details if isinstance(address_or_ble_device, BLEDevice) else None
        if isinstance(details, tuple) and len(details) == 2 and isinstance(details[0], BumbleAdapter):
            self._adapter: BumbleAdapter = details[0]
            self._peer_address: hci.Address | None = details[1]
        else:
            self._adapter, self._peer_address = adapter_from_kwargs(kwargs), None
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._link_gone: asyncio.Future[int] | None = None
        self._subscriptions: dict[int, Callable[[bytes], None]] = {}
        self._background: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return self.address

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else DEFAULT_ATT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    # -- connecting

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        timeout_s = float(kwargs.get("timeout", self._timeout))  # bleak semantics: kwarg beats ctor
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                peer_address = self._peer_address or await self._scan_for_peer(timeout_s)
                connection = await self._create_connection(peer_address, deadline)
        except (TimeoutError, core.TimeoutError) as exc:
            # bleak-retry-connector counts TimeoutError as a retryable timeout
            raise TimeoutError(f"{self.address}: connect timed out after {timeout_s:.1f} s") from exc
        except core.BaseBumbleError as exc:
            raise BleakError(f"{self.address}: connect failed: {exc!r}") from exc
        self._attach(connection)
        try:
            async with asyncio.timeout_at(deadline):
                await self._gatt(self._require_peer().request_mtu(PREFERRED_MTU))
                await self._discover()
        except BaseException:
            await self.disconnect()
            raise

    async def _scan_for_peer(self, timeout_s: float) -> hci.Address:
        scanner_kwargs: dict[str, Any] = {"backend": BumbleBleakScanner, "bumble_adapter": self._adapter}
        device = await BleakScanner.find_device_by_address(self.address, timeout=timeout_s, **scanner_kwargs)
        if device is None:
            raise BleakDeviceNotFoundError(self.address, f"Device with address {self.address} was not found.")
        address: hci.Address = device.details[1]
        self._peer_address = address
        return address

    async def _create_connection(self, peer_address: hci.Address, deadline: float) -> Connection:
        loop = asyncio.get_running_loop()
        async with self._adapter.connect_gate:
            device = self._adapter.require_device()
            budget_s = max(0.05, deadline - loop.time() - CONNECT_CANCEL_MARGIN_S)
            attempt = asyncio.ensure_future(device.connect(peer_address, timeout=budget_s))
            try:
                return await asyncio.shield(attempt)
            except asyncio.CancelledError:
                # Interrupted from outside: free the controller's single initiator before releasing
                # the gate, so no later connect finds it busy and we never cancel somebody else's.
                await self._abort_connect(device, attempt)
                raise

    async def _abort_connect(self, device: Device, attempt: asyncio.Future[Connection]) -> None:
        """Cancel at the controller and let bumble's connect finish. The cancel is repeated because
        the create command may still be on its way to the controller when the first cancel lands."""
        for _ in range(CONNECT_CANCEL_ATTEMPTS):
            if attempt.done() or not self._adapter.is_current(device):
                break
            with contextlib.suppress(Exception):
                async with asyncio.timeout(HCI_COMMAND_TIMEOUT_S):
                    await device.send_command(hci.HCI_LE_Create_Connection_Cancel_Command())
            await asyncio.wait([attempt], timeout=CONNECT_CANCEL_CONFIRM_S)
        if not attempt.done():
            attempt.cancel()
            return
        if attempt.cancelled() or attempt.exception() is not None:
            return
        connection = attempt.result()  # connected just as we gave up: nobody will use this link
        self._spawn(_disconnect_quietly(connection))

    def _attach(self, connection: Connection) -> None:
        self._connection = connection
        self._peer = Peer(connection)
        self._link_gone = asyncio.get_running_loop().create_future()
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        self._adapter.add_loss_listener(self._on_adapter_lost)

    def _on_adapter_lost(self) -> None:
        self._on_disconnection(hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR)

    def _on_disconnection(self, reason: int) -> None:
        if self._connection is None:
            return
        self._connection = self._peer = None
        self._subscriptions.clear()
        self._adapter.remove_loss_listener(self._on_adapter_lost)
        if self._link_gone is not None and not self._link_gone.done():
            self._link_gone.set_result(reason)
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            async with asyncio.timeout(DISCONNECT_TIMEOUT_S):
                await connection.disconnect()
        except (TimeoutError, core.BaseBumbleError, OSError) as exc:
            log.info("ble_disconnect_incomplete", address=self.address, error=repr(exc))
        self._on_disconnection(hci.HCI_ErrorCode.CONNECTION_TERMINATED_BY_LOCAL_HOST_ERROR)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise BleakError("the bumble backend does not pair: the lock protocol authenticates frames itself")

    async def unpair(self) -> None:
        return None

    # -- GATT

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError(f"{self.address}: Not connected")
        return self._peer

    async def _gatt(self, operation: Awaitable[_T], timeout_s: float = GATT_OP_TIMEOUT_S) -> _T:
        """Run one ATT operation, bounded by a deadline and by the link going away."""
        link_gone = self._link_gone
        task = asyncio.ensure_future(operation)
        if self._connection is None or link_gone is None:
            task.cancel()
            raise BleakError(f"{self.address}: Not connected")
        try:
            racers: list[asyncio.Future[Any]] = [task, link_gone]
            done, _ = await asyncio.wait(racers, timeout=timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task in done:
            if task.cancelled():
                # bumble cancels its pending ATT transaction when the link drops; to our caller that is a
                # lost link, not a cancellation of its own task (which would end it silently).
                raise BleakError(f"{self.address}: GATT operation aborted: the link was lost")
            try:
                return task.result()
            except att.ATT_Error as exc:
                raise BleakGATTProtocolError(exc.error_code) from exc
            except core.TimeoutError as exc:
                raise TimeoutError(f"{self.address}: {exc}") from exc
        task.cancel()
        if link_gone in done:
            raise BleakError(f"{self.address}: disconnected during a GATT operation")
        # An ATT transaction timeout leaves the bearer unusable (Core spec, Vol 3 Part F 3.3.3): drop it.
        self._spawn(self.disconnect())
        raise TimeoutError(f"{self.address}: GATT operation timed out after {timeout_s} s")

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _discover(self) -> None:
        peer = self._require_peer()
        collection = BleakGATTServiceCollection()
        for service in await self._gatt(peer.discover_services()):
            bleak_service = BleakGATTService(service, service.handle, bleak_uuid(service.uuid))
            collection.add_service(bleak_service)
            for char in await self._gatt(peer.discover_characteristics(service=service)):
                names = [name for flag, name in _PROPERTY_NAMES.items() if char.properties & flag]
                bleak_char = BleakGATTCharacteristic(
                    char, char.handle, bleak_uuid(char.uuid), names, lambda: self.mtu_size - 3, bleak_service
                )
                collection.add_characteristic(bleak_char)
                for desc in await self._gatt(peer.discover_descriptors(char)):
                    collection.add_descriptor(
                        BleakGATTDescriptor(desc, desc.handle, bleak_uuid(desc.type), bleak_char)
                    )
        self.services = collection

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        self._require_peer()
        return bytearray(await self._gatt(characteristic.obj.read_value()))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        self._require_peer()
        return bytearray(await self._gatt(descriptor.obj.read_value()))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        peer = self._require_peer()
        await self._gatt(peer.write_value(characteristic.obj, bytes(data), with_response=response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        self._require_peer()
        await self._gatt(descriptor.obj.write_value(bytes(data), with_response=True))

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        peer = self._require_peer()

        def deliver(value: bytes) -> None:
            callback(bytearray(value))

        self._subscriptions[characteristic.handle] = deliver
        await self._gatt(peer.subscribe(characteristic.obj, deliver))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        peer = self._require_peer()
        deliver = self._subscriptions.pop(characteristic.handle, None)
        await self._gatt(peer.unsubscribe(characteristic.obj, deliver))


async def _disconnect_quietly(connection: Connection) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(DISCONNECT_TIMEOUT_S):
            await connection.disconnect()
