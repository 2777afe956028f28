"""Cloud unlock decisions through POST /api/v1/tenant/unlocks: the door, the command, the alerts, the SMS."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from app.clock import to_ms
from app.unlock.service import UNKNOWN_SETTLE, is_final
from lock_gateway.protocol.lock_frames import Action, CommandFrame
from models import Alert, HealthCodeStatus, LockCommand, Town, UnlockAttempt
from models.alerts import AlertKind, Severity
from models.unlock import AttemptState
from tests.app.harness import World

TTL_S = 30  # Settings.command_ttl_s default, which the backend fixture keeps
SHANGHAI = ZoneInfo("Asia/Shanghai")


async def command_of(world: World, attempt_id: str) -> LockCommand:
    commands = await world.all(select(LockCommand).where(LockCommand.attempt_id == uuid.UUID(attempt_id)))
    assert len(commands) == 1, commands
    return commands[0]


async def test_green_code_grants_and_writes_a_signed_command_for_the_lock(world: World) -> None:
    before_ms = to_ms(dt.datetime.now(dt.UTC))
    r = await world.unlock("green")
    after_ms = to_ms(dt.datetime.now(dt.UTC))

    assert r.status_code == 201, r.text
    view = r.json()
    assert (view["state"], view["granted"], view["reason_code"]) == ("pending", True, "green_code")
    assert view["final"] is False  # sent is not done: only a lock record confirms
    assert view["health_colour"] == "green"
    lock_id = world.lock_of("green")
    command = await command_of(world, view["attempt_id"])
    frame = CommandFrame.decode(command.frame)
    assert frame.verify(world.key_of(lock_id))
    assert (frame.lock_id, frame.command_id, frame.action) == (lock_id, command.id, Action.UNLOCK)
    assert before_ms + TTL_S * 1000 - 1000 <= frame.expires_at_ms <= after_ms + TTL_S * 1000 + 1000
    assert frame.expires_at_ms == to_ms(command.expires_at)  # no drift measured yet
    assert await world.alerts() == []


async def test_each_command_for_a_lock_carries_the_next_counter(world: World) -> None:
    counters = []
    for _ in range(3):
        r = await world.unlock("green")
        assert r.status_code == 201, r.text
        frame = CommandFrame.decode((await command_of(world, r.json()["attempt_id"])).frame)
        counters.append(frame.counter)
    assert counters == [1, 2, 3]
    other = await world.unlock("yellow")
    assert CommandFrame.decode((await command_of(world, other.json()["attempt_id"])).frame).counter == 1


async def test_green_code_is_kept_as_a_health_status_with_its_source(world: World) -> None:
    await world.unlock("green")
    statuses = await world.all(select(HealthCodeStatus))
    assert [(s.colour.value, s.source) for s in statuses] == [("green", "health-authority")]
    assert world.person("green")["health_code"] not in statuses[0].code_digest  # stored as a keyed digest


async def test_yellow_code_opens_door_and_warns_the_station_by_sms(world: World) -> None:
    r = await world.unlock("yellow")

    assert r.status_code == 201, r.text
    assert (r.json()["state"], r.json()["reason_code"]) == ("pending", "yellow_code")
    [alert] = await world.alerts()
    assert (alert.kind, alert.severity, alert.subject_masked) == (AlertKind.YELLOW_CODE_ENTRY, Severity.WARNING, "李某")
    [sms] = await world.sms_count_settles(1, "the yellow-code SMS")
    assert sms["to"] == world.manifest["station_phone"]
    assert "黄码人员李某开门" in sms["text"]
    assert "姚江镇" in sms["text"]


async def test_red_code_opens_door_and_alerts_police_with_local_time(world: World) -> None:
    r = await world.unlock("red")

    assert r.status_code == 201, r.text
    assert (r.json()["state"], r.json()["granted"], r.json()["reason_code"]) == ("pending", True, "red_code")
    await command_of(world, r.json()["attempt_id"])
    [alert] = await world.alerts()
    assert (alert.kind, alert.severity) == (AlertKind.RED_CODE_ENTRY, Severity.URGENT)
    [sms] = await world.sms_count_settles(1, "the red-code SMS")
    assert sms["to"] == world.manifest["station_phone"]
    assert re.match(r"^\d\d:\d\d，在姚江镇，红码人员张某开门，请核查", sms["text"]), sms["text"]
    local = alert.occurred_at.astimezone(SHANGHAI)
    assert sms["text"].startswith(f"{local:%H:%M}，"), (sms["text"], local)  # police read Shanghai time, not UTC
    assert "幸福路8号103室" in sms["text"]


async def test_no_code_keeps_door_shut_tells_why_and_reports_by_sms(world: World) -> None:
    r = await world.unlock("no_code")

    assert r.status_code == 201, r.text
    view = r.json()
    assert (view["state"], view["granted"], view["reason_code"], view["final"]) == ("denied", False, "no_code", True)
    assert "健康码" in view["reason"]  # the tenant is told why and what to do
    assert await world.all(select(LockCommand)) == []
    [alert] = await world.alerts()
    assert alert.kind is AlertKind.NO_CODE_ATTEMPT
    [sms] = await world.sms_count_settles(1, "the no-code SMS")
    assert "无健康码人员孙某" in sms["text"], sms["text"]


async def test_code_unknown_to_the_authority_is_denied_and_reported(world: World) -> None:
    r = await world.unlock("green", code="HC-NOT-ISSUED")

    assert r.status_code == 201, r.text
    assert (r.json()["state"], r.json()["reason_code"]) == ("denied", "unknown_code")
    assert await world.all(select(LockCommand)) == []
    [alert] = await world.alerts()
    assert (alert.kind, alert.subject_masked) == (AlertKind.NO_CODE_ATTEMPT, "陈某")
    await world.sms_count_settles(1, "the unknown-code SMS")


async def test_foreign_lock_is_refused_with_403_and_audited(world: World) -> None:
    r = await world.unlock("green", lock_id=world.lock("102室"))

    assert r.status_code == 403, r.text
    body = r.json()
    assert body["error"] == "no_active_tenancy"
    assert body["detail"]
    attempt = body["attempt"]
    assert (attempt["state"], attempt["granted"], attempt["reason_code"]) == ("denied", False, "no_active_tenancy")
    assert attempt["lock_id"] == str(world.lock("102室"))
    stored = await world.get(UnlockAttempt, uuid.UUID(attempt["attempt_id"]))
    assert stored.reason_code == "no_active_tenancy"
    [entry] = await world.audit("unlock_denied_no_tenancy")
    assert entry.subject_id == str(world.lock("102室"))
    assert entry.detail["attempt_id"] == attempt["attempt_id"]
    assert await world.all(select(LockCommand)) == []
    assert await world.alerts() == []  # one try is audited, not alerted


async def test_third_foreign_door_try_within_ten_minutes_raises_repeated_foreign_door(world: World) -> None:
    headers = await world.headers("green")
    for target in ("102室", "103室"):
        r = await world.unlock("green", lock_id=world.lock(target), headers=headers)
        assert r.status_code == 403
    assert await world.alerts() == []

    r = await world.unlock("green", lock_id=world.lock("104室"), headers=headers)

    assert r.status_code == 403
    [alert] = await world.alerts()
    assert (alert.kind, alert.subject_masked) == (AlertKind.REPEATED_FOREIGN_DOOR, "陈某")
    assert len(await world.audit("unlock_denied_no_tenancy")) == 3
    [sms] = await world.sms_count_settles(1, "the repeated-foreign-door SMS")
    assert "陈某多次尝试开启非本人租住的房门" in sms["text"]


async def test_authority_outage_with_recent_status_grants_from_record(world: World) -> None:
    assert (await world.unlock("green")).json()["reason_code"] == "green_code"
    world.backend.simulator.outage("authority", True)

    r = await world.unlock("green")

    assert r.status_code == 201, r.text
    view = r.json()
    assert (view["state"], view["granted"], view["reason_code"]) == ("pending", True, "green_code_from_record")
    assert view["health_colour"] == "green"
    await command_of(world, view["attempt_id"])
    [notice] = await world.alerts()
    assert (notice.kind, notice.severity) == (AlertKind.AUTHORITY_UNREACHABLE, Severity.NOTICE)
    assert [d.channel for d in await world.deliveries(notice.id)] == ["console"]  # notices stay off SMS


async def test_authority_outage_red_record_still_alerts_police(world: World) -> None:
    await world.unlock("red")
    world.backend.simulator.outage("authority", True)

    r = await world.unlock("red")

    assert r.json()["reason_code"] == "red_code_from_record"
    [red] = await world.alerts(AlertKind.RED_CODE_ENTRY)
    assert red.occurrences == 2  # the same person at the same door: deduped into the first alert


async def test_authority_outage_without_status_on_file_keeps_door_shut(world: World) -> None:
    world.backend.simulator.outage("authority", True)

    r = await world.unlock("green")

    assert r.status_code == 201, r.text
    view = r.json()
    assert (view["state"], view["granted"], view["reason_code"]) == ("denied", False, "authority_unreachable")
    assert view["reason"]
    assert await world.all(select(LockCommand)) == []
    assert [a.kind for a in await world.alerts()] == [AlertKind.AUTHORITY_UNREACHABLE]


async def test_gating_off_opens_on_tenancy_alone_without_health_alerts(world: World) -> None:
    async with world.db() as session, session.begin():
        await session.execute(update(Town).values(gating_enabled=False))

    for person, code in (("red", True), ("no_code", None), ("yellow", True)):
        r = await world.unlock(person, code=code)
        assert r.status_code == 201, r.text
        assert (r.json()["state"], r.json()["granted"], r.json()["reason_code"]) == ("pending", True, "gating_off")
        await command_of(world, r.json()["attempt_id"])

    assert await world.alerts() == []
    assert await world.all(select(HealthCodeStatus)) == []  # the authority is not even asked
    foreign = await world.unlock("red", lock_id=world.lock("101室"))
    assert foreign.status_code == 403  # tenancy still decides


async def test_town_policy_can_keep_red_codes_out(world: World) -> None:
    async with world.db() as session, session.begin():
        await session.execute(update(Town).values(policy_overrides={"red_opens": False}))

    r = await world.unlock("red")

    assert (r.json()["state"], r.json()["reason_code"]) == ("denied", "red_code_refused")
    assert await world.all(select(LockCommand)) == []
    assert [a.kind for a in await world.alerts()] == [AlertKind.RED_CODE_ENTRY]


async def test_same_red_tenant_twice_in_window_is_one_alert_and_one_sms(world: World) -> None:
    headers = await world.headers("red")
    first = await world.unlock("red", headers=headers)
    await world.sms_count_settles(1, "the first red-code SMS")

    second = await world.unlock("red", headers=headers)

    assert (first.status_code, second.status_code) == (201, 201)
    [alert] = await world.alerts()
    assert alert.occurrences == 2
    assert alert.last_occurred_at >= alert.occurred_at
    assert len(await world.deliveries(alert.id, "sms")) == 1
    await world.sms_count_settles(1, "no second red-code SMS")


async def test_resolved_alert_is_not_reused_for_a_new_occurrence(world: World) -> None:
    await world.unlock("red")
    async with world.db() as session, session.begin():
        await session.execute(update(Alert).values(status="resolved"))

    await world.unlock("red")

    assert [a.occurrences for a in await world.alerts()] == [1, 1]


async def test_tenant_sees_rooms_and_own_history_only(world: World) -> None:
    green, yellow = await world.headers("green"), await world.headers("yellow")
    await world.unlock("green", headers=green)
    await world.unlock("green", lock_id=world.lock("103室"), headers=green)
    await world.unlock("yellow", headers=yellow)

    rooms = (await world.client.get("/api/v1/tenant/rooms", headers=green)).json()
    history = (await world.client.get("/api/v1/tenant/unlocks", headers=green)).json()
    limited = (await world.client.get("/api/v1/tenant/unlocks", params={"limit": 1}, headers=green)).json()

    assert [(room["address"], room["lock_ids"]) for room in rooms] == [("幸福路8号101室", [str(world.lock("101室"))])]
    assert [h["reason_code"] for h in history] == ["no_active_tenancy", "green_code"]  # newest first
    assert [h["attempt_id"] for h in limited] == [history[0]["attempt_id"]]
    one = await world.client.get(f"/api/v1/tenant/unlocks/{history[1]['attempt_id']}", headers=green)
    assert one.status_code == 200
    assert one.json()["state"] == "pending"


async def test_waiting_unlock_returns_confirmed_once_the_lock_reports(world: World) -> None:
    """POST /unlocks with wait_s waits for the lock record; it never reports success before it."""
    from lock_gateway.protocol.lock_frames import EventKind

    headers = await world.headers("green")
    request = asyncio.create_task(world.client.post(
        "/api/v1/tenant/unlocks", params={"wait_s": 5}, headers=headers,
        json={"lock_id": str(world.lock_of("green")), "health_code": world.person("green")["health_code"]},
    ))
    [command] = await world.take_commands(wait_ms=5000)
    assert not request.done()  # sent is not success
    await world.post_events(world.event(world.lock_of("green"), EventKind.UNLOCKED,
                                        command_id=uuid.UUID(command["command_id"])))
    async with asyncio.timeout(5):
        r = await request
    assert r.status_code == 201, r.text
    assert (r.json()["state"], r.json()["final"]) == ("confirmed", True)


async def test_someone_elses_green_code_does_not_open_for_a_red_tenant(world: World) -> None:
    r = await world.unlock("red", code=world.person("green")["health_code"])

    assert r.status_code == 201, r.text
    view = r.json()
    assert (view["state"], view["granted"], view["reason_code"]) == ("denied", False, "code_of_another_person")
    assert await world.all(select(LockCommand)) == []
    assert await world.all(select(HealthCodeStatus)) == []  # the borrowed colour is recorded against nobody
    [alert] = await world.alerts()
    assert (alert.kind, alert.severity, alert.subject_masked) == (AlertKind.BORROWED_CODE, Severity.WARNING, "张某")
    [sms] = await world.sms_count_settles(1, "the borrowed-code SMS")
    assert "张某出示他人健康码试图开门" in sms["text"], sms["text"]


async def test_someone_elses_red_code_never_reports_a_green_tenant_as_red(world: World) -> None:
    r = await world.unlock("green", code=world.person("red")["health_code"])

    assert r.json()["reason_code"] == "code_of_another_person"
    assert await world.alerts(AlertKind.RED_CODE_ENTRY) == []
    [sms] = await world.sms_count_settles(1, "the borrowed-code SMS")
    assert "红码" not in sms["text"], sms["text"]


async def test_authority_outage_falls_back_only_for_the_same_code(world: World) -> None:
    assert (await world.unlock("green")).json()["reason_code"] == "green_code"
    world.backend.simulator.outage("authority", True)

    r = await world.unlock("green", code="ANY-TEXT")

    assert (r.json()["state"], r.json()["reason_code"]) == ("denied", "authority_unreachable")
    attempt_id = uuid.UUID(r.json()["attempt_id"])
    assert await world.all(select(LockCommand).where(LockCommand.attempt_id == attempt_id)) == []


async def test_a_misspelt_field_is_refused_rather_than_read_as_no_code(world: World) -> None:
    body = {"lock_id": str(world.lock_of("yellow")), "healthCode": world.person("yellow")["health_code"]}

    r = await world.client.post("/api/v1/tenant/unlocks", params={"wait_s": 0}, json=body,
                                headers=await world.headers("yellow"))

    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_request"
    assert "healthCode" in r.json()["detail"]
    assert await world.all(select(UnlockAttempt)) == []
    assert await world.alerts() == []


async def test_a_code_the_authority_names_no_holder_for_is_refused_without_accusing_anyone(world: World) -> None:
    world.backend.simulator.set_colour("HC-NO-HOLDER-ON-FILE", "green")  # issued without a holder

    r = await world.unlock("green", code="HC-NO-HOLDER-ON-FILE")

    assert (r.json()["state"], r.json()["reason_code"]) == ("denied", "code_holder_unknown")
    assert await world.alerts() == []


async def test_authority_outage_fallback_needs_the_code_exactly_as_the_authority_knows_it(world: World) -> None:
    assert (await world.unlock("green")).json()["reason_code"] == "green_code"
    world.backend.simulator.outage("authority", True)

    r = await world.unlock("green", code=world.person("green")["health_code"].lower())

    assert (r.json()["state"], r.json()["reason_code"]) == ("denied", "authority_unreachable")


def test_unknown_is_reported_final_only_after_it_has_settled() -> None:
    now = dt.datetime.now(dt.UTC)
    attempt = UnlockAttempt(state=AttemptState.UNKNOWN, updated_at=now)

    assert not is_final(attempt, now + UNKNOWN_SETTLE - dt.timedelta(seconds=1))
    assert is_final(attempt, now + UNKNOWN_SETTLE)
    assert not is_final(UnlockAttempt(state=AttemptState.ACKNOWLEDGED, updated_at=now), now + dt.timedelta(days=1))
