"""The backend's side of the gateway contract: hand out commands, record results and presence."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import from_ms, to_ms
from app.errors import InvalidRequest
from app.unlock.transitions import advance_attempt
from lock_gateway.protocol import gateway_api as api
from lock_gateway.protocol.lock_frames import EPOCH_MS_MAX, EPOCH_MS_MIN
from models import Gateway, Lock, LockCommand
from models.unlock import AttemptState

MAX_QUEUED_EVENTS = 2**31 - 1  # Gateway.queued_events is a 32-bit column

_RESULT_STATES = {
    api.CommandOutcome.ACKNOWLEDGED: AttemptState.ACKNOWLEDGED,
    api.CommandOutcome.REJECTED_BY_LOCK: AttemptState.REJECTED_BY_LOCK,
    api.CommandOutcome.NOT_DELIVERED: AttemptState.FAILED_NOT_DELIVERED,
    api.CommandOutcome.UNKNOWN: AttemptState.UNKNOWN,
}


async def served_locks(session: AsyncSession, gateway: Gateway) -> api.LockAssignments:
    locks = (await session.execute(select(Lock).where(Lock.gateway_id == gateway.id))).scalars().all()
    return api.LockAssignments(
        locks=[api.LockAssignment(lock_id=lock.id, ble_address=lock.ble_address) for lock in locks]
    )


async def take_commands(session: AsyncSession, gateway: Gateway, now: dt.datetime) -> list[api.Command]:
    """Hand the gateway its undelivered, unexpired commands and mark their attempts sent."""
    rows = (
        await session.execute(
            select(LockCommand, Lock.ble_address)
            .join(Lock, Lock.id == LockCommand.lock_id)
            .where(LockCommand.gateway_id == gateway.id, LockCommand.fetched_at.is_(None),
                   LockCommand.expires_at > now)
            # Counter order, not creation order: two requests for one lock can take their counters in
            # the opposite order of their timestamps, and a lock refuses a counter below one it has seen.
            .order_by(LockCommand.counter)
        )
    ).all()
    commands = []
    for command, ble_address in rows:
        claimed = await session.execute(
            update(LockCommand).where(LockCommand.id == command.id, LockCommand.fetched_at.is_(None))
            .values(fetched_at=now)
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            continue  # another long-poll of the same gateway got it first
        await advance_attempt(session, command.attempt_id, AttemptState.SENT, now)
        commands.append(api.Command(
            command_id=command.id, lock_id=command.lock_id, ble_address=ble_address,
            frame_b64=api.encode_frame(command.frame), expires_at_ms=to_ms(command.expires_at),
        ))
    return commands


async def record_results(session: AsyncSession, gateway: Gateway, results: list[api.CommandResult],
                         now: dt.datetime) -> api.ResultsAck:
    accepted: list[uuid.UUID] = []
    for result in results:
        command = await session.get(LockCommand, result.command_id)
        if command is None or command.gateway_id != gateway.id:
            continue  # not this gateway's command: not acknowledged, so it shows up in the gateway's logs
        accepted.append(command.id)
        if command.outcome is not None:
            continue  # already recorded: idempotent
        command.outcome, command.reject_reason = result.outcome.value, result.reject_reason
        command.detail, command.reported_at = result.detail, from_ms(result.reported_at_ms)
        await advance_attempt(session, command.attempt_id, _RESULT_STATES[result.outcome], now)
    await session.flush()
    return api.ResultsAck(accepted=accepted)


async def record_heartbeat(session: AsyncSession, gateway: Gateway, beat: api.Heartbeat,
                           now: dt.datetime) -> api.HeartbeatAck:
    # Transit time is ignored: a few ms against drifts of seconds. Gateway offset = its clock - ours.
    gateway_offset_ms = beat.sent_at_ms - to_ms(now)
    _check_plausible(beat, to_ms(now) + gateway_offset_ms)
    gateway.last_seen_at, gateway.clock_offset_ms, gateway.queued_events = now, gateway_offset_ms, beat.queued_events
    locks = {lock.id: lock for lock in
             (await session.execute(select(Lock).where(Lock.gateway_id == gateway.id))).scalars().all()}
    for presence in beat.locks:
        lock = locks.get(presence.lock_id)
        if lock is None:
            continue
        lock.connected = presence.connected
        if presence.connected:
            lock.last_seen_at = now
        if presence.battery_pct is not None:
            lock.battery_pct = presence.battery_pct
        if presence.lock_clock_offset_ms is not None:
            lock.clock_offset_ms = presence.lock_clock_offset_ms + gateway_offset_ms
    await session.flush()
    return api.HeartbeatAck(server_time_ms=to_ms(now))


def _check_plausible(beat: api.Heartbeat, gateway_clock_ms: int) -> None:
    """Refuse numbers no honest gateway sends: stored, they would break every later unlock (or the insert)."""
    if beat.queued_events > MAX_QUEUED_EVENTS:
        raise InvalidRequest(f"queued_events={beat.queued_events} is beyond {MAX_QUEUED_EVENTS}")
    for presence in beat.locks:
        if presence.lock_clock_offset_ms is None:
            continue
        lock_clock_ms = gateway_clock_ms + presence.lock_clock_offset_ms
        if not EPOCH_MS_MIN <= lock_clock_ms <= EPOCH_MS_MAX:  # the same bounds as every wire timestamp
            raise InvalidRequest(
                f"lock {presence.lock_id}: lock_clock_offset_ms={presence.lock_clock_offset_ms} puts the lock's "
                f"clock at {lock_clock_ms}, which is not epoch milliseconds"
            )
