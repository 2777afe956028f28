"""Scenario S7: frames sent straight to the lock by an attacker's central, without the lock's key."""

from __future__ import annotations

import httpx

from lock_gateway.protocol.lock_frames import ATT_REJECTION_BASE, EventKind, RejectReason, ble_address_for
from tests.simulator.ble_central import hci_central, signed_unlock
from tests.simulator.harness import SeededLock, SimulatorProcess

HTTP_TIMEOUT_S = 15.0  # an attack is bounded at 8 s inside the simulator


async def test_replay_needs_a_captured_frame(simulator: SimulatorProcess, locks: list[SeededLock]) -> None:
    lock = locks[0]
    async with httpx.AsyncClient(base_url=simulator.http_url, timeout=HTTP_TIMEOUT_S) as client:
        for kind in ("replay_captured", "expired"):
            response = await client.post(f"/locks/{lock.lock_id}/attack", json={"kind": kind})
            assert response.status_code == 409
            assert response.json()["error"] == "nothing_captured"
        bad = await client.post(f"/locks/{lock.lock_id}/attack", json={"kind": "brute_force"})
        assert bad.status_code == 422
        assert bad.json()["error"] == "invalid_request"


async def test_attacks_on_a_lock_the_gateway_holds_are_refused_and_reported(
    simulator: SimulatorProcess, locks: list[SeededLock]
) -> None:
    lock = locks[1]
    url = f"/locks/{lock.lock_id}"
    async with (
        httpx.AsyncClient(base_url=simulator.http_url, timeout=HTTP_TIMEOUT_S) as client,
        hci_central(simulator.hci_spec) as gateway,
        gateway.link(ble_address_for(lock.lock_id)) as link,
    ):
        await link.subscribe()
        assert await link.write(signed_unlock(lock.lock_id, lock.key, counter=1).encode()) is None
        assert (await link.next_event()).kind is EventKind.UNLOCKED

        results = {}
        for kind in ("replay_captured", "forged_mac", "expired"):
            response = await client.post(f"{url}/attack", json={"kind": kind})
            assert response.status_code == 200, response.text
            results[kind] = response.json()
            rejected = await link.event_of_kind(EventKind.COMMAND_REJECTED)
            assert rejected[-1].verify(lock.key)
        state = (await client.get(url)).json()

    assert results["replay_captured"] == {
        "kind": "replay_captured", "written": True, "att_error": ATT_REJECTION_BASE + RejectReason.REPLAYED,
        "rejected_reason": "REPLAYED", "actuated": False, "detail": None,
    }
    assert results["forged_mac"]["rejected_reason"] == "BAD_MAC"
    # The captured frame has not expired yet, so the attacker must alter its expiry and cannot re-sign it.
    assert results["expired"]["rejected_reason"] == "BAD_MAC"
    assert not any(r["actuated"] for r in results.values())
    assert all(r["written"] for r in results.values())
    assert state["actuations"] == 1
    assert state["centrals"] == 1  # the attacker left; the gateway's link stayed up throughout


async def test_a_captured_frame_replayed_after_expiry_is_refused_as_expired(
    simulator: SimulatorProcess, locks: list[SeededLock]
) -> None:
    lock = locks[2]
    url = f"/locks/{lock.lock_id}"
    async with hci_central(simulator.hci_spec) as gateway, gateway.link(ble_address_for(lock.lock_id)) as link:
        assert await link.write(signed_unlock(lock.lock_id, lock.key, counter=1).encode()) is None
    async with httpx.AsyncClient(base_url=simulator.http_url, timeout=HTTP_TIMEOUT_S) as client:
        await client.post(f"{url}/clock", json={"offset_ms": 10 * 60_000})  # the lock's clock runs ahead
        result = (await client.post(f"{url}/attack", json={"kind": "expired"})).json()
        state = (await client.get(url)).json()
    assert result["rejected_reason"] == "EXPIRED"
    assert result["att_error"] == ATT_REJECTION_BASE + RejectReason.EXPIRED
    assert result["actuated"] is False
    assert state["actuations"] == 1


async def test_an_out_of_range_lock_cannot_be_attacked(simulator: SimulatorProcess, locks: list[SeededLock]) -> None:
    lock = locks[3]
    async with httpx.AsyncClient(base_url=simulator.http_url, timeout=HTTP_TIMEOUT_S) as client:
        await client.post(f"/locks/{lock.lock_id}/vanish")
        result = (await client.post(f"/locks/{lock.lock_id}/attack", json={"kind": "forged_mac"})).json()
        await client.post(f"/locks/{lock.lock_id}/appear")
    assert result["written"] is False
    assert result["att_error"] is None
    assert "not heard" in result["detail"]
