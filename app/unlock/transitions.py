"""Attempt state changes as compare-and-set updates.

Gateway results and lock records for the same attempt arrive concurrently (often within a few
ms of each other, possibly on different replicas). A read-modify-write would let the later commit
overwrite the earlier one ("acknowledged" erasing "jammed"); a conditional UPDATE cannot.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import LockCommand, UnlockAttempt
from models.unlock import AttemptState as S

_UNDELIVERED = frozenset({S.PENDING, S.SENT, S.EXPIRED})

# new state -> the states it may replace. A lock record outranks a gateway result, which outranks a timeout.
ALLOWED_FROM: dict[S, frozenset[S]] = {
    S.SENT: frozenset({S.PENDING}),
    S.EXPIRED: frozenset({S.PENDING, S.SENT}),
    S.FAILED_NOT_DELIVERED: _UNDELIVERED,
    S.UNKNOWN: _UNDELIVERED,
    S.ACKNOWLEDGED: _UNDELIVERED | {S.UNKNOWN},
    S.REJECTED_BY_LOCK: _UNDELIVERED | {S.UNKNOWN, S.ACKNOWLEDGED, S.FAILED_NOT_DELIVERED},
    S.JAMMED: _UNDELIVERED | {S.UNKNOWN, S.ACKNOWLEDGED, S.FAILED_NOT_DELIVERED, S.REJECTED_BY_LOCK},
    S.CONFIRMED: _UNDELIVERED | {S.UNKNOWN, S.ACKNOWLEDGED, S.FAILED_NOT_DELIVERED, S.REJECTED_BY_LOCK, S.JAMMED},
}


# What the tenant reads once a granted attempt did not simply open the door; the decision's own reason
# stays in unlock_attempts.reason (shown again if a lock record later confirms the attempt).
OUTCOME_REASON: dict[S, str] = {
    S.FAILED_NOT_DELIVERED: "网关未能连上门锁，开门指令没有送达，门未打开。请稍后重试；多次失败请联系房东。",
    S.UNKNOWN: "开门指令已发给门锁，但没有收到门锁的回复，无法确认门是否已开。门锁上报记录后状态会更新。",
    S.REJECTED_BY_LOCK: "门锁拒绝了这条开门指令，门未打开。请重试；多次失败请联系房东。",
    S.EXPIRED: "开门指令在送达门锁之前已过期，门未打开。请重试。",
    S.JAMMED: "门锁报告锁舌卡住，门未打开。已记录故障，请联系房东检修。",
}


async def advance_attempt(session: AsyncSession, attempt_id: uuid.UUID, new_state: S, now: dt.datetime) -> bool:
    """Move the attempt to `new_state` if its current state allows; True if it moved."""
    result = await session.execute(
        update(UnlockAttempt)
        .where(UnlockAttempt.id == attempt_id, UnlockAttempt.state.in_(ALLOWED_FROM[new_state]))
        .values(state=new_state, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# A handed-out command is given up this long after its expiry: time for a late gateway result to land.
EXPIRY_GRACE = dt.timedelta(seconds=5)


async def expire_overdue(session: AsyncSession, now: dt.datetime, *, attempt_id: uuid.UUID | None = None,
                         tenant_id: uuid.UUID | None = None) -> None:
    """Mark expired, in one UPDATE, the attempts whose command nobody delivered before it expired."""
    overdue = select(LockCommand.attempt_id).where(LockCommand.expires_at < now - EXPIRY_GRACE)
    statement = update(UnlockAttempt).where(
        UnlockAttempt.state.in_(ALLOWED_FROM[S.EXPIRED]), UnlockAttempt.id.in_(overdue)
    )
    if attempt_id is not None:
        statement = statement.where(UnlockAttempt.id == attempt_id)
    if tenant_id is not None:
        statement = statement.where(UnlockAttempt.tenant_id == tenant_id)
    await session.execute(
        statement.values(state=S.EXPIRED, updated_at=now).execution_options(synchronize_session=False)
    )
