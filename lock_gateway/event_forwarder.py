"""Door events and command results: stored locally first, then forwarded until the backend takes them.

EventRecorder   notification -> durable queue (in arrival order, one writer)
Forwarder       durable queue -> backend in batches; rows leave the queue only on the backend's receipt
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from lock_gateway.backend_client import BackendClient
from lock_gateway.backoff import Backoff
from lock_gateway.clock import Clock
from lock_gateway.durable_queue import DurableQueue
from lock_gateway.errors import BackendRefusedBatch, BackendUnavailable
from lock_gateway.protocol.gateway_api import (
    CommandResults,
    EventStatus,
    EventUpload,
    UploadedEvent,
    encode_frame,
)
from lock_gateway.protocol.lock_frames import EventFrame, FrameError

log = structlog.get_logger(__name__)

# Even without a wake-up, look at the queue this often (rows left by a previous run, missed wake-ups).
IDLE_RECHECK_S = 5.0
# First retry after the backend failed; the cap comes from settings.
FORWARD_BACKOFF_BASE_S = 0.5
# On shutdown, notifications already received get this long to reach the disk.
RECORDER_DRAIN_TIMEOUT_S = 2.0


class EventRecorder:
    """Takes notifications synchronously (from BLE callbacks) and writes them to the queue in order."""

    def __init__(self, queue: DurableQueue, on_stored: Callable[[], None]) -> None:
        self._queue = queue
        self._on_stored = on_stored
        self._pending: asyncio.Queue[UploadedEvent] = asyncio.Queue()

    def record(self, frame: bytes, received_at_ms: int) -> None:
        try:
            event = UploadedEvent(frame_b64=encode_frame(frame), received_at_ms=received_at_ms)
        except ValueError as exc:  # empty frame: nothing a backend could ever check
            log.warning("event_unusable", error=str(exc))
            return
        self._pending.put_nowait(event)
        _log_event(frame)

    async def run(self) -> None:
        try:
            while True:
                event = await self._pending.get()
                await self._queue.put_event(event)
                self._on_stored()
        finally:
            await asyncio.shield(self._drain())

    async def _drain(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(RECORDER_DRAIN_TIMEOUT_S):
                while not self._pending.empty():
                    await self._queue.put_event(self._pending.get_nowait())


def _log_event(frame: bytes) -> None:
    # The gateway holds no keys: the MAC is the backend's to check; decoding is for the log only.
    try:
        event = EventFrame.decode(frame)
    except FrameError as exc:
        log.warning("event_received_undecodable", size=len(frame), error=str(exc))
        return
    log.info("event_received", lock_id=str(event.lock_id), seq=event.seq, kind=event.kind.name)


class Forwarder:
    """Drains one outbox table to the backend; `send_batch` returns how many rows it handled."""

    def __init__(self, name: str, send_batch: Callable[[], Awaitable[int]], retry_cap_s: float) -> None:
        self.name = name
        self._send_batch = send_batch
        self._retry_cap_s = retry_cap_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff(FORWARD_BACKOFF_BASE_S, self._retry_cap_s)
        while True:
            self._wake.clear()
            try:
                handled = await self._send_batch()
            except BackendUnavailable as exc:
                delay_s = backoff.next_delay_s()
                log.warning("forward_failed", outbox=self.name, error=str(exc), retry_in_s=round(delay_s, 2))
                await asyncio.sleep(delay_s)
                continue
            backoff.reset()
            if handled:
                continue  # more may be waiting
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_RECHECK_S):
                    await self._wake.wait()


def event_sender(backend: BackendClient, queue: DurableQueue, clock: Clock,
                 batch_max: int) -> Callable[[], Awaitable[int]]:
    async def send_events() -> int:
        batch = await queue.peek_events(batch_max)
        if not batch:
            return 0
        try:
            ack = await backend.post_events(EventUpload(events=[q.event for q in batch]))
        except BackendRefusedBatch as exc:
            log.error("events_batch_refused_dead_lettered", size=len(batch), error=str(exc))
            await queue.dead_letter_events(batch, str(exc), clock.now_ms())
            return len(batch)
        done = [batch[r.index].row_id for r in ack.receipts
                if 0 <= r.index < len(batch) and r.status in set(EventStatus)]
        for receipt in ack.receipts:
            if receipt.status is EventStatus.REJECTED:
                log.warning("event_rejected_by_backend", lock_id=str(receipt.lock_id), seq=receipt.seq,
                            reason=receipt.reason)
        await queue.delete_events(done)
        log.info("events_forwarded", sent=len(batch), acknowledged=len(done))
        return len(done)

    return send_events


def result_sender(backend: BackendClient, queue: DurableQueue, clock: Clock,
                  batch_max: int) -> Callable[[], Awaitable[int]]:
    async def send_results() -> int:
        batch = await queue.peek_results(batch_max)
        if not batch:
            return 0
        try:
            ack = await backend.post_results(CommandResults(results=[q.result for q in batch]))
        except BackendRefusedBatch as exc:
            log.error("results_batch_refused_dead_lettered", size=len(batch), error=str(exc))
            await queue.dead_letter_results(batch, str(exc), clock.now_ms())
            return len(batch)
        accepted = {str(c) for c in ack.accepted}
        await queue.delete_results([c for c in accepted if any(str(q.result.command_id) == c for q in batch)])
        log.info("results_forwarded", sent=len(batch), accepted=len(accepted))
        return len(accepted)

    return send_results
