"""Where things are and who answers for them: towns and their police stations."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, id_column


class PoliceStation(Base):
    __tablename__ = "police_stations"

    id: Mapped[uuid.UUID] = id_column()
    name: Mapped[str] = mapped_column(String(100))
    duty_phone: Mapped[str] = mapped_column(String(32))  # where alert SMS go


class Town(Base):
    """A jurisdiction: its police station, its zone and its access policy."""

    __tablename__ = "towns"

    id: Mapped[uuid.UUID] = id_column()
    name: Mapped[str] = mapped_column(String(100), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")  # IANA zone
    police_station_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("police_stations.id"))
    # "Epidemic over": doors open on tenancy alone, no health-code gating, no health alerts.
    gating_enabled: Mapped[bool] = mapped_column(default=True)
    # Overrides of the default policy, as data (see app/unlock/policy.py for the keys).
    policy_overrides: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
