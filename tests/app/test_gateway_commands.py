"""The gateway side of a cloud unlock: lock list, command long-poll, results (gateway_api contract v1)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select, update

from lock_gateway.protocol import gateway_api as api
from lock_gateway.protocol.lock_frames import CommandFrame, ble_address_for
from models import Lock, LockCommand
from tests.app.harness import World, now_ms

LONG_POLL_MS = 8_000


async def attempt_state(world: World, key: str, attempt_id: str) -> str:
    r = await world.client.get(f"/api/v1/tenant/unlocks/{attempt_id}", headers=await world.headers(key))
    assert r.status_code == 200, r.text
    state: str = r.json()["state"]
    return state


async def granted(world: World, key: str = "green") -> tuple[str, dict[str, Any]]:
    """A green unlock taken by the gateway: (attempt id, command as the gateway saw it)."""
    r = await world.unlock(key)
    assert r.status_code == 201, r.text
    [command] = await world.take_commands()
    return r.json()["attempt_id"], command


async def test_gateway_lists_the_four_locks_it_serves(world: World) -> None:
    r = await world.client.get(f"{api.PREFIX}/locks", headers=world.gateway)

    assert r.status_code == 200, r.text
    locks = {uuid.UUID(lock["lock_id"]): lock["ble_address"] for lock in r.json()["locks"]}
    assert set(locks) == {uuid.UUID(lock_id) for lock_id in world.manifest["locks"].values()}
    assert all(address == ble_address_for(lock_id) for lock_id, address in locks.items())
    other = await world.client.get(f"{api.PREFIX}/locks", headers=await world.add_gateway())
    assert other.json() == {"locks": []}


async def test_pending_command_is_handed_out_once_and_marks_the_attempt_sent(world: World) -> None:
    r = await world.unlock("green")
    attempt_id = r.json()["attempt_id"]
    assert await attempt_state(world, "green", attempt_id) == "pending"

    batch = await world.client.get(f"{api.PREFIX}/commands", params={"wait_ms": 0}, headers=world.gateway)

    assert batch.status_code == 200, batch.text
    api.CommandBatch.model_validate(batch.json())  # the reply honours the shared contract
    [command] = batch.json()["commands"]
    lock_id = world.lock_of("green")
    assert command["lock_id"] == str(lock_id)
    assert command["ble_address"] == ble_address_for(lock_id)
    frame = CommandFrame.decode(base64.b64decode(command["frame_b64"]))
    assert frame.verify(world.key_of(lock_id))
    assert str(frame.command_id) == command["command_id"]
    assert abs(batch.json()["server_time_ms"] - now_ms()) < 5_000
    assert await attempt_state(world, "green", attempt_id) == "sent"
    stored = await world.get(LockCommand, uuid.UUID(command["command_id"]))
    assert stored.fetched_at is not None
    assert await world.take_commands() == []  # claimed: never handed out twice


async def test_denied_attempt_sends_nothing_to_the_gateway(world: World) -> None:
    await world.unlock("no_code")
    await world.unlock("green", lock_id=world.lock("102室"))

    assert await world.take_commands() == []


async def test_long_poll_started_before_the_unlock_returns_its_command(world: World) -> None:
    poll = asyncio.create_task(world.client.get(f"{api.PREFIX}/commands", params={"wait_ms": LONG_POLL_MS},
                                                headers=world.gateway))
    await asyncio.sleep(0.2)  # the poll is waiting now
    assert not poll.done()

    r = await world.unlock("green")

    async with asyncio.timeout(LONG_POLL_MS / 1000 - 1):  # returned because of the work, not the deadline
        batch = await poll
    assert batch.status_code == 200, batch.text
    [command] = batch.json()["commands"]
    assert await attempt_state(world, "green", r.json()["attempt_id"]) == "sent"
    stored = await world.all(select(LockCommand))
    assert [c.id for c in stored] == [uuid.UUID(command["command_id"])]


async def test_long_poll_with_no_work_returns_an_empty_batch_at_its_deadline(world: World) -> None:
    async with asyncio.timeout(5):
        batch = await world.client.get(f"{api.PREFIX}/commands", params={"wait_ms": 300}, headers=world.gateway)

    assert batch.status_code == 200
    assert batch.json()["commands"] == []


async def test_another_gateway_never_receives_this_gateways_commands(world: World) -> None:
    other = await world.add_gateway()
    await world.unlock("green")

    assert await world.take_commands(headers=other) == []
    assert len(await world.take_commands()) == 1


async def test_acknowledged_result_moves_attempt_to_acknowledged_not_confirmed(world: World) -> None:
    attempt_id, command = await granted(world)

    accepted = await world.post_results({"command_id": command["command_id"], "outcome": "acknowledged"})

    assert accepted == [command["command_id"]]
    assert await attempt_state(world, "green", attempt_id) == "acknowledged"  # only a lock record confirms
    stored = await world.get(LockCommand, uuid.UUID(command["command_id"]))
    assert stored.outcome == "acknowledged"
    assert stored.reported_at is not None


async def test_not_delivered_result_fails_the_attempt_as_not_delivered(world: World) -> None:
    attempt_id, command = await granted(world)

    await world.post_results({"command_id": command["command_id"], "outcome": "not_delivered",
                              "detail": "scan found no lock"})

    r = await world.client.get(f"/api/v1/tenant/unlocks/{attempt_id}", headers=await world.headers("green"))
    assert (r.json()["state"], r.json()["final"]) == ("failed_not_delivered", True)
    assert (await world.get(LockCommand, uuid.UUID(command["command_id"]))).detail == "scan found no lock"


async def test_unknown_result_keeps_sent_and_lost_apart_from_not_delivered(world: World) -> None:
    attempt_id, command = await granted(world)

    await world.post_results({"command_id": command["command_id"], "outcome": "unknown"})

    r = await world.client.get(f"/api/v1/tenant/unlocks/{attempt_id}", headers=await world.headers("green"))
    assert (r.json()["state"], r.json()["final"]) == ("unknown", False)  # a late lock record may still confirm


async def test_rejected_by_lock_result_ends_the_attempt(world: World) -> None:
    attempt_id, command = await granted(world)

    await world.post_results({"command_id": command["command_id"], "outcome": "rejected_by_lock",
                              "reject_reason": 2})

    assert await attempt_state(world, "green", attempt_id) == "rejected_by_lock"
    assert (await world.get(LockCommand, uuid.UUID(command["command_id"]))).reject_reason == 2


async def test_results_are_idempotent_and_the_first_outcome_stands(world: World) -> None:
    attempt_id, command = await granted(world)
    first = await world.post_results({"command_id": command["command_id"], "outcome": "acknowledged"})

    again = await world.post_results({"command_id": command["command_id"], "outcome": "acknowledged"})
    contradicting = await world.post_results({"command_id": command["command_id"], "outcome": "not_delivered"})

    assert first == again == contradicting == [command["command_id"]]
    assert await attempt_state(world, "green", attempt_id) == "acknowledged"
    assert (await world.get(LockCommand, uuid.UUID(command["command_id"]))).outcome == "acknowledged"


async def test_results_for_unknown_or_foreign_commands_are_not_accepted(world: World) -> None:
    attempt_id, command = await granted(world)
    other = await world.add_gateway()

    foreign = await world.post_results({"command_id": command["command_id"], "outcome": "not_delivered"},
                                       headers=other)
    unknown = await world.post_results({"command_id": str(uuid.uuid4()), "outcome": "acknowledged"})

    assert (foreign, unknown) == ([], [])
    assert await attempt_state(world, "green", attempt_id) == "sent"
    assert (await world.get(LockCommand, uuid.UUID(command["command_id"]))).outcome is None


async def test_a_batch_accepts_its_own_results_and_skips_the_rest(world: World) -> None:
    _, green = await granted(world, "green")
    _, yellow = await granted(world, "yellow")
    stranger = str(uuid.uuid4())

    accepted = await world.post_results(
        {"command_id": green["command_id"], "outcome": "acknowledged"},
        {"command_id": stranger, "outcome": "acknowledged"},
        {"command_id": yellow["command_id"], "outcome": "unknown"},
    )

    assert accepted == [green["command_id"], yellow["command_id"]]


async def test_expired_command_is_not_handed_out_and_the_attempt_reads_expired(world: World) -> None:
    r = await world.unlock("green")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    async with world.db() as session, session.begin():
        await session.execute(update(LockCommand).values(expires_at=past))

    assert await world.take_commands() == []
    view = await world.client.get(f"/api/v1/tenant/unlocks/{r.json()['attempt_id']}",
                                  headers=await world.headers("green"))
    assert (view.json()["state"], view.json()["final"]) == ("expired", True)


async def test_lock_counter_is_kept_in_the_database(world: World) -> None:
    for _ in range(2):
        await world.unlock("green")

    lock = await world.get(Lock, world.lock_of("green"))
    assert lock.command_counter == 2


async def test_commands_for_one_lock_are_handed_out_in_counter_order(world: World) -> None:
    """Two requests can sign their counters in the opposite order of their timestamps; the lock refuses a
    counter below one it has seen, so the gateway must get them in counter order."""
    first = (await world.unlock("green")).json()["attempt_id"]
    second = (await world.unlock("green")).json()["attempt_id"]
    async with world.db() as session, session.begin():
        later = (await session.execute(
            select(LockCommand).where(LockCommand.attempt_id == uuid.UUID(second)))).scalar_one()
        earlier = (await session.execute(
            select(LockCommand).where(LockCommand.attempt_id == uuid.UUID(first)))).scalar_one()
        assert later.counter > earlier.counter
        later.created_at = earlier.created_at - dt.timedelta(milliseconds=5)  # signed second, stamped first

    commands = await world.take_commands()

    counters = [CommandFrame.decode(base64.b64decode(c["frame_b64"])).counter for c in commands]
    assert len(counters) == 2
    assert counters == sorted(counters)
