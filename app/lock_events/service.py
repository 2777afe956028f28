"""Event intake: verify each lock record, store it once, derive state and raise what it warrants.

Records arrive late, twice and out of order: dedupe by (lock, seq), keep late ones, and let only
the newest occurred_at set the lock's bolt and door state.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.masking import mask_name
from alerts.raising import AlertRequest, raise_alert
from app.audit import record_audit
from app.clock import from_ms
from app.locks.place import place_of_lock
from app.unlock.transitions import advance_attempt
from lock_gateway.protocol import gateway_api as api
from lock_gateway.protocol.lock_frames import EventFrame, EventKind, FrameError, RejectReason
from models import Gateway, IsolationOrder, Lock, LockCommand, LockEvent, User
from models.alerts import AlertKind, Severity
from models.devices import BoltState, DoorState
from models.unlock import AttemptState

_BOLT = {EventKind.UNLOCKED: BoltState.UNLOCKED, EventKind.LOCKED: BoltState.LOCKED, EventKind.JAMMED: BoltState.JAMMED}
_DOOR = {EventKind.DOOR_OPENED_INSIDE: DoorState.OPEN, EventKind.DOOR_OPENED_OUTSIDE: DoorState.OPEN,
         EventKind.DOOR_CLOSED: DoorState.CLOSED}
_ISOLATION_KIND = {EventKind.DOOR_OPENED_INSIDE: AlertKind.ISOLATED_WENT_OUT,
                   EventKind.DOOR_OPENED_OUTSIDE: AlertKind.ISOLATED_WENT_IN}


def _receipt(
    index: int, status: api.EventStatus, frame: EventFrame | None = None, reason: str = ""
) -> api.EventReceipt:
    return api.EventReceipt(index=index, lock_id=frame.lock_id if frame else None, seq=frame.seq if frame else None,
                            status=status, reason=reason)


async def ingest_events(session: AsyncSession, gateway: Gateway, upload: api.EventUpload,
                        now: dt.datetime) -> api.EventsAck:
    receipts = []
    for index, uploaded in enumerate(upload.events):
        receipts.append(await _ingest_one(session, gateway, index, uploaded, now))
    return api.EventsAck(receipts=receipts)


async def _ingest_one(session: AsyncSession, gateway: Gateway, index: int, uploaded: api.UploadedEvent,
                      now: dt.datetime) -> api.EventReceipt:
    try:
        frame = EventFrame.decode(api.decode_frame(uploaded.frame_b64))
    except FrameError as exc:
        _security_audit(session, gateway, now, "malformed_event_frame", str(exc))
        return _receipt(index, api.EventStatus.REJECTED, reason=f"unreadable frame: {exc}")
    lock = await session.get(Lock, frame.lock_id)
    if lock is None or lock.gateway_id != gateway.id:
        _security_audit(session, gateway, now, "event_for_foreign_lock", str(frame.lock_id))
        return _receipt(index, api.EventStatus.REJECTED, frame, "lock unknown or not served by this gateway")
    if not frame.verify(lock.key):
        _security_audit(session, gateway, now, "forged_event_frame", f"lock {lock.id} seq {frame.seq}")
        return _receipt(index, api.EventStatus.REJECTED, frame, "MAC does not verify with this lock's key")
    # Corrected by the drift measured at the last contact; and never later than its arrival: a lock clock
    # that jumped ahead since then would otherwise date the event in the future and pin the lock's state.
    arrived_at = min(now, from_ms(uploaded.received_at_ms - gateway.clock_offset_ms))
    occurred_at = min(from_ms(frame.occurred_at_ms - lock.clock_offset_ms), arrived_at)
    try:
        async with session.begin_nested():
            session.add(LockEvent(
                lock_id=lock.id, seq=frame.seq, kind=frame.kind.name.lower(), lock_occurred_at_ms=frame.occurred_at_ms,
                occurred_at=occurred_at, received_at=now, gateway_id=gateway.id,
                command_id=frame.command_id if frame.command_id.int else None, value=frame.value,
                battery_pct=frame.battery_pct,
            ))
    except IntegrityError:
        return _receipt(index, api.EventStatus.DUPLICATE, frame)
    _track_sequence(session, gateway, lock, frame, now)
    lock.battery_pct, lock.last_seen_at = frame.battery_pct, now
    if lock.state_occurred_at is None or occurred_at >= lock.state_occurred_at:
        lock.bolt = _BOLT.get(frame.kind, lock.bolt)
        lock.door = _DOOR.get(frame.kind, lock.door)
        if frame.kind in _BOLT or frame.kind in _DOOR:
            lock.state_occurred_at = occurred_at
    await _apply_to_attempt(session, frame, now)
    await _raise_for_event(session, lock, frame, occurred_at, now)
    await session.flush()
    return _receipt(index, api.EventStatus.STORED, frame)


def _track_sequence(session: AsyncSession, gateway: Gateway, lock: Lock, frame: EventFrame, now: dt.datetime) -> None:
    if frame.seq > lock.last_event_seq + 1:
        missing = frame.seq - lock.last_event_seq - 1
        lock.missing_events += missing
        record_audit(session, at=now, actor_type="gateway", actor_id=gateway.id, action="lock_event_gap",
                     subject_type="lock", subject_id=lock.id,
                     detail={"after_seq": lock.last_event_seq, "next_seq": frame.seq, "missing": missing})
    elif frame.seq < lock.last_event_seq:
        # Stored for the first time (duplicates never get here), so it was counted missing when the gap opened.
        lock.missing_events = max(0, lock.missing_events - 1)
    lock.last_event_seq = max(lock.last_event_seq, frame.seq)


_ATTEMPT_STATE_BY_EVENT = {
    EventKind.UNLOCKED: AttemptState.CONFIRMED,  # the only proof the door was opened for this request
    EventKind.JAMMED: AttemptState.JAMMED,
    EventKind.COMMAND_REJECTED: AttemptState.REJECTED_BY_LOCK,
}


async def _apply_to_attempt(session: AsyncSession, frame: EventFrame, now: dt.datetime) -> None:
    new_state = _ATTEMPT_STATE_BY_EVENT.get(frame.kind)
    if new_state is None or not frame.command_id.int:
        return
    attempt_id = await session.scalar(select(LockCommand.attempt_id).where(LockCommand.id == frame.command_id))
    if attempt_id is not None:
        await advance_attempt(session, attempt_id, new_state, now)


async def _raise_for_event(session: AsyncSession, lock: Lock, frame: EventFrame, occurred_at: dt.datetime,
                           now: dt.datetime) -> None:
    if frame.kind in _ISOLATION_KIND:
        await _raise_isolation_alerts(session, lock, _ISOLATION_KIND[frame.kind], occurred_at, now)
    elif frame.kind in (EventKind.COMMAND_REJECTED, EventKind.TAMPER):
        reason = _reject_reason_name(frame.value) if frame.kind is EventKind.COMMAND_REJECTED else "tamper"
        place, _town = await place_of_lock(session, lock)
        record_audit(session, at=now, actor_type="lock", actor_id=lock.id, action=f"lock_{frame.kind.name.lower()}",
                     subject_type="lock", subject_id=lock.id, detail={"reason": reason, "seq": frame.seq})
        await raise_alert(session, AlertRequest(
            kind=AlertKind.LOCK_SECURITY, severity=Severity.NOTICE, subject_masked=_security_wording(frame),
            subject_user_id=None,
            place=place, occurred_at=occurred_at, dedupe_key=f"lock_security:{lock.id}:{reason}",
        ), now)


async def _raise_isolation_alerts(session: AsyncSession, lock: Lock, kind: AlertKind, occurred_at: dt.datetime,
                                  now: dt.datetime) -> None:
    orders = (
        await session.execute(
            select(IsolationOrder, User).join(User, User.id == IsolationOrder.person_id).where(
                IsolationOrder.unit_id == lock.unit_id, IsolationOrder.starts_at <= occurred_at,
                IsolationOrder.ends_at > occurred_at, IsolationOrder.lifted_at.is_(None),
            )
        )
    ).all()
    if not orders:
        return
    place, town = await place_of_lock(session, lock)
    if not town.gating_enabled:
        return
    for order, person in orders:
        await raise_alert(session, AlertRequest(
            kind=kind, severity=Severity.WARNING, subject_masked=mask_name(person.family_name),
            subject_user_id=person.id, place=place, occurred_at=occurred_at,
            dedupe_key=f"{kind.value}:{order.id}",
        ), now)


_SECURITY_WORDING = {
    RejectReason.BAD_MAC: "签名无效的开门指令",
    RejectReason.REPLAYED: "重放的旧开门指令",
    RejectReason.EXPIRED: "过期的开门指令",
    RejectReason.WRONG_LOCK: "发往其他门锁的指令",
    RejectReason.MALFORMED: "格式错误的指令",
    RejectReason.UNSUPPORTED_ACTION: "不支持的操作",
}


def _reject_reason_name(value: int) -> str:
    try:
        return RejectReason(value).name.lower()
    except ValueError:
        return f"reason_{value}"


def _security_wording(frame: EventFrame) -> str:
    """What the lock-security notice calls the event, in the language of its readers."""
    if frame.kind is EventKind.TAMPER:
        return "门锁被撬报警"
    try:
        return f"门锁拒绝了{_SECURITY_WORDING[RejectReason(frame.value)]}"
    except ValueError:
        return f"门锁拒绝了指令（代码{frame.value}）"


def _security_audit(session: AsyncSession, gateway: Gateway, now: dt.datetime, action: str, detail: str) -> None:
    record_audit(session, at=now, actor_type="gateway", actor_id=gateway.id, action=action,
                 subject_type="gateway", subject_id=gateway.id, detail={"detail": detail[:300]})


