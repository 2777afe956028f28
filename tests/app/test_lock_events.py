"""Lock records relayed by the gateway (POST /gateway/v1/events) and its heartbeats.

Every frame here is signed with the lock's own key from the simulator world, as a real lock would.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select

from app.clock import to_ms
from lock_gateway.protocol import gateway_api as api
from lock_gateway.protocol.lock_frames import CommandFrame, EventKind, RejectReason
from models import Gateway, Lock, LockCommand, LockEvent, Town
from models.alerts import AlertKind, Severity
from models.devices import BoltState, DoorState
from tests.app.harness import World, now_ms


async def attempt_view(world: World, key: str, attempt_id: str) -> dict[str, object]:
    r = await world.client.get(f"/api/v1/tenant/unlocks/{attempt_id}", headers=await world.headers(key))
    assert r.status_code == 200, r.text
    view: dict[str, object] = r.json()
    return view


async def sent_command(world: World, key: str = "green") -> tuple[str, uuid.UUID]:
    r = await world.unlock(key)
    [command] = await world.take_commands()
    return r.json()["attempt_id"], uuid.UUID(command["command_id"])


async def test_unlocked_record_with_the_command_id_confirms_the_attempt(world: World) -> None:
    attempt_id, command_id = await sent_command(world)
    await world.post_results({"command_id": str(command_id), "outcome": "acknowledged"})
    lock_id = world.lock_of("green")

    [receipt] = await world.post_events(world.event(lock_id, EventKind.UNLOCKED, command_id=command_id))

    assert receipt == {"index": 0, "lock_id": str(lock_id), "seq": 1, "status": "stored", "reason": ""}
    view = await attempt_view(world, "green", attempt_id)
    assert (view["state"], view["final"]) == ("confirmed", True)
    lock = await world.get(Lock, lock_id)
    assert (lock.bolt, lock.last_event_seq, lock.battery_pct) == (BoltState.UNLOCKED, 1, 80)
    [record] = await world.all(select(LockEvent))
    assert (record.kind, record.command_id) == ("unlocked", command_id)


async def test_confirmed_attempt_is_not_undone_by_a_later_gateway_result(world: World) -> None:
    attempt_id, command_id = await sent_command(world)
    await world.post_events(world.event(world.lock_of("green"), EventKind.UNLOCKED, command_id=command_id))

    await world.post_results({"command_id": str(command_id), "outcome": "not_delivered"})

    assert (await attempt_view(world, "green", attempt_id))["state"] == "confirmed"


async def test_the_same_record_twice_is_stored_once_and_reported_duplicate(world: World) -> None:
    frame = world.event(world.lock_of("green"), EventKind.DOOR_CLOSED)
    [first] = await world.post_events(frame)

    [again] = await world.post_events(frame)
    [within_batch_a, within_batch_b] = await world.post_events(
        world.event(world.lock_of("green"), EventKind.LOCKED, seq=2),
        world.event(world.lock_of("green"), EventKind.LOCKED, seq=2),
    )

    assert (first["status"], again["status"]) == ("stored", "duplicate")
    assert (within_batch_a["status"], within_batch_b["status"]) == ("stored", "duplicate")
    assert len(await world.all(select(LockEvent))) == 2


async def test_forged_mac_is_rejected_and_audited_and_changes_nothing(world: World) -> None:
    attempt_id, command_id = await sent_command(world)
    lock_id = world.lock_of("green")
    forged = world.event(lock_id, EventKind.UNLOCKED, command_id=command_id, key=b"\x00" * 32)

    [receipt] = await world.post_events(forged)

    assert receipt["status"] == "rejected"
    assert "MAC" in receipt["reason"]
    [entry] = await world.audit("forged_event_frame")
    assert entry.actor_type == "gateway"
    assert str(lock_id) in entry.detail["detail"]
    assert await world.all(select(LockEvent)) == []
    assert (await attempt_view(world, "green", attempt_id))["state"] == "sent"
    assert (await world.get(Lock, lock_id)).bolt is BoltState.UNKNOWN


async def test_record_of_another_gateways_lock_or_an_unreadable_frame_is_rejected(world: World) -> None:
    unknown_lock = uuid.uuid4()
    foreign = world.event(unknown_lock, EventKind.DOOR_CLOSED, key=b"\x01" * 32)
    unreadable = api.encode_frame(b"\x01\x02" + b"\x00" * 63)

    receipts = await world.post_events(foreign, unreadable)

    assert [r["status"] for r in receipts] == ["rejected", "rejected"]
    assert len(await world.audit("event_for_foreign_lock")) == 1
    assert len(await world.audit("malformed_event_frame")) == 1


async def test_sequence_gap_counts_missing_records_and_is_audited(world: World) -> None:
    lock_id = world.lock_of("green")
    await world.post_events(world.event(lock_id, EventKind.DOOR_CLOSED, seq=1))

    [receipt] = await world.post_events(world.event(lock_id, EventKind.LOCKED, seq=5))

    assert receipt["status"] == "stored"
    lock = await world.get(Lock, lock_id)
    assert (lock.missing_events, lock.last_event_seq) == (3, 5)
    [entry] = await world.audit("lock_event_gap")
    assert entry.detail == {"after_seq": 1, "next_seq": 5, "missing": 3}
    health = (await world.client.get("/api/v1/landlord/locks", headers=await world.headers("landlord"))).json()
    assert {h["lock_id"]: h["missing_events"] for h in health}[str(lock_id)] == 3


async def test_late_older_record_is_kept_but_does_not_roll_back_bolt_or_door(world: World) -> None:
    lock_id = world.lock_of("green")
    t0 = now_ms() - 60_000
    await world.post_events(world.event(lock_id, EventKind.UNLOCKED, seq=1, occurred_at_ms=t0))
    await world.post_events(world.event(lock_id, EventKind.DOOR_CLOSED, seq=3, occurred_at_ms=t0 + 20_000),
                            world.event(lock_id, EventKind.LOCKED, seq=4, occurred_at_ms=t0 + 30_000))

    [late] = await world.post_events(world.event(lock_id, EventKind.DOOR_OPENED_OUTSIDE, seq=2,
                                                 occurred_at_ms=t0 + 10_000))

    assert late["status"] == "stored"
    lock = await world.get(Lock, lock_id)
    assert (lock.bolt, lock.door) == (BoltState.LOCKED, DoorState.CLOSED)
    assert lock.last_event_seq == 4
    records = await world.client.get(f"/api/v1/landlord/locks/{lock_id}/records",
                                     headers=await world.headers("landlord"))
    assert [r["seq"] for r in records.json()] == [4, 3, 2, 1]  # newest occurred_at first, the late one in place


async def test_late_record_that_fills_a_gap_is_no_longer_counted_missing(world: World) -> None:
    lock_id = world.lock_of("green")
    await world.post_events(world.event(lock_id, EventKind.DOOR_CLOSED, seq=1),
                            world.event(lock_id, EventKind.LOCKED, seq=3))
    assert (await world.get(Lock, lock_id)).missing_events == 1

    await world.post_events(world.event(lock_id, EventKind.DOOR_OPENED_INSIDE, seq=2))

    assert (await world.get(Lock, lock_id)).missing_events == 0


async def test_isolated_resident_opening_from_inside_alerts_police(world: World) -> None:
    lock_id = world.lock_of("isolated")  # unit 104

    [receipt] = await world.post_events(world.event(lock_id, EventKind.DOOR_OPENED_INSIDE))

    assert receipt["status"] == "stored"
    [alert] = await world.alerts()
    assert (alert.kind, alert.severity, alert.subject_masked) == (AlertKind.ISOLATED_WENT_OUT, Severity.WARNING, "赵某")
    [sms] = await world.sms_count_settles(1, "the isolation SMS")
    assert "居家隔离人员赵某出门" in sms["text"]
    assert "104室" in sms["text"]


async def test_isolated_resident_coming_back_in_is_a_separate_alert(world: World) -> None:
    lock_id = world.lock_of("isolated")

    await world.post_events(world.event(lock_id, EventKind.DOOR_OPENED_INSIDE),
                            world.event(lock_id, EventKind.DOOR_OPENED_OUTSIDE))

    assert sorted(a.kind for a in await world.alerts()) == [AlertKind.ISOLATED_WENT_IN, AlertKind.ISOLATED_WENT_OUT]


async def test_door_opening_without_an_isolation_order_raises_nothing(world: World) -> None:
    await world.post_events(world.event(world.lock_of("green"), EventKind.DOOR_OPENED_INSIDE))

    assert await world.alerts() == []


async def test_door_opening_before_the_isolation_order_started_raises_nothing(world: World) -> None:
    long_ago = to_ms(dt.datetime.now(dt.UTC) - dt.timedelta(days=5))  # the seeded order began 2 days ago

    await world.post_events(world.event(world.lock_of("isolated"), EventKind.DOOR_OPENED_INSIDE,
                                        occurred_at_ms=long_ago))

    assert await world.alerts() == []


async def test_isolation_alerts_stop_when_gating_is_off(world: World) -> None:
    async with world.db() as session, session.begin():
        (await session.execute(select(Town))).scalar_one().gating_enabled = False

    await world.post_events(world.event(world.lock_of("isolated"), EventKind.DOOR_OPENED_INSIDE))

    assert await world.alerts() == []


async def test_command_rejected_record_is_audited_and_alerts_the_console_only(world: World) -> None:
    attempt_id, command_id = await sent_command(world)
    lock_id = world.lock_of("green")

    await world.post_events(world.event(lock_id, EventKind.COMMAND_REJECTED, command_id=command_id,
                                        value=RejectReason.REPLAYED))

    [entry] = await world.audit("lock_command_rejected")
    assert entry.detail["reason"] == "replayed"
    [alert] = await world.alerts()
    assert (alert.kind, alert.severity) == (AlertKind.LOCK_SECURITY, Severity.NOTICE)
    assert alert.subject_masked == "门锁拒绝了重放的旧开门指令"
    assert [d.channel for d in await world.deliveries(alert.id)] == ["console"]
    assert (await attempt_view(world, "green", attempt_id))["state"] == "rejected_by_lock"
    await world.sms_count_settles(0, "no SMS for a lock security notice")


async def test_jammed_record_ends_the_attempt_as_jammed_not_unlocked(world: World) -> None:
    attempt_id, command_id = await sent_command(world)
    lock_id = world.lock_of("green")

    await world.post_events(world.event(lock_id, EventKind.JAMMED, command_id=command_id))

    view = await attempt_view(world, "green", attempt_id)
    assert (view["state"], view["final"]) == ("jammed", True)
    assert (await world.get(Lock, lock_id)).bolt is BoltState.JAMMED


async def test_heartbeat_records_presence_battery_and_clock_offsets(world: World) -> None:
    green, yellow = world.lock_of("green"), world.lock_of("yellow")
    gateway_ahead_ms, lock_ahead_of_gateway_ms = 2_000, 3_000
    beat = {
        "sent_at_ms": now_ms() + gateway_ahead_ms, "queued_events": 7,
        "locks": [
            {"lock_id": str(green), "connected": True, "battery_pct": 55, "rssi": -60,
             "lock_clock_offset_ms": lock_ahead_of_gateway_ms},
            {"lock_id": str(yellow), "connected": False, "last_error": "scan timeout"},
            {"lock_id": str(uuid.uuid4()), "connected": True},  # not this gateway's: ignored
        ],
    }

    r = await world.client.post(f"{api.PREFIX}/heartbeat", json=beat, headers=world.gateway)

    assert r.status_code == 200, r.text
    assert abs(r.json()["server_time_ms"] - now_ms()) < 5_000
    [gateway] = await world.all(select(Gateway))
    assert abs(gateway.clock_offset_ms - gateway_ahead_ms) < 1_000
    assert gateway.queued_events == 7
    assert gateway.last_seen_at is not None
    lock = await world.get(Lock, green)
    assert (lock.connected, lock.battery_pct) == (True, 55)
    assert lock.clock_offset_ms == lock_ahead_of_gateway_ms + gateway.clock_offset_ms
    assert (await world.get(Lock, yellow)).connected is False

    unlock = await world.unlock("green")

    [command] = await world.all(select(LockCommand).where(LockCommand.attempt_id == uuid.UUID(
        unlock.json()["attempt_id"])))
    frame = CommandFrame.decode(command.frame)
    assert frame.expires_at_ms == to_ms(command.expires_at) + lock.clock_offset_ms  # judged by the lock's clock
    assert frame.verify(world.key_of(green))


async def test_record_time_is_corrected_by_the_measured_lock_drift(world: World) -> None:
    lock_id = world.lock_of("green")
    drift_ms = 120_000
    await world.client.post(f"{api.PREFIX}/heartbeat", headers=world.gateway, json={
        "sent_at_ms": now_ms(), "queued_events": 0,
        "locks": [{"lock_id": str(lock_id), "connected": True, "lock_clock_offset_ms": drift_ms}],
    })
    offset = (await world.get(Lock, lock_id)).clock_offset_ms
    lock_clock_ms = now_ms() + offset

    await world.post_events(world.event(lock_id, EventKind.DOOR_CLOSED, occurred_at_ms=lock_clock_ms))

    [record] = await world.all(select(LockEvent))
    assert record.lock_occurred_at_ms == lock_clock_ms
    assert abs(to_ms(record.occurred_at) - (lock_clock_ms - offset)) < 5
    assert abs(to_ms(record.occurred_at) - to_ms(record.received_at)) < 5_000


async def test_genuine_record_relayed_by_a_gateway_not_serving_the_lock_is_rejected(world: World) -> None:
    other = await world.add_gateway()
    frame = world.event(world.lock_of("green"), EventKind.DOOR_OPENED_OUTSIDE)

    [receipt] = await world.post_events(frame, headers=other)

    assert receipt["status"] == "rejected"
    assert "not served by this gateway" in receipt["reason"]
    assert len(await world.audit("event_for_foreign_lock")) == 1
    assert await world.all(select(LockEvent)) == []
    [accepted] = await world.post_events(frame)  # the serving gateway may still deliver it
    assert accepted["status"] == "stored"


async def test_record_dated_in_the_future_by_a_jumped_lock_clock_is_dated_no_later_than_its_arrival(
    world: World,
) -> None:
    lock_id = world.lock_of("green")
    before = dt.datetime.now(dt.UTC)

    await world.post_events(world.event(lock_id, EventKind.DOOR_OPENED_INSIDE, seq=1,
                                        occurred_at_ms=now_ms() + 10 * 60_000))

    [record] = await world.all(select(LockEvent).where(LockEvent.lock_id == lock_id))
    assert before - dt.timedelta(seconds=5) <= record.occurred_at <= record.received_at
