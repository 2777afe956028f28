"""Cloud-unlock attempts and the signed commands that carry them to a lock."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from sqlalchemy import BigInteger, Enum, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, id_column


class AttemptState(StrEnum):
    DENIED = "denied"  # the policy kept the door shut; no command exists
    PENDING = "pending"  # command written, no gateway has taken it yet
    SENT = "sent"  # a gateway took the command
    ACKNOWLEDGED = "acknowledged"  # the lock accepted the frame; not yet proof the bolt moved
    CONFIRMED = "confirmed"  # a lock record says the bolt moved for this command
    REJECTED_BY_LOCK = "rejected_by_lock"  # the lock refused the frame (MAC, counter, expiry)
    FAILED_NOT_DELIVERED = "failed_not_delivered"  # nothing reached the lock
    UNKNOWN = "unknown"  # written to the lock, answer lost
    EXPIRED = "expired"  # nobody delivered it before it expired
    JAMMED = "jammed"  # the lock recorded that its bolt did not move


TERMINAL_STATES = frozenset(
    {
        AttemptState.DENIED,
        AttemptState.CONFIRMED,
        AttemptState.REJECTED_BY_LOCK,
        AttemptState.FAILED_NOT_DELIVERED,
        AttemptState.EXPIRED,
        AttemptState.JAMMED,
    }
)


class UnlockAttempt(Base):
    __tablename__ = "unlock_attempts"

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    lock_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locks.id"), index=True)
    state: Mapped[AttemptState] = mapped_column(Enum(AttemptState, native_enum=False, length=24))
    granted: Mapped[bool]
    reason_code: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(String(300))  # the decision in words, for the tenant
    health_colour: Mapped[str | None] = mapped_column(String(10), default=None)
    requested_at: Mapped[dt.datetime] = mapped_column(index=True)
    updated_at: Mapped[dt.datetime]


class LockCommand(Base):
    """The outbox row for one signed unlock frame; its id is the command id inside the frame."""

    __tablename__ = "lock_commands"

    id: Mapped[uuid.UUID] = id_column()
    attempt_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("unlock_attempts.id"), unique=True)
    lock_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locks.id"), index=True)
    gateway_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("gateways.id"), index=True)
    counter: Mapped[int] = mapped_column(BigInteger)
    frame: Mapped[bytes] = mapped_column(LargeBinary(128))
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)  # server clock
    fetched_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    outcome: Mapped[str | None] = mapped_column(String(24), default=None)  # gateway's CommandOutcome
    reject_reason: Mapped[int | None] = mapped_column(default=None)
    detail: Mapped[str] = mapped_column(String(500), default="")
    reported_at: Mapped[dt.datetime | None] = mapped_column(default=None)
