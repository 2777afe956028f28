"""The gateway process, wired together: one TaskGroup owns every long-running loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from lock_gateway.backend_client import BackendClient
from lock_gateway.backoff import Backoff
from lock_gateway.ble.stack import BleStack, bumble_stack, system_stack
from lock_gateway.clock import Clock, SystemClock
from lock_gateway.command_runner import CommandRunner
from lock_gateway.durable_queue import DurableQueue
from lock_gateway.errors import BackendRefusedBatch, BackendUnavailable
from lock_gateway.event_forwarder import EventRecorder, Forwarder, event_sender, result_sender
from lock_gateway.heartbeat import HeartbeatSender
from lock_gateway.link_registry import LinkRegistry
from lock_gateway.lock_link import LinkTimeouts
from lock_gateway.settings import GatewaySettings

log = structlog.get_logger(__name__)

# First retry of the start-up lock-list fetch; capped by settings.retry_cap_s.
STARTUP_BACKOFF_BASE_S = 0.5
# A command may wait this long, beyond one connect budget, for its lock's mutex (a reconnect in progress).
LOCK_WAIT_MARGIN_S = 2.0


def ble_stack_for(settings: GatewaySettings) -> BleStack:
    return bumble_stack(settings.bumble_hci) if settings.ble_backend == "bumble" else system_stack()


class GatewayService:
    def __init__(self, settings: GatewaySettings, *, clock: Clock | None = None,
                 ble: BleStack | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.ble = ble or ble_stack_for(settings)
        self.queue = DurableQueue(settings.queue_path)
        self.backend = BackendClient(settings.backend_url, settings.token.get_secret_value(),
                                     settings.http_timeout_s)
        self.events_out = Forwarder(
            "events", event_sender(self.backend, self.queue, self.clock, settings.upload_batch_max),
            settings.retry_cap_s,
        )
        self.results_out = Forwarder(
            "results", result_sender(self.backend, self.queue, self.clock, settings.upload_batch_max),
            settings.retry_cap_s,
        )
        self.recorder = EventRecorder(self.queue, self.events_out.wake)
        timeouts = LinkTimeouts(
            settings.connect_budget_s, settings.scan_timeout_s, settings.gatt_op_timeout_s
        )
        self.links = LinkRegistry(self.ble, timeouts, self.clock, self.recorder.record, settings.retry_cap_s)
        self.heartbeat = HeartbeatSender(self.backend, self.links, self.queue, self.clock,
                                         settings.heartbeat_s)
        self.commands = CommandRunner(
            self.backend, self.links, self.queue, self.clock,
            long_poll_ms=settings.long_poll_ms, gatt_op_timeout_s=settings.gatt_op_timeout_s,
            lock_wait_s=settings.connect_budget_s + LOCK_WAIT_MARGIN_S,
            retry_cap_s=settings.retry_cap_s, on_result_queued=self.results_out.wake,
            on_clock_remeasured=self.heartbeat.wake,
        )

    async def run(self, on_ready: Callable[[], None]) -> None:
        """Run until cancelled; BackendAuthRejected (in an ExceptionGroup) means stop for good."""
        await self.queue.open()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.ble.run(), name="ble-adapter")
                tasks.create_task(self.recorder.run(), name="event-recorder")
                # Rows left by a previous run go out even before BLE is up.
                tasks.create_task(self.events_out.run(), name="events-forwarder")
                tasks.create_task(self.results_out.run(), name="results-forwarder")
                await self._start_serving()
                on_ready()
                tasks.create_task(self._refresh_locks(), name="lock-refresh")
                tasks.create_task(self.commands.run(), name="command-runner")
                tasks.create_task(self.heartbeat.run(), name="heartbeat")
        finally:
            await self._shutdown()

    async def _start_serving(self) -> None:
        backoff = Backoff(STARTUP_BACKOFF_BASE_S, self.settings.retry_cap_s)
        while True:
            try:
                assignments = await self.backend.fetch_locks()
                break
            except (BackendUnavailable, BackendRefusedBatch) as exc:
                delay_s = backoff.next_delay_s()
                log.warning("lock_list_fetch_failed", error=str(exc), retry_in_s=round(delay_s, 2))
                await asyncio.sleep(delay_s)
        log.info("waiting_for_ble_adapter", ble=self.ble.description)
        await self.ble.wait_up()
        self.links.sync(assignments.locks)
        log.info("gateway_serving", locks=len(assignments.locks), ble=self.ble.description)

    async def _refresh_locks(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lock_refresh_s)
            try:
                assignments = await self.backend.fetch_locks()
            except (BackendUnavailable, BackendRefusedBatch) as exc:
                log.warning("lock_list_refresh_failed", error=str(exc))
                continue
            self.links.sync(assignments.locks)

    async def _shutdown(self) -> None:
        await asyncio.shield(self._close_all())

    async def _close_all(self) -> None:
        await self.links.close()
        await self.backend.aclose()
        await self.queue.close()
        await self.ble.close()
        log.info("gateway_stopped")
