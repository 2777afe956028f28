"""What police officers and landlords see: only their own station's alerts, only their own locks."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

from sqlalchemy import update

from alerts.raising import AlertPlace, AlertRequest, raise_alert
from app.seed import DEMO_PASSWORD
from lock_gateway.protocol import gateway_api as api
from lock_gateway.protocol.lock_frames import LOCK_KEY_LEN, EventKind, ble_address_for
from models import Alert, Gateway, Lock, PoliceStation, Property, Town, Unit, User
from models.alerts import AlertKind, Severity
from models.people import Role
from tests.app.harness import World, cheap_password_hash, now_ms

OTHER_OFFICER, OTHER_LANDLORD = "13800000222", "13900000002"


async def other_station_with_an_alert(world: World) -> uuid.UUID:
    """A second town and station with its own officer and one open alert; returns the alert id."""
    now = dt.datetime.now(dt.UTC)
    station = PoliceStation(id=uuid.uuid4(), name="枫桥派出所", duty_phone="13800000220")
    town = Town(id=uuid.uuid4(), name="枫桥镇", timezone="Asia/Shanghai", police_station_id=station.id)
    officer = User(id=uuid.uuid4(), role=Role.POLICE, phone=OTHER_OFFICER, family_name="吴", given_name="警官",
                   password_hash=cheap_password_hash(DEMO_PASSWORD), police_station_id=station.id, created_at=now)
    async with world.db() as session, session.begin():
        for row in (station, town, officer):
            session.add(row)
            await session.flush()
        place = AlertPlace(town_id=town.id, town_name=town.name, timezone=town.timezone,
                           police_station_id=station.id, duty_phone=station.duty_phone, address="枫桥路1号")
        alert = await raise_alert(session, AlertRequest(
            kind=AlertKind.NO_CODE_ATTEMPT, severity=Severity.WARNING, subject_masked="钱某", subject_user_id=None,
            place=place, occurred_at=now, dedupe_key="other-station"), now)
        return alert.id


async def other_landlords_lock(world: World) -> uuid.UUID:
    now = dt.datetime.now(dt.UTC)
    async with world.db() as session, session.begin():
        town_id = (await session.execute(Town.__table__.select())).first().id  # type: ignore[union-attr]
        landlord = User(id=uuid.uuid4(), role=Role.LANDLORD, phone=OTHER_LANDLORD, family_name="钱",
                        given_name="多", password_hash=cheap_password_hash(DEMO_PASSWORD), created_at=now)
        prop = Property(id=uuid.uuid4(), landlord_id=landlord.id, town_id=town_id, address="和平路2号")
        gateway = Gateway(id=uuid.uuid4(), property_id=prop.id, name="和平路网关", token_digest=secrets.token_hex(32))
        unit = Unit(id=uuid.uuid4(), property_id=prop.id, label="201室")
        lock_id = uuid.uuid4()
        lock = Lock(id=lock_id, unit_id=unit.id, gateway_id=gateway.id, ble_address=ble_address_for(lock_id),
                    key=secrets.token_bytes(LOCK_KEY_LEN))
        for row in (landlord, prop, gateway, unit, lock):
            session.add(row)
            await session.flush()
    return lock_id


async def test_police_see_only_their_own_stations_alerts_with_deliveries(world: World) -> None:
    elsewhere = await other_station_with_an_alert(world)
    await world.unlock("red")
    await world.unlock("no_code")

    ours = (await world.client.get("/api/v1/police/alerts", headers=await world.headers("police"))).json()
    theirs = (await world.client.get("/api/v1/police/alerts",
                                     headers=await world.backend.login(OTHER_OFFICER))).json()

    assert sorted(a["kind"] for a in ours) == ["no_code_attempt", "red_code_entry"]
    assert str(elsewhere) not in {a["alert_id"] for a in ours}
    assert [a["alert_id"] for a in theirs] == [str(elsewhere)]
    red = next(a for a in ours if a["kind"] == "red_code_entry")
    assert (red["severity"], red["status"], red["subject"], red["occurrences"]) == ("urgent", "open", "张某", 1)
    assert "红码人员张某开门，请核查" in red["text"]
    assert sorted(d["channel"] for d in red["deliveries"]) == ["console", "sms"]
    assert "张伟" not in str(ours)  # names are masked: surname + 某


async def test_police_alerts_filter_by_status(world: World) -> None:
    await world.unlock("red")
    await world.unlock("yellow")
    async with world.db() as session, session.begin():
        await session.execute(update(Alert).where(Alert.kind == AlertKind.YELLOW_CODE_ENTRY).values(status="resolved"))
    police = await world.headers("police")

    open_ = (await world.client.get("/api/v1/police/alerts", params={"status": "open"}, headers=police)).json()
    resolved = (await world.client.get("/api/v1/police/alerts", params={"status": "resolved"}, headers=police)).json()
    acknowledged = (await world.client.get("/api/v1/police/alerts", params={"status": "acknowledged"},
                                           headers=police)).json()

    assert [a["kind"] for a in open_] == ["red_code_entry"]
    assert [a["kind"] for a in resolved] == ["yellow_code_entry"]
    assert acknowledged == []


async def test_landlord_sees_lock_health_of_their_four_locks(world: World) -> None:
    green = world.lock_of("green")
    await world.client.post(f"{api.PREFIX}/heartbeat", headers=world.gateway, json={
        "sent_at_ms": now_ms(), "queued_events": 0,
        "locks": [{"lock_id": str(green), "connected": True, "battery_pct": 18}],
    })
    await world.post_events(world.event(green, EventKind.LOCKED), world.event(green, EventKind.DOOR_CLOSED))
    await other_landlords_lock(world)

    health = (await world.client.get("/api/v1/landlord/locks", headers=await world.headers("landlord"))).json()

    assert [h["unit"] for h in health] == ["幸福路8号101室", "幸福路8号102室", "幸福路8号103室", "幸福路8号104室"]
    mine = next(h for h in health if h["lock_id"] == str(green))
    assert (mine["connected"], mine["battery_pct"], mine["bolt"], mine["door"]) == (True, 80, "locked", "closed")
    assert mine["last_seen_at"] is not None
    assert mine["missing_events"] == 0
    quiet = next(h for h in health if h["lock_id"] == str(world.lock_of("yellow")))
    assert (quiet["connected"], quiet["battery_pct"], quiet["bolt"], quiet["last_seen_at"]) == (
        False, None, "unknown", None)


async def test_landlord_reads_records_of_own_locks_only(world: World) -> None:
    green = world.lock_of("green")
    await world.unlock("green")
    [command] = await world.take_commands()
    t0 = now_ms() - 2_000
    await world.post_events(
        world.event(green, EventKind.UNLOCKED, command_id=uuid.UUID(command["command_id"]), occurred_at_ms=t0),
        world.event(green, EventKind.DOOR_OPENED_OUTSIDE, occurred_at_ms=t0 + 1_000),
    )
    foreign = await other_landlords_lock(world)
    landlord = await world.headers("landlord")

    records = await world.client.get(f"/api/v1/landlord/locks/{green}/records", headers=landlord)
    limited = await world.client.get(f"/api/v1/landlord/locks/{green}/records", params={"limit": 1},
                                     headers=landlord)
    not_mine = await world.client.get(f"/api/v1/landlord/locks/{foreign}/records", headers=landlord)
    owner = await world.client.get(f"/api/v1/landlord/locks/{foreign}/records",
                                   headers=await world.backend.login(OTHER_LANDLORD))
    theirs = await world.client.get("/api/v1/landlord/locks", headers=await world.backend.login(OTHER_LANDLORD))

    assert records.status_code == 200
    assert [(r["seq"], r["kind"]) for r in records.json()] == [(2, "door_opened_outside"), (1, "unlocked")]
    assert records.json()[1]["command_id"] == command["command_id"]
    assert [r["seq"] for r in limited.json()] == [2]
    assert not_mine.status_code == 404
    assert not_mine.json()["error"] == "lock_not_found"
    assert (owner.status_code, owner.json()) == (200, [])
    assert [h["lock_id"] for h in theirs.json()] == [str(foreign)]
