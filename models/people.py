"""People who use HealthLock and their sign-in sessions."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, id_column


class Role(StrEnum):
    TENANT = "tenant"
    LANDLORD = "landlord"
    POLICE = "police"
    GRID_WORKER = "grid_worker"
    ADMIN = "admin"


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = id_column()
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=20))
    phone: Mapped[str] = mapped_column(String(32), unique=True)  # sign-in name; shown masked
    family_name: Mapped[str] = mapped_column(String(20))
    given_name: Mapped[str] = mapped_column(String(40))
    # Keyed digest of the ID-card number; the number itself is never stored.
    id_number_digest: Mapped[str | None] = mapped_column(String(64), default=None)
    password_hash: Mapped[str] = mapped_column(String(200))
    police_station_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("police_stations.id"), default=None
    )
    created_at: Mapped[dt.datetime]


class UserSession(Base):
    """A bearer token handed out at sign-in; only its digest is kept."""

    __tablename__ = "user_sessions"

    token_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
