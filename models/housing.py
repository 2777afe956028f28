"""Rental housing: properties, their units and who rents which unit when."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, id_column


class Property(Base):
    __tablename__ = "properties"

    id: Mapped[uuid.UUID] = id_column()
    landlord_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    town_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("towns.id"), index=True)
    address: Mapped[str] = mapped_column(String(200))


class Unit(Base):
    __tablename__ = "units"

    id: Mapped[uuid.UUID] = id_column()
    property_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("properties.id"), index=True)
    label: Mapped[str] = mapped_column(String(40))  # "101室"


class Tenancy(Base):
    """A tenant's right to enter a unit, from check-in to check-out."""

    __tablename__ = "tenancies"

    id: Mapped[uuid.UUID] = id_column()
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime | None] = mapped_column(default=None)
