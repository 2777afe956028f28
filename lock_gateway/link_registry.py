"""The set of locks this gateway serves, each with a link kept up by a supervisor task."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import structlog

from lock_gateway.backoff import Backoff
from lock_gateway.ble.stack import BleStack
from lock_gateway.clock import Clock
from lock_gateway.errors import LockLinkError
from lock_gateway.lock_link import EventSink, LinkTimeouts, LockLink
from lock_gateway.protocol.gateway_api import LockAssignment, LockPresence

log = structlog.get_logger(__name__)

# First reconnect try after a drop is quick (a lock rebooting is back in ~1 s); cap from settings.
RECONNECT_BACKOFF_BASE_S = 1.0
# How often a live link re-reads INFO: fresh battery and clock offset for the heartbeat.
INFO_REFRESH_S = 30.0


class LinkRegistry:
    def __init__(self, ble: BleStack, timeouts: LinkTimeouts, clock: Clock, on_event: EventSink,
                 retry_cap_s: float) -> None:
        self._ble = ble
        self._timeouts = timeouts
        self._clock = clock
        self._on_event = on_event
        self._retry_cap_s = retry_cap_s
        self._links: dict[uuid.UUID, LockLink] = {}
        self._supervisors: dict[uuid.UUID, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return len(self._links)

    def sync(self, assignments: list[LockAssignment]) -> None:
        """Serve exactly these locks: start links for new ones, stop links for removed ones."""
        wanted = {a.lock_id: a.ble_address for a in assignments}
        for lock_id in list(self._links):
            if wanted.get(lock_id) != self._links[lock_id].ble_address:
                self._remove(lock_id)
        for lock_id, address in wanted.items():
            self.link_for(lock_id, address)

    def link_for(self, lock_id: uuid.UUID, ble_address: str) -> LockLink:
        link = self._links.get(lock_id)
        if link is None:
            link = LockLink(lock_id, ble_address, self._ble, self._timeouts, self._clock, self._on_event)
            self._links[lock_id] = link
            self._supervisors[lock_id] = asyncio.create_task(
                self._supervise(link), name=f"link-{lock_id.hex[:8]}"
            )
            log.info("lock_served", lock_id=str(lock_id), address=link.ble_address)
        return link

    def _remove(self, lock_id: uuid.UUID) -> None:
        self._links.pop(lock_id, None)
        task = self._supervisors.pop(lock_id, None)
        if task is not None:
            task.cancel()
        log.info("lock_no_longer_served", lock_id=str(lock_id))

    def presence(self) -> list[LockPresence]:
        return [
            LockPresence(
                lock_id=link.lock_id,
                connected=link.client is not None,
                rssi=link.status.rssi,
                battery_pct=link.status.battery_pct,
                lock_clock_offset_ms=link.status.clock_offset_ms,
                last_error=link.status.last_error[:300],
            )
            for link in self._links.values()
        ]

    async def close(self) -> None:
        tasks = list(self._supervisors.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._supervisors.clear()
        self._links.clear()

    async def _supervise(self, link: LockLink) -> None:
        """Keep the link up: reconnect with jittered backoff, refresh INFO while it lives."""
        backoff = Backoff(RECONNECT_BACKOFF_BASE_S, self._retry_cap_s)
        try:
            while True:
                await self._ble.wait_up()
                try:
                    async with link.mutex:
                        await link.ensure_connected()
                except LockLinkError as exc:
                    delay_s = backoff.next_delay_s()
                    log.info("lock_link_retry", lock_id=str(link.lock_id), error=str(exc),
                             retry_in_s=round(delay_s, 2))
                    await asyncio.sleep(delay_s)
                    continue
                backoff.reset()
                await self._while_connected(link)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(link.drop("lock no longer served"))

    async def _while_connected(self, link: LockLink) -> None:
        while link.client is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(INFO_REFRESH_S):
                    await link.link_lost.wait()
            client = link.client
            if client is None or link.link_lost.is_set():
                return
            try:
                async with link.mutex:
                    await link.refresh_info(client)
            except Exception as exc:  # any failure here: the link is unusable
                await link.drop(f"INFO refresh failed: {exc!r}")
                return
