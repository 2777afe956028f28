"""Lock records: signed door and bolt events as the lock reported them."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, id_column


class LockEvent(Base):
    __tablename__ = "lock_events"
    __table_args__ = (UniqueConstraint("lock_id", "seq"),)  # dedupe: the same event arrives twice

    id: Mapped[uuid.UUID] = id_column()
    lock_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("locks.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))  # lock_frames.EventKind name, lower case
    lock_occurred_at_ms: Mapped[int] = mapped_column(BigInteger)  # the lock's own clock
    occurred_at: Mapped[dt.datetime] = mapped_column(index=True)  # corrected by the measured drift
    received_at: Mapped[dt.datetime]  # server clock at intake
    gateway_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("gateways.id"))
    command_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    value: Mapped[int] = mapped_column(default=0)
    battery_pct: Mapped[int] = mapped_column(default=0)
