"""Gateways and the door locks they serve."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from sqlalchemy import BigInteger, Enum, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, id_column


class Gateway(Base):
    __tablename__ = "gateways"

    id: Mapped[uuid.UUID] = id_column()
    property_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("properties.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    clock_offset_ms: Mapped[int] = mapped_column(BigInteger, default=0)  # gateway clock - server clock
    queued_events: Mapped[int] = mapped_column(default=0)


class BoltState(StrEnum):
    UNKNOWN = "unknown"
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    JAMMED = "jammed"


class DoorState(StrEnum):
    UNKNOWN = "unknown"
    CLOSED = "closed"
    OPEN = "open"


class Lock(Base):
    __tablename__ = "locks"

    id: Mapped[uuid.UUID] = id_column()
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    gateway_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("gateways.id"), index=True)
    ble_address: Mapped[str] = mapped_column(String(17), unique=True)
    # The lock's own HMAC key, provisioned at pairing. It never leaves the backend.
    key: Mapped[bytes] = mapped_column(LargeBinary(32))
    command_counter: Mapped[int] = mapped_column(BigInteger, default=0)  # last counter signed
    clock_offset_ms: Mapped[int] = mapped_column(BigInteger, default=0)  # lock clock - server clock
    last_event_seq: Mapped[int] = mapped_column(BigInteger, default=0)  # highest sequence stored
    missing_events: Mapped[int] = mapped_column(default=0)  # skipped sequence numbers not received (yet)
    battery_pct: Mapped[int | None] = mapped_column(default=None)
    connected: Mapped[bool] = mapped_column(default=False)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    bolt: Mapped[BoltState] = mapped_column(
        Enum(BoltState, native_enum=False, length=12), default=BoltState.UNKNOWN
    )
    door: Mapped[DoorState] = mapped_column(
        Enum(DoorState, native_enum=False, length=12), default=DoorState.UNKNOWN
    )
    # occurred_at of the newest event that set bolt/door: late events never roll state back.
    state_occurred_at: Mapped[dt.datetime | None] = mapped_column(default=None)
