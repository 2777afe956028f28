"""The delivery worker: sends pending alert deliveries after their transaction committed.

Safe with several backend replicas: a delivery is claimed by a conditional UPDATE before it is
sent, and a claim that outlives CLAIM_TTL (a replica died mid-send) is taken over. Sends carry
the delivery id as idempotency key, so a takeover never texts twice at a provider that honours it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import uuid
from collections.abc import Callable, Mapping

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alerts.senders import DeliveryFailed, OutgoingMessage, Sender
from models import Alert, AlertDelivery
from models.alerts import DeliveryStatus

log = logging.getLogger("healthlock.alerts")

# With the backoff below: about 2.5 hours of trying (1 s doubling to 5 min, then every 5 min) before
# a delivery is marked failed; a provider outage shorter than that loses no SMS.
MAX_ATTEMPTS = 40
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 300.0
CLAIM_TTL = dt.timedelta(seconds=30)  # longer than any single send (senders time out well before)
BATCH = 20


def backoff_s(attempts: int) -> float:
    """Exponential with full jitter, so many failed deliveries do not retry in lockstep."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


class DeliveryWorker:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        senders: Mapping[str, Sender],
        now: Callable[[], dt.datetime],
        poll_s: float,
    ) -> None:
        self._sessions, self._senders, self._now, self._poll_s = session_factory, senders, now, poll_s

    async def run(self) -> None:
        while True:
            try:
                sent = await self.run_once()
            except Exception:  # the worker must outlive a bad row or a database blip
                log.exception("alert delivery round failed")
                sent = 0
            if not sent:
                await asyncio.sleep(self._poll_s)

    async def run_once(self) -> int:
        """Claim and send one batch of due deliveries; return how many were attempted."""
        claimed = await self._claim()
        for delivery_id in claimed:
            await self._deliver(delivery_id)
        return len(claimed)

    async def _claim(self) -> list[uuid.UUID]:
        now = self._now()
        async with self._sessions() as session, session.begin():
            due = (
                await session.execute(
                    select(AlertDelivery.id)
                    .where(
                        or_(
                            (AlertDelivery.status == DeliveryStatus.PENDING) & (AlertDelivery.next_attempt_at <= now),
                            (AlertDelivery.status == DeliveryStatus.SENDING) & (AlertDelivery.claimed_until < now),
                        )
                    )
                    .order_by(AlertDelivery.next_attempt_at)
                    .limit(BATCH)
                )
            ).scalars().all()
            claimed = []
            for delivery_id in due:
                result = await session.execute(
                    update(AlertDelivery)
                    .where(
                        AlertDelivery.id == delivery_id,
                        or_(
                            AlertDelivery.status == DeliveryStatus.PENDING,
                            AlertDelivery.claimed_until < now,
                        ),
                    )
                    .values(status=DeliveryStatus.SENDING, claimed_until=now + CLAIM_TTL)
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    claimed.append(delivery_id)
            return claimed

    async def _deliver(self, delivery_id: uuid.UUID) -> None:
        async with self._sessions() as session, session.begin():
            delivery = await session.get(AlertDelivery, delivery_id)
            alert = await session.get(Alert, delivery.alert_id) if delivery else None
            if delivery is None or alert is None:
                return
            message = OutgoingMessage(str(delivery.id), delivery.recipient, alert.text)
            channel = delivery.channel
        sender = self._senders.get(channel)
        provider_id: str | None = None
        error: DeliveryFailed | None = None
        if sender is None:
            error = DeliveryFailed(f"no sender configured for channel {channel!r}", transient=False)
        else:
            try:
                provider_id = await sender.send(message)
            except DeliveryFailed as exc:
                error = exc
        await self._record(delivery_id, provider_id, error)

    async def _record(self, delivery_id: uuid.UUID, provider_id: str | None, error: DeliveryFailed | None) -> None:
        now = self._now()
        async with self._sessions() as session, session.begin():
            delivery = await session.get(AlertDelivery, delivery_id)
            if delivery is None:
                return
            delivery.attempts += 1
            delivery.claimed_until = None
            if error is None:
                delivery.status, delivery.sent_at, delivery.provider_message_id = DeliveryStatus.SENT, now, provider_id
                delivery.last_error = ""
                return
            delivery.last_error = str(error)[:300]
            if error.transient and delivery.attempts < MAX_ATTEMPTS:
                delivery.status = DeliveryStatus.PENDING
                delivery.next_attempt_at = now + dt.timedelta(seconds=backoff_s(delivery.attempts))
                log.warning("alert delivery %s failed (attempt %d), will retry: %s", delivery_id,
                            delivery.attempts, error)
            else:
                delivery.status = DeliveryStatus.FAILED
                log.error("alert delivery %s failed for good after %d attempts: %s", delivery_id,
                          delivery.attempts, error)
