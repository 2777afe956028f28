"""Gateway endpoints (contract: lock_gateway/protocol/gateway_api.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.dependencies import ClockDep, GatewayIdentity
from app.clock import to_ms
from app.db import SessionDep
from app.gateway_link.service import record_heartbeat, record_results, served_locks, take_commands
from app.gateway_link.wakeups import GatewayWakeups
from app.lock_events.service import ingest_events
from lock_gateway.protocol import gateway_api as api
from models import Gateway

router = APIRouter(prefix=api.PREFIX, tags=["gateway"])

# Re-read the database this often during a long-poll: bounds the delay for commands written by
# another replica, whose in-process wake-up cannot reach this one.
COMMAND_POLL_S = 0.5


@router.get("/locks")
async def locks(gateway: GatewayIdentity, session: SessionDep) -> api.LockAssignments:
    return await served_locks(session, gateway)


@router.get("/commands")
async def commands(
    request: Request, gateway: GatewayIdentity, session: SessionDep, clock: ClockDep,
    wait_ms: Annotated[int, Query(ge=0, le=api.MAX_LONG_POLL_MS)] = 20_000,
) -> api.CommandBatch:
    # The identity lookup's transaction is closed before the wait: no connection is held while idle.
    await session.commit()
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    wakeups: GatewayWakeups = request.app.state.wakeups
    wake = wakeups.event_for(gateway.id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_ms / 1000
    while True:
        wake.clear()
        found = await _take(factory, gateway, clock)
        remaining = deadline - loop.time()
        if found or remaining <= 0:
            return api.CommandBatch(commands=found, server_time_ms=to_ms(clock.now()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(remaining, COMMAND_POLL_S)):
                await wake.wait()


async def _take(factory: async_sessionmaker[AsyncSession], gateway: Gateway, clock: ClockDep) -> list[api.Command]:
    async with factory() as session, session.begin():
        return await take_commands(session, gateway, clock.now())


@router.post("/results")
async def results(body: api.CommandResults, gateway: GatewayIdentity, session: SessionDep,
                  clock: ClockDep) -> api.ResultsAck:
    return await record_results(session, gateway, list(body.results), clock.now())


@router.post("/events")
async def events(body: api.EventUpload, gateway: GatewayIdentity, session: SessionDep,
                 clock: ClockDep) -> api.EventsAck:
    return await ingest_events(session, gateway, body, clock.now())


@router.post("/heartbeat")
async def heartbeat(body: api.Heartbeat, gateway: GatewayIdentity, session: SessionDep,
                    clock: ClockDep) -> api.HeartbeatAck:
    return await record_heartbeat(session, gateway, body, clock.now())
