"""Presence: every HEARTBEAT_S the backend hears which locks are linked, their battery and clock offset."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from lock_gateway.backend_client import BackendClient
from lock_gateway.clock import Clock
from lock_gateway.durable_queue import DurableQueue
from lock_gateway.errors import BackendRefusedBatch, BackendUnavailable
from lock_gateway.link_registry import LinkRegistry
from lock_gateway.protocol.gateway_api import Heartbeat

log = structlog.get_logger(__name__)


class HeartbeatSender:
    def __init__(self, backend: BackendClient, links: LinkRegistry, queue: DurableQueue, clock: Clock,
                 interval_s: float) -> None:
        self._backend = backend
        self._links = links
        self._queue = queue
        self._clock = clock
        self._interval_s = interval_s
        self._wake = asyncio.Event()
        self.last_server_time_ms: int | None = None

    def wake(self) -> None:
        """Beat now rather than at the next interval (a clock offset was just re-measured)."""
        self._wake.set()

    async def beat_once(self) -> None:
        beat = Heartbeat(
            sent_at_ms=self._clock.now_ms(),
            queued_events=await self._queue.count_events(),
            locks=self._links.presence(),
        )
        ack = await self._backend.post_heartbeat(beat)
        self.last_server_time_ms = ack.server_time_ms

    async def run(self) -> None:
        # A missed beat is not retried early: the next one carries fresher state anyway.
        while True:
            try:
                await self.beat_once()
            except (BackendUnavailable, BackendRefusedBatch) as exc:
                log.warning("heartbeat_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval_s):
                    await self._wake.wait()
            self._wake.clear()
