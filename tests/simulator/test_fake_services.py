"""The fake health-code authority and SMS provider, over HTTP, as the backend calls them."""

from __future__ import annotations

import httpx

from tests.simulator.harness import AUTHORITY_KEY, SMS_KEY, SimulatorProcess

HTTP_TIMEOUT_S = 10.0
AUTH = {"X-Api-Key": AUTHORITY_KEY}
BEARER = {"Authorization": f"Bearer {SMS_KEY}"}


async def test_authority_answers_colours_and_refuses_bad_keys_and_unknown_codes(
    simulator: SimulatorProcess,
) -> None:
    async with httpx.AsyncClient(base_url=simulator.http_url, timeout=HTTP_TIMEOUT_S) as client:
        red = await client.get("/authority/v1/health-codes/HC-RED", headers=AUTH)
        no_key = await client.get("/authority/v1/health-codes/HC-RED")
        wrong_key = await client.get("/authority/v1/health-codes/HC-RED", headers={"X-Api-Key": "nope"})
        unknown = await client.get("/authority/v1/health-codes/HC-NOBODY", headers=AUTH)
        bad_colour = await client.put("/authority/v1/health-codes/HC-RED", json={"colour": "blue"}, headers=AUTH)
        unauthorised_change = await client.put("/authority/v1/health-codes/HC-RED", json={"colour": "green"})

    assert red.status_code == 200
    body = red.json()
    assert (body["code"], body["colour"]) == ("HC-RED", "red")
    assert body["updated_at_ms"] > 1_000_000_000_000
    assert (no_key.status_code, no_key.json()["error"]) == (401, "unauthorized")
    assert wrong_key.status_code == 401
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_code")
    assert unknown.json()["detail"]
    assert (bad_colour.status_code, bad_colour.json()["error"]) == (422, "invalid_request")
    assert unauthorised_change.status_code == 401


async def test_authority_colour_change_and_outage_knobs(simulator: SimulatorProcess) -> None:
    url = "/authority/v1/health-codes/HC-YELLOW"
    async with httpx.AsyncClient(base_url=simulator.http_url, timeout=HTTP_TIMEOUT_S) as client:
        before = (await client.get(url, headers=AUTH)).json()
        changed = await client.put(url, json={"colour": "red"}, headers=AUTH)
        after = (await client.get(url, headers=AUTH)).json()
        assert (await client.post("/authority/v1/outage", json={"down": True})).json() == {"down": True}
        during = await client.get(url, headers=AUTH)
        await client.post("/authority/v1/outage", json={"down": False})
        recovered = await client.get(url, headers=AUTH)

    assert changed.status_code == 200
    assert (before["colour"], after["colour"]) == ("yellow", "red")
    assert after["updated_at_ms"] >= before["updated_at_ms"]
    assert (during.status_code, during.json()["error"]) == (503, "authority_unavailable")
    assert recovered.status_code == 200


async def test_sms_provider_is_idempotent_by_key_and_lists_messages_in_order(simulator: SimulatorProcess) -> None:
    first = {"to": "+8613800000001", "text": "08:24 红码人员张某开门，请核实。", "idempotency_key": "alert-1"}
    second = {"to": "+8613800000002", "text": "黄码人员李某进入。", "idempotency_key": "alert-2"}
    async with httpx.AsyncClient(base_url=simulator.http_url, timeout=HTTP_TIMEOUT_S) as client:
        sent = await client.post("/sms/v1/messages", json=first, headers=BEARER)
        again = await client.post("/sms/v1/messages", json=first, headers=BEARER)
        other = await client.post("/sms/v1/messages", json=second, headers=BEARER)
        reused = await client.post("/sms/v1/messages", json={**second, "text": "changed"}, headers=BEARER)
        no_token = await client.post("/sms/v1/messages", json=first)
        wrong_token = await client.post("/sms/v1/messages", json=first, headers={"Authorization": "Bearer x"})
        missing_field = await client.post("/sms/v1/messages", json={"to": "+86138"}, headers=BEARER)
        listed = (await client.get("/sms/v1/messages")).json()["messages"]

    assert sent.status_code == 202
    assert again.status_code == 200
    assert again.json()["message_id"] == sent.json()["message_id"]
    assert other.status_code == 202
    assert (reused.status_code, reused.json()["error"]) == (409, "idempotency_key_reused")
    assert (no_token.status_code, wrong_token.status_code) == (401, 401)
    assert (missing_field.status_code, missing_field.json()["error"]) == (422, "invalid_request")
    assert [(m["idempotency_key"], m["to"], m["text"]) for m in listed] == [
        ("alert-1", first["to"], first["text"]), ("alert-2", second["to"], second["text"]),
    ]
    assert listed[0]["message_id"] == sent.json()["message_id"]
    assert listed[0]["received_at_ms"] <= listed[1]["received_at_ms"]


async def test_sms_outage_refuses_sends_and_stores_nothing(simulator: SimulatorProcess) -> None:
    message = {"to": "+8613800000003", "text": "test", "idempotency_key": "outage-1"}
    async with httpx.AsyncClient(base_url=simulator.http_url, timeout=HTTP_TIMEOUT_S) as client:
        await client.post("/sms/v1/outage", json={"down": True})
        during = await client.post("/sms/v1/messages", json=message, headers=BEARER)
        stored_during = [m["idempotency_key"] for m in (await client.get("/sms/v1/messages")).json()["messages"]]
        await client.post("/sms/v1/outage", json={"down": False})
        after = await client.post("/sms/v1/messages", json=message, headers=BEARER)

    assert (during.status_code, during.json()["error"]) == (503, "sms_provider_unavailable")
    assert "outage-1" not in stored_during
    assert after.status_code == 202
