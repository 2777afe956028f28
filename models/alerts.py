"""Alerts to police and grid workers, and each attempt to deliver them."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, id_column


class AlertKind(StrEnum):
    RED_CODE_ENTRY = "red_code_entry"
    YELLOW_CODE_ENTRY = "yellow_code_entry"
    NO_CODE_ATTEMPT = "no_code_attempt"
    BORROWED_CODE = "borrowed_code"  # someone else's health code presented at the door
    REPEATED_FOREIGN_DOOR = "repeated_foreign_door"
    ISOLATED_WENT_OUT = "isolated_went_out"
    ISOLATED_WENT_IN = "isolated_went_in"
    AUTHORITY_UNREACHABLE = "authority_unreachable"
    LOCK_SECURITY = "lock_security"  # forged frames, rejected replays, tamper


class Severity(StrEnum):
    NOTICE = "notice"
    WARNING = "warning"
    URGENT = "urgent"


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # gave up after the last retry


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[uuid.UUID] = id_column()
    kind: Mapped[AlertKind] = mapped_column(Enum(AlertKind, native_enum=False, length=32))
    severity: Mapped[Severity] = mapped_column(Enum(Severity, native_enum=False, length=10))
    status: Mapped[AlertStatus] = mapped_column(
        Enum(AlertStatus, native_enum=False, length=14), default=AlertStatus.OPEN
    )
    subject_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)
    subject_masked: Mapped[str] = mapped_column(String(40))  # "张某": what police see first
    unit_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("units.id"), default=None)
    lock_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("locks.id"), default=None)
    town_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("towns.id"))
    police_station_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("police_stations.id"), index=True)
    occurred_at: Mapped[dt.datetime]
    dedupe_key: Mapped[str] = mapped_column(String(200), index=True)
    occurrences: Mapped[int] = mapped_column(default=1)
    text: Mapped[str] = mapped_column(String(500))  # the SMS as rendered
    created_at: Mapped[dt.datetime]
    last_occurred_at: Mapped[dt.datetime]


class AlertDelivery(Base):
    __tablename__ = "alert_deliveries"

    id: Mapped[uuid.UUID] = id_column()  # also the provider's idempotency key
    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alerts.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))  # "sms", "console"
    recipient: Mapped[str] = mapped_column(String(64))
    status: Mapped[DeliveryStatus] = mapped_column(
        Enum(DeliveryStatus, native_enum=False, length=10), default=DeliveryStatus.PENDING, index=True
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime]
    claimed_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    sent_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    provider_message_id: Mapped[str | None] = mapped_column(String(100), default=None)
