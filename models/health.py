"""Health-code statuses (history, with their source) and home-isolation orders."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, id_column


class HealthColour(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


class HealthCodeStatus(Base):
    """One observation of a person's colour. Append-only: a change is a new row with its source."""

    __tablename__ = "health_code_statuses"

    id: Mapped[uuid.UUID] = id_column()
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    code_digest: Mapped[str] = mapped_column(String(64))  # keyed digest of the code string
    colour: Mapped[HealthColour] = mapped_column(Enum(HealthColour, native_enum=False, length=10))
    source: Mapped[str] = mapped_column(String(100))  # which authority said so
    observed_at: Mapped[dt.datetime] = mapped_column(index=True)


class IsolationOrder(Base):
    __tablename__ = "isolation_orders"

    id: Mapped[uuid.UUID] = id_column()
    person_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    reason: Mapped[str] = mapped_column(String(200), default="")
    placed_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)
    lifted_at: Mapped[dt.datetime | None] = mapped_column(default=None)
