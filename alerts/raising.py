"""Raise an alert inside the caller's transaction: the alert and its deliveries commit with their cause."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.sms_text import SmsContext, render_sms
from models import Alert, AlertDelivery
from models.alerts import AlertKind, AlertStatus, Severity

# The same person doing the same thing at the same door within this window is one alert, not a flood.
DEDUPE_WINDOW = dt.timedelta(minutes=10)
CONSOLE_CHANNEL, SMS_CHANNEL = "console", "sms"


@dataclass(frozen=True)
class AlertPlace:
    town_id: uuid.UUID
    town_name: str
    timezone: str
    police_station_id: uuid.UUID
    duty_phone: str
    address: str
    unit_id: uuid.UUID | None = None
    lock_id: uuid.UUID | None = None


@dataclass(frozen=True)
class AlertRequest:
    kind: AlertKind
    severity: Severity
    subject_masked: str
    subject_user_id: uuid.UUID | None
    place: AlertPlace
    occurred_at: dt.datetime
    dedupe_key: str


async def raise_alert(session: AsyncSession, request: AlertRequest, now: dt.datetime) -> Alert:
    """Create the alert and its deliveries, or count one more occurrence of an open duplicate."""
    duplicate = (
        await session.execute(
            select(Alert)
            .where(
                Alert.dedupe_key == request.dedupe_key,
                Alert.status != AlertStatus.RESOLVED,
                Alert.last_occurred_at >= request.occurred_at - DEDUPE_WINDOW,
            )
            .order_by(Alert.created_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if duplicate is not None:
        duplicate.occurrences += 1
        duplicate.last_occurred_at = max(duplicate.last_occurred_at, request.occurred_at)
        await session.flush()
        return duplicate

    place = request.place
    text = render_sms(
        request.kind,
        request.subject_masked,
        SmsContext(request.occurred_at, place.timezone, place.town_name, place.address),
    )
    alert = Alert(
        id=uuid.uuid4(),
        kind=request.kind,
        severity=request.severity,
        status=AlertStatus.OPEN,
        subject_user_id=request.subject_user_id,
        subject_masked=request.subject_masked,
        unit_id=place.unit_id,
        lock_id=place.lock_id,
        town_id=place.town_id,
        police_station_id=place.police_station_id,
        occurred_at=request.occurred_at,
        last_occurred_at=request.occurred_at,
        dedupe_key=request.dedupe_key,
        occurrences=1,
        text=text,
        created_at=now,
    )
    session.add(alert)
    session.add(AlertDelivery(alert_id=alert.id, channel=CONSOLE_CHANNEL, recipient="console", next_attempt_at=now))
    if request.severity in (Severity.WARNING, Severity.URGENT):  # notices stay on the console
        session.add(AlertDelivery(alert_id=alert.id, channel=SMS_CHANNEL, recipient=place.duty_phone,
                                  next_attempt_at=now))
    await session.flush()
    return alert
