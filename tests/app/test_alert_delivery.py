"""Alert delivery: retries with backoff while the SMS provider is down, then exactly one text.

The first test goes through the running backend (its own delivery worker, backoff shortened); the
others drive alerts.delivery.DeliveryWorker directly with a clock the test moves.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import alerts.delivery
from alerts.delivery import MAX_ATTEMPTS, DeliveryWorker
from alerts.masking import mask_name
from alerts.raising import CONSOLE_CHANNEL, SMS_CHANNEL, AlertRequest, raise_alert
from alerts.senders import ConsoleSender, HttpSmsSender, OutgoingMessage
from app.locks.place import place_of_lock
from app.seed import STATION_PHONE
from models import Alert, AlertDelivery, Lock, User
from models.alerts import AlertKind, DeliveryStatus, Severity
from tests.app.conftest import SMS_KEY, SeededDatabase, SimulatorProcess
from tests.app.harness import World, eventually, open_db

FAST_BACKOFF_S = 0.2


async def test_sms_outage_is_retried_then_sent_exactly_once(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alerts.delivery, "backoff_s", lambda _attempts: FAST_BACKOFF_S)
    world.backend.simulator.outage("sms", True)
    await world.unlock("red")
    [alert] = await world.alerts()
    [sms] = await world.deliveries(alert.id, SMS_CHANNEL)

    async def retried() -> AlertDelivery | None:
        delivery = await world.get(AlertDelivery, sms.id)
        return delivery if delivery.attempts >= 2 and delivery.status is DeliveryStatus.PENDING else None

    failing = await eventually(retried, "two failed SMS attempts")
    assert "503" in failing.last_error
    assert await world.my_sms() == []
    police = await world.headers("police")
    [seen] = (await world.client.get("/api/v1/police/alerts", headers=police)).json()
    [sms_view] = [d for d in seen["deliveries"] if d["channel"] == SMS_CHANNEL]
    assert sms_view["attempts"] >= 2
    assert sms_view["status"] in ("pending", "sending")
    assert sms_view["last_error"] or sms_view["status"] == "sending"

    world.backend.simulator.outage("sms", False)

    [text] = await world.sms_count_settles(1, "the SMS after the outage")
    assert "红码人员张某开门" in text["text"]
    sent = await world.get(AlertDelivery, sms.id)
    assert (sent.status, sent.last_error) == (DeliveryStatus.SENT, "")
    assert sent.provider_message_id == text["message_id"]
    assert sent.attempts > failing.attempts


@dataclass
class Clock:
    at: dt.datetime

    def now(self) -> dt.datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += dt.timedelta(seconds=seconds)


@dataclass
class Outbox:
    db: async_sessionmaker[AsyncSession]
    simulator: SimulatorProcess
    clock: Clock
    http: httpx.AsyncClient
    lock_id: uuid.UUID
    tenant_id: uuid.UUID

    def worker(self, sms_key: str = SMS_KEY) -> DeliveryWorker:
        sms = HttpSmsSender(self.http, self.simulator.sms_url, sms_key)
        senders = {CONSOLE_CHANNEL: ConsoleSender(), SMS_CHANNEL: sms}
        return DeliveryWorker(self.db, senders, self.clock.now, poll_s=0.05)

    async def raise_red_alert(self) -> AlertDelivery:
        async with self.db() as session, session.begin():
            lock = await session.get(Lock, self.lock_id)
            tenant = await session.get(User, self.tenant_id)
            assert lock is not None
            assert tenant is not None
            place, _town = await place_of_lock(session, lock)
            alert = await raise_alert(session, AlertRequest(
                kind=AlertKind.RED_CODE_ENTRY, severity=Severity.URGENT, subject_masked=mask_name(tenant.family_name),
                subject_user_id=tenant.id, place=place, occurred_at=self.clock.now(),
                dedupe_key=f"test:{uuid.uuid4()}",
            ), self.clock.now())
            sms = (await session.execute(select(AlertDelivery).where(
                AlertDelivery.alert_id == alert.id, AlertDelivery.channel == SMS_CHANNEL))).scalar_one()
            return sms

    async def delivery(self, delivery_id: uuid.UUID) -> AlertDelivery:
        async with self.db() as session:
            delivery = await session.get(AlertDelivery, delivery_id)
            assert delivery is not None
            return delivery

    def texts_for(self, delivery_id: uuid.UUID) -> list[dict[str, object]]:
        return [m for m in self.simulator.sms_messages() if m["idempotency_key"] == str(delivery_id)]


@pytest.fixture
async def outbox(seeded_database: SeededDatabase, simulator: SimulatorProcess) -> AsyncIterator[Outbox]:
    """A seeded database and no backend: the test alone runs the delivery worker."""
    clock = Clock(dt.datetime(2026, 3, 1, 0, 24, tzinfo=dt.UTC))  # 08:24 in Asia/Shanghai
    red = seeded_database.world["manifest"]["people"]["red"]
    async with open_db(seeded_database.url) as db, httpx.AsyncClient(timeout=5, trust_env=False) as http:
        async with db() as session:
            tenant_id = (await session.execute(select(User.id).where(User.phone == red["phone"]))).scalar_one()
        try:
            yield Outbox(db, simulator, clock, http, uuid.UUID(red["lock_id"]), tenant_id)
        finally:
            simulator.outage("sms", False)


async def test_worker_backs_off_between_attempts_and_sends_once_after_the_outage(outbox: Outbox) -> None:
    worker = outbox.worker()
    sms = await outbox.raise_red_alert()
    outbox.simulator.outage("sms", True)

    assert await worker.run_once() == 2  # the console copy and the SMS
    first = await outbox.delivery(sms.id)
    assert (first.status, first.attempts) == (DeliveryStatus.PENDING, 1)
    assert "503" in first.last_error
    assert STATION_PHONE not in first.last_error  # phones are masked in errors and logs
    assert dt.timedelta(seconds=0.5) <= first.next_attempt_at - outbox.clock.now() <= dt.timedelta(seconds=1)
    assert await worker.run_once() == 0  # not due yet: the backoff holds

    outbox.clock.advance(1)
    assert await worker.run_once() == 1
    second = await outbox.delivery(sms.id)
    assert second.attempts == 2
    assert dt.timedelta(seconds=1) <= second.next_attempt_at - outbox.clock.now() <= dt.timedelta(seconds=2)

    outbox.simulator.outage("sms", False)
    outbox.clock.advance(2)
    assert await worker.run_once() == 1
    sent = await outbox.delivery(sms.id)
    assert (sent.status, sent.attempts, sent.sent_at) == (DeliveryStatus.SENT, 3, outbox.clock.now())
    [text] = outbox.texts_for(sms.id)
    assert text["to"] == STATION_PHONE
    assert str(text["text"]).startswith("08:24，在姚江镇，红码人员张某开门，请核查")
    outbox.clock.advance(3600)
    assert await worker.run_once() == 0
    assert len(outbox.texts_for(sms.id)) == 1


async def test_worker_gives_up_after_max_attempts(outbox: Outbox) -> None:
    worker = outbox.worker()
    sms = await outbox.raise_red_alert()
    outbox.simulator.outage("sms", True)

    for _ in range(MAX_ATTEMPTS + 2):
        await worker.run_once()
        outbox.clock.advance(alerts.delivery.BACKOFF_MAX_S)

    failed = await outbox.delivery(sms.id)
    assert (failed.status, failed.attempts) == (DeliveryStatus.FAILED, MAX_ATTEMPTS)
    assert outbox.texts_for(sms.id) == []


async def test_provider_refusing_our_key_fails_at_once_without_retry(outbox: Outbox) -> None:
    worker = outbox.worker(sms_key="revoked-key")
    sms = await outbox.raise_red_alert()

    await worker.run_once()
    outbox.clock.advance(3600)
    assert await worker.run_once() == 0

    failed = await outbox.delivery(sms.id)
    assert (failed.status, failed.attempts) == (DeliveryStatus.FAILED, 1)
    assert "401" in failed.last_error
    assert "138****0110" in failed.last_error


async def test_claim_of_a_crashed_sender_is_taken_over_and_the_provider_keeps_one_copy(outbox: Outbox) -> None:
    sms = await outbox.raise_red_alert()
    # Another replica claimed the delivery, sent it, and died before recording the result.
    async with outbox.db() as session, session.begin():
        await session.execute(update(AlertDelivery).where(AlertDelivery.id == sms.id).values(
            status=DeliveryStatus.SENDING, claimed_until=outbox.clock.now() + alerts.delivery.CLAIM_TTL))
    async with outbox.db() as session:
        alert = await session.get(Alert, sms.alert_id)
        assert alert is not None
    await HttpSmsSender(outbox.http, outbox.simulator.sms_url, SMS_KEY).send(
        OutgoingMessage(str(sms.id), STATION_PHONE, alert.text))
    worker = outbox.worker()

    outbox.clock.advance(10)
    await worker.run_once()
    assert (await outbox.delivery(sms.id)).status is DeliveryStatus.SENDING  # the claim still stands

    outbox.clock.advance(alerts.delivery.CLAIM_TTL.total_seconds())
    await worker.run_once()

    taken_over = await outbox.delivery(sms.id)
    assert (taken_over.status, taken_over.attempts) == (DeliveryStatus.SENT, 1)
    assert len(outbox.texts_for(sms.id)) == 1
