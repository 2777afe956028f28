"""Landlord endpoints: lock health and the entry records of their own locks."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from app.auth.dependencies import CurrentLandlord
from app.db import SessionDep
from app.errors import NotFound
from models import Lock, LockEvent, Property, Unit

router = APIRouter(prefix="/api/v1/landlord", tags=["landlord"])


class LockHealth(BaseModel):
    lock_id: uuid.UUID
    unit: str
    connected: bool
    battery_pct: int | None
    last_seen_at: dt.datetime | None
    bolt: str
    door: str
    missing_events: int


class LockRecord(BaseModel):
    seq: int
    kind: str
    occurred_at: dt.datetime
    received_at: dt.datetime
    command_id: uuid.UUID | None


@router.get("/locks")
async def my_locks(landlord: CurrentLandlord, session: SessionDep) -> list[LockHealth]:
    rows = (
        await session.execute(
            select(Lock, Unit, Property).join(Unit, Unit.id == Lock.unit_id)
            .join(Property, Property.id == Unit.property_id).where(Property.landlord_id == landlord.id)
            .order_by(Property.address, Unit.label)
        )
    ).all()
    return [
        LockHealth(lock_id=lock.id, unit=f"{prop.address}{unit.label}", connected=lock.connected,
                   battery_pct=lock.battery_pct, last_seen_at=lock.last_seen_at, bolt=lock.bolt.value,
                   door=lock.door.value, missing_events=lock.missing_events)
        for lock, unit, prop in rows
    ]


@router.get("/locks/{lock_id}/records")
async def lock_records(lock_id: uuid.UUID, landlord: CurrentLandlord, session: SessionDep,
                       limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[LockRecord]:
    owner = await session.scalar(
        select(Property.landlord_id).join(Unit, Unit.property_id == Property.id).join(Lock, Lock.unit_id == Unit.id)
        .where(Lock.id == lock_id)
    )
    if owner != landlord.id:
        raise NotFound(f"no lock {lock_id} among your locks", code="lock_not_found")
    events = (
        await session.execute(
            select(LockEvent).where(LockEvent.lock_id == lock_id).order_by(LockEvent.occurred_at.desc()).limit(limit)
        )
    ).scalars().all()
    return [LockRecord(seq=e.seq, kind=e.kind, occurred_at=e.occurred_at, received_at=e.received_at,
                       command_id=e.command_id) for e in events]
