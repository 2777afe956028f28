"""The demo world: a town with its police station, a landlord's property with four units, one
gateway and four locks, tenants of every colour and one resident under home isolation.

Writes two files for the other processes:
  simulator world  - what the physical world holds: lock keys (as provisioned at the factory),
                     the health authority's codes, the fake providers' API keys;
  demo manifest    - what a tester knows: phones and passwords, lock ids, the gateway token,
                     and what each scenario expects.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.secrets import hash_password, id_number_digest, new_token, token_digest
from lock_gateway.protocol.lock_frames import LOCK_KEY_LEN, ble_address_for
from models import (
    Gateway,
    IsolationOrder,
    Lock,
    PoliceStation,
    Property,
    Tenancy,
    Town,
    Unit,
    User,
)
from models.people import Role

DEMO_PASSWORD = "healthlock-demo"  # noqa: S105 - printed in the README; the demo world only
TOWN, STATION, STATION_PHONE = "姚江镇", "姚江派出所", "13800000110"
ADDRESS = "幸福路8号"


@dataclass(frozen=True)
class Resident:
    key: str  # how scenarios refer to this person
    family_name: str
    given_name: str
    phone: str
    unit: str
    colour: str | None  # at the authority; None = has no code
    id_number: str  # fictitious; the backend keeps only its keyed digest, the authority knows it in full
    isolated: bool = False


RESIDENTS = (
    Resident("green", "陈", "明", "13700000001", "101室", "green", "330681199001010011"),
    Resident("yellow", "李", "华", "13700000002", "102室", "yellow", "330681199002020022"),
    Resident("red", "张", "伟", "13700000003", "103室", "red", "330681199003030033"),
    Resident("no_code", "孙", "丽", "13700000004", "104室", None, "330681199004040044"),
    Resident("isolated", "赵", "强", "13700000005", "104室", "green", "330681199005050055", isolated=True),
)


async def seed_demo_world(session: AsyncSession, now: dt.datetime, secret_key: str,
                          password_hash: str | None = None) -> dict[str, Any]:
    """Create the world; return {"simulator_world": ..., "manifest": ...}. Caller commits.

    `secret_key` must be the backend's HEALTHLOCK_SECRET_KEY: ID numbers are stored as digests keyed by it.
    """
    password_hash = password_hash or hash_password(DEMO_PASSWORD)
    station = PoliceStation(id=uuid.uuid4(), name=STATION, duty_phone=STATION_PHONE)
    town = Town(id=uuid.uuid4(), name=TOWN, timezone="Asia/Shanghai", police_station_id=station.id)
    landlord = _user(Role.LANDLORD, "王", "建国", "13900000001", password_hash, now)
    officer = _user(Role.POLICE, "周", "警官", "13800000111", password_hash, now, station.id)
    prop = Property(id=uuid.uuid4(), landlord_id=landlord.id, town_id=town.id, address=ADDRESS)
    gateway_token = new_token("gw")
    gateway = Gateway(id=uuid.uuid4(), property_id=prop.id, name=f"{ADDRESS}网关",
                      token_digest=token_digest(gateway_token))
    # Without ORM relationships the unit of work cannot order inserts by foreign key: flush one by one.
    for row in (station, town, landlord, officer, prop, gateway):
        session.add(row)
        await session.flush()

    units: dict[str, Unit] = {}
    locks: dict[str, Lock] = {}
    for label in dict.fromkeys(r.unit for r in RESIDENTS):
        unit = Unit(id=uuid.uuid4(), property_id=prop.id, label=label)
        lock_id = uuid.uuid4()
        lock = Lock(id=lock_id, unit_id=unit.id, gateway_id=gateway.id, ble_address=ble_address_for(lock_id),
                    key=secrets.token_bytes(LOCK_KEY_LEN))
        units[label], locks[label] = unit, lock
        session.add(unit)
        await session.flush()
        session.add(lock)
        await session.flush()

    people: dict[str, dict[str, Any]] = {}
    codes = []
    for resident in RESIDENTS:
        person = _user(Role.TENANT, resident.family_name, resident.given_name, resident.phone, password_hash, now)
        person.id_number_digest = id_number_digest(secret_key, resident.id_number)
        session.add(person)
        await session.flush()
        session.add(Tenancy(tenant_id=person.id, unit_id=units[resident.unit].id,
                            starts_at=now - dt.timedelta(days=30)))
        await session.flush()
        code = f"HC-{secrets.token_hex(6).upper()}" if resident.colour else None
        if code:
            codes.append({"code": code, "colour": resident.colour, "holder_id_number": resident.id_number})
        if resident.isolated:
            session.add(IsolationOrder(person_id=person.id, unit_id=units[resident.unit].id,
                                       starts_at=now - dt.timedelta(days=2), ends_at=now + dt.timedelta(days=12),
                                       reason="密接者居家隔离14天", placed_by_id=None))
        people[resident.key] = {
            "phone": resident.phone, "password": DEMO_PASSWORD, "masked_name": f"{resident.family_name}某",
            "health_code": code, "unit": resident.unit, "lock_id": str(locks[resident.unit].id),
        }
    await session.flush()
    authority_key, sms_key = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    return {
        "simulator_world": {
            "locks": [{"lock_id": str(lock.id), "key_hex": lock.key.hex(), "label": label, "battery_pct": 90,
                       "clock_offset_ms": 0} for label, lock in locks.items()],
            "health_codes": codes,
            "authority_api_key": authority_key,
            "sms_api_key": sms_key,
        },
        "manifest": {
            "town": TOWN, "station_phone": STATION_PHONE, "address": ADDRESS,
            "gateway_token": gateway_token, "authority_api_key": authority_key, "sms_api_key": sms_key,
            "people": people,
            "landlord": {"phone": landlord.phone, "password": DEMO_PASSWORD},
            "police": {"phone": officer.phone, "password": DEMO_PASSWORD},
            "locks": {label: str(lock.id) for label, lock in locks.items()},
        },
    }


def _user(role: Role, family: str, given: str, phone: str, password_hash: str, now: dt.datetime,
          station_id: uuid.UUID | None = None) -> User:
    return User(id=uuid.uuid4(), role=role, phone=phone, family_name=family, given_name=given,
                password_hash=password_hash, police_station_id=station_id, created_at=now)


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Lock keys and tokens inside: readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
