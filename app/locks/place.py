"""Where a lock is, in the terms alerts need: unit, property, town, police station."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.raising import AlertPlace
from models import Lock, PoliceStation, Property, Town, Unit


async def place_of_lock(session: AsyncSession, lock: Lock) -> tuple[AlertPlace, Town]:
    row = (
        await session.execute(
            select(Unit, Property, Town, PoliceStation)
            .join(Property, Property.id == Unit.property_id)
            .join(Town, Town.id == Property.town_id)
            .join(PoliceStation, PoliceStation.id == Town.police_station_id)
            .where(Unit.id == lock.unit_id)
        )
    ).one()
    unit, prop, town, station = row
    place = AlertPlace(
        town_id=town.id,
        town_name=town.name,
        timezone=town.timezone,
        police_station_id=station.id,
        duty_phone=station.duty_phone,
        address=f"{prop.address}{unit.label}",
        unit_id=unit.id,
        lock_id=lock.id,
    )
    return place, town
