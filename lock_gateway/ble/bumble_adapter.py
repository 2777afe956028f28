"""The gateway's BLE "dongle" when it runs on bumble: an HCI transport plus bumble's host stack.

The adapter survives transport loss: `run()` reopens the transport with jittered backoff whenever it
drops (simulator restarted, USB dongle replugged), and a liveness watchdog pings the controller so a
transport that stalls without closing (peer frozen) is noticed too. Clients and scanners ask for the
current `Device` through `require_device()` and fail fast while the adapter is down.

bumble 0.0.236 has unbounded awaits (HCI commands, power_on, connect, disconnect); every await on
this path is wrapped in a deadline here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog
from bleak.exc import BleakError
from bumble import core, hci
from bumble.device import Device
from bumble.transport import open_transport
from bumble.transport.common import Transport

from lock_gateway.backoff import Backoff

log = structlog.get_logger(__name__)

# Opening the transport and HCI reset + init: a local controller answers in milliseconds.
ADAPTER_START_TIMEOUT_S = 5.0
# One HCI command (scan on/off, cancel connect): a controller that takes longer is stuck.
HCI_COMMAND_TIMEOUT_S = 3.0
# Closing a transport is a socket close; if it takes longer the peer is gone anyway.
TRANSPORT_CLOSE_TIMEOUT_S = 2.0
# Watchdog cadence and patience: a frozen controller is noticed within ~3 s (period + timeout).
WATCHDOG_PERIOD_S = 1.0
WATCHDOG_TIMEOUT_S = 2.0
# Reopen backoff: fast enough to be back within a second of a simulator restart, capped for real outages.
REOPEN_BACKOFF_BASE_S = 0.25
REOPEN_BACKOFF_CAP_S = 5.0
# Our own static random address (top two bits set), as a real dongle would have a fixed one.
DEFAULT_GATEWAY_ADDRESS = "C0:FE:00:00:00:01"


class AdapterDown(BleakError):
    """The HCI transport is closed or the controller is not answering."""


class BumbleAdapter:
    def __init__(self, hci_spec: str, address: str = DEFAULT_GATEWAY_ADDRESS) -> None:
        self.hci_spec = hci_spec
        self.address = address
        # One LE initiator per controller (true of real hardware too): connects are issued one at a time.
        self.connect_gate = asyncio.Lock()
        self.up = asyncio.Event()
        self._transport: Transport | None = None
        self._device: Device | None = None
        self._generation = 0
        self._on_lost: set[Callable[[], None]] = set()

    def require_device(self) -> Device:
        if self._device is None or not self.up.is_set():
            raise AdapterDown(f"BLE adapter {self.hci_spec} is down (HCI transport lost or not opened yet)")
        return self._device

    def is_current(self, device: Device) -> bool:
        return device is self._device and self.up.is_set()

    def add_loss_listener(self, callback: Callable[[], None]) -> None:
        self._on_lost.add(callback)

    def remove_loss_listener(self, callback: Callable[[], None]) -> None:
        self._on_lost.discard(callback)

    async def run(self) -> None:
        """Keep the adapter up until cancelled. The transport stays open after cancellation so links
        can still be closed cleanly; call `close()` last."""
        backoff = Backoff(REOPEN_BACKOFF_BASE_S, REOPEN_BACKOFF_CAP_S)
        while True:
            try:
                await self._open()
            except (OSError, TimeoutError, core.BaseBumbleError) as exc:
                delay_s = backoff.next_delay_s()
                log.warning("ble_adapter_open_failed", hci=self.hci_spec, error=repr(exc),
                            retry_in_s=round(delay_s, 2))
                await asyncio.sleep(delay_s)
                continue
            backoff.reset()
            log.info("ble_adapter_up", hci=self.hci_spec)
            await self._watch()

    async def _open(self) -> None:
        async with asyncio.timeout(ADAPTER_START_TIMEOUT_S):
            transport = await open_transport(self.hci_spec)
        try:
            device = Device.with_hci("healthlock-gateway", hci.Address(self.address),
                                     transport.source, transport.sink)
            async with asyncio.timeout(ADAPTER_START_TIMEOUT_S):
                await device.power_on()
        except BaseException:
            await _close_quietly(transport)
            raise
        self._generation += 1
        generation = self._generation
        self._transport, self._device = transport, device
        transport.source.terminated.add_done_callback(lambda fut: self._transport_ended(fut, generation))
        self.up.set()

    def _transport_ended(self, fut: asyncio.Future[None], generation: int) -> None:
        if not fut.cancelled():
            fut.exception()  # retrieved so asyncio does not log it as unhandled; _mark_lost logs instead
        self._mark_lost(generation, "HCI transport closed")

    def _mark_lost(self, generation: int, why: str, *, expected: bool = False) -> None:
        if generation != self._generation or not self.up.is_set():
            return
        (log.info if expected else log.warning)("ble_adapter_down", hci=self.hci_spec, why=why)
        self.up.clear()
        self._device = None
        for callback in list(self._on_lost):
            callback()

    async def _watch(self) -> None:
        """Return once the adapter is lost; a controller that stops answering counts as lost."""
        generation = self._generation
        while self.up.is_set() and generation == self._generation:
            await asyncio.sleep(WATCHDOG_PERIOD_S)
            device = self._device
            if device is None:
                break
            try:
                async with asyncio.timeout(WATCHDOG_TIMEOUT_S):
                    await device.send_command(hci.HCI_Read_BD_ADDR_Command())
            except (TimeoutError, core.BaseBumbleError, OSError) as exc:
                self._mark_lost(generation, f"controller not answering: {exc!r}")
        transport, self._transport = self._transport, None
        if transport is not None:
            await _close_quietly(transport)

    async def close(self) -> None:
        self._mark_lost(self._generation, "adapter closed", expected=True)
        self._generation += 1
        transport, self._transport = self._transport, None
        if transport is not None:
            await _close_quietly(transport)


async def _close_quietly(transport: Transport) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(TRANSPORT_CLOSE_TIMEOUT_S):
            await transport.close()
