"""Tenant endpoints: rooms, cloud unlock, attempt status and history."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import or_, select

from app.auth.dependencies import ClockDep, CurrentTenant
from app.db import SessionDep
from app.unlock.policy import NO_TENANCY
from app.unlock.schemas import AttemptView, RoomView, UnlockRequest
from app.unlock.service import UnlockServices, is_final, load_attempt, request_unlock
from app.unlock.transitions import expire_overdue
from models import Lock, Property, Tenancy, Unit, UnlockAttempt

router = APIRouter(prefix="/api/v1/tenant", tags=["tenant"])

ATTEMPT_POLL_S = 0.05  # how often a waiting unlock request re-reads its attempt
MAX_WAIT_S = 10.0  # a phone request should not hang longer than this


def _services(request: Request) -> UnlockServices:
    services: UnlockServices = request.app.state.unlock_services
    return services


ServicesDep = Annotated[UnlockServices, Depends(_services)]


@router.post("/unlocks", status_code=201, response_model=AttemptView,
             responses={403: {"description": "no active tenancy for this lock; the denial is recorded"}})
async def cloud_unlock(
    body: UnlockRequest, request: Request, tenant: CurrentTenant, session: SessionDep, clock: ClockDep,
    services: ServicesDep,
    wait_s: Annotated[float | None, Query(ge=0, le=MAX_WAIT_S, description="wait this long for the lock")] = None,
) -> AttemptView | JSONResponse:
    attempt = await request_unlock(session, services, tenant, body.lock_id, body.health_code, clock.now())
    # The decision, its alerts and the command must be durable before anyone waits on the lock.
    await session.commit()
    wait = request.app.state.settings.unlock_wait_s if wait_s is None else wait_s
    view = AttemptView.of(attempt, is_final(attempt, clock.now()))
    if wait > 0 and not view.final:
        view = await _wait_for_lock(session, tenant, attempt.id, clock, wait)
    if attempt.reason_code == NO_TENANCY.reason_code:
        content = {"error": NO_TENANCY.reason_code, "detail": NO_TENANCY.reason,
                   "attempt": view.model_dump(mode="json")}
        return JSONResponse(content, status_code=403)
    return view


async def _wait_for_lock(session: SessionDep, tenant: CurrentTenant, attempt_id: uuid.UUID, clock: ClockDep,
                         wait_s: float) -> AttemptView:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        attempt = await load_attempt(session, tenant, attempt_id, clock.now())
        await session.commit()  # end the read transaction so the next read sees the gateway's writes
        if is_final(attempt, clock.now()) or loop.time() >= deadline:
            return AttemptView.of(attempt, is_final(attempt, clock.now()))
        await asyncio.sleep(ATTEMPT_POLL_S)


@router.get("/unlocks/{attempt_id}")
async def get_attempt(attempt_id: uuid.UUID, tenant: CurrentTenant, session: SessionDep,
                      clock: ClockDep) -> AttemptView:
    attempt = await load_attempt(session, tenant, attempt_id, clock.now())
    return AttemptView.of(attempt, is_final(attempt, clock.now()))


@router.get("/unlocks")
async def list_attempts(tenant: CurrentTenant, session: SessionDep, clock: ClockDep,
                        limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[AttemptView]:
    now = clock.now()
    await expire_overdue(session, now, tenant_id=tenant.id)
    attempts = (
        await session.execute(
            select(UnlockAttempt).where(UnlockAttempt.tenant_id == tenant.id)
            .order_by(UnlockAttempt.requested_at.desc()).limit(limit).execution_options(populate_existing=True)
        )
    ).scalars().all()
    return [AttemptView.of(a, is_final(a, now)) for a in attempts]


@router.get("/rooms")
async def my_rooms(tenant: CurrentTenant, session: SessionDep, clock: ClockDep) -> list[RoomView]:
    now = clock.now()
    rows = (
        await session.execute(
            select(Tenancy, Unit, Property)
            .join(Unit, Unit.id == Tenancy.unit_id)
            .join(Property, Property.id == Unit.property_id)
            .where(Tenancy.tenant_id == tenant.id, Tenancy.starts_at <= now,
                   or_(Tenancy.ends_at.is_(None), Tenancy.ends_at > now))
        )
    ).all()
    rooms = []
    for tenancy, unit, prop in rows:
        lock_ids = (await session.execute(select(Lock.id).where(Lock.unit_id == unit.id))).scalars().all()
        rooms.append(RoomView(unit_id=unit.id, address=f"{prop.address}{unit.label}", lock_ids=list(lock_ids),
                              tenancy_ends_at=tenancy.ends_at))
    return rooms
