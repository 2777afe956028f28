"""Door, battery and jam knobs produce the signed events a real lock would send, in sequence."""

from __future__ import annotations

import httpx

from lock_gateway.protocol.lock_frames import ATT_REJECTION_BASE, EventKind, ble_address_for
from tests.simulator.ble_central import hci_central, signed_unlock
from tests.simulator.harness import SeededLock, SimulatorProcess

HTTP_TIMEOUT_S = 10.0


async def test_door_knobs_emit_signed_events_with_consecutive_sequence_numbers(
    simulator: SimulatorProcess, locks: list[SeededLock]
) -> None:
    lock = locks[5]  # lock 0's clock runs two minutes ahead; this one is on time
    url = f"/locks/{lock.lock_id}"
    async with (
        httpx.AsyncClient(base_url=simulator.http_url, timeout=HTTP_TIMEOUT_S) as client,
        hci_central(simulator.hci_spec) as gateway,
        gateway.link(ble_address_for(lock.lock_id)) as link,
    ):
        await link.subscribe()
        refused = await client.post(f"{url}/door", json={"action": "open_outside"})
        assert refused.status_code == 409
        assert refused.json()["error"] == "door_locked"

        # Exiting is never blocked: the handle opens a locked door; it closes itself and the bolt throws.
        assert (await client.post(f"{url}/door", json={"action": "open_inside"})).json()["door"] == "open"
        exit_events = await link.event_of_kind(EventKind.LOCKED, timeout_s=5.0)

        assert await link.write(signed_unlock(lock.lock_id, lock.key, counter=1).encode()) is None
        opened = await client.post(f"{url}/door", json={"action": "open_outside"})
        assert opened.status_code == 200
        assert (await client.post(f"{url}/door", json={"action": "close"})).json()["door"] == "closed"
        entry_events = await link.event_of_kind(EventKind.LOCKED, timeout_s=5.0)

        assert (await client.post(f"{url}/battery", json={"pct": 15})).status_code == 200
        battery = await link.next_event()
        assert (await client.post(f"{url}/battery", json={"pct": 101})).status_code == 422

    assert [e.kind for e in exit_events] == [
        EventKind.DOOR_OPENED_INSIDE, EventKind.DOOR_CLOSED, EventKind.LOCKED,
    ]
    assert [e.kind for e in entry_events] == [
        EventKind.UNLOCKED, EventKind.DOOR_OPENED_OUTSIDE, EventKind.DOOR_CLOSED, EventKind.LOCKED,
    ]
    assert (battery.kind, battery.value, battery.battery_pct) == (EventKind.BATTERY, 15, 15)
    events = [*exit_events, *entry_events, battery]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(e.verify(lock.key) for e in events)
    assert all(e.lock_id == lock.lock_id for e in events)
    assert events[1].occurred_at_ms - events[0].occurred_at_ms >= 1_900  # the door closer's 2 s


async def test_a_jammed_lock_acknowledges_the_command_but_the_bolt_stays_locked(
    simulator: SimulatorProcess, locks: list[SeededLock]
) -> None:
    lock = locks[1]
    url = f"/locks/{lock.lock_id}"
    command = signed_unlock(lock.lock_id, lock.key, counter=1)
    async with (
        httpx.AsyncClient(base_url=simulator.http_url, timeout=HTTP_TIMEOUT_S) as client,
        hci_central(simulator.hci_spec) as gateway,
        gateway.link(ble_address_for(lock.lock_id)) as link,
    ):
        await link.subscribe()
        assert (await client.post(f"{url}/jam", json={"jammed": True})).json()["jammed"] is True
        assert await link.write(command.encode()) is None  # acked: the radio worked
        jammed = await link.next_event()
        state = (await client.get(url)).json()
        # The counter is used up even though the bolt did not move.
        assert await link.write(command.encode()) == ATT_REJECTION_BASE + 0x02

    assert jammed.kind is EventKind.JAMMED
    assert jammed.command_id == command.command_id
    assert jammed.verify(lock.key)
    assert (state["bolt"], state["actuations"], state["last_counter"]) == ("locked", 0, 1)


async def test_unknown_lock_and_bad_knob_input_get_clear_errors(simulator: SimulatorProcess) -> None:
    async with httpx.AsyncClient(base_url=simulator.http_url, timeout=HTTP_TIMEOUT_S) as client:
        missing = await client.get("/locks/00000000-0000-0000-0000-000000000000")
        not_uuid = await client.post("/locks/not-a-uuid/door", json={"action": "close"})
        bad_action = await client.get("/locks")
        health = await client.get("/healthz")
    assert (missing.status_code, missing.json()["error"]) == (404, "unknown_lock")
    assert (not_uuid.status_code, not_uuid.json()["error"]) == (422, "invalid_request")
    assert len(bad_action.json()["locks"]) == 8
    assert health.json() == {"status": "ok", "locks": 8}
