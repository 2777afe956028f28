"""Police console API: the alerts of the officer's own station."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from app.auth.dependencies import ClockDep, CurrentPolice
from app.db import SessionDep
from models import Alert, AlertDelivery

router = APIRouter(prefix="/api/v1/police", tags=["police"])


class DeliveryView(BaseModel):
    channel: str
    status: str
    attempts: int
    last_error: str


class AlertView(BaseModel):
    alert_id: uuid.UUID
    kind: str
    severity: str
    status: str
    subject: str
    occurred_at: dt.datetime
    occurrences: int
    text: str
    deliveries: list[DeliveryView] = Field(default_factory=list)


@router.get("/alerts")
async def station_alerts(officer: CurrentPolice, session: SessionDep, clock: ClockDep,
                         status: Annotated[str | None, Query(pattern="^(open|acknowledged|resolved)$")] = None,
                         limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[AlertView]:
    query = select(Alert).where(Alert.police_station_id == officer.police_station_id)
    if status is not None:
        query = query.where(Alert.status == status)
    alerts = (await session.execute(query.order_by(Alert.occurred_at.desc()).limit(limit))).scalars().all()
    deliveries = (
        await session.execute(select(AlertDelivery).where(AlertDelivery.alert_id.in_([a.id for a in alerts])))
    ).scalars().all()
    by_alert: dict[uuid.UUID, list[DeliveryView]] = {}
    for d in deliveries:
        by_alert.setdefault(d.alert_id, []).append(
            DeliveryView(channel=d.channel, status=d.status.value, attempts=d.attempts, last_error=d.last_error)
        )
    return [
        AlertView(alert_id=a.id, kind=a.kind.value, severity=a.severity.value, status=a.status.value,
                  subject=a.subject_masked, occurred_at=a.occurred_at, occurrences=a.occurrences, text=a.text,
                  deliveries=by_alert.get(a.id, []))
        for a in alerts
    ]
