"""Bad input gets a clear 4xx naming what was wrong, never a 500, and always {"error", "detail"}.

With ASGITransport an unhandled exception reaches the test instead of becoming a 500, so every case
below also proves the server did not crash.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
from sqlalchemy import update

from lock_gateway.protocol import gateway_api as api
from lock_gateway.protocol.lock_frames import EventKind
from models import UserSession
from tests.app.harness import World, now_ms

SECONDS = 1_764_000_000  # a timestamp in seconds where milliseconds are due (field failure F3)
MICROSECONDS = 1_764_000_000_000_000
NO_ID = "00000000-0000-4000-8000-000000000000"

Endpoint = tuple[str, str, dict[str, Any] | None]


def tenant_endpoints(world: World) -> list[Endpoint]:
    return [
        ("POST", "/api/v1/tenant/unlocks?wait_s=0", {"lock_id": str(world.lock_of("green"))}),
        ("GET", "/api/v1/tenant/unlocks", None),
        ("GET", f"/api/v1/tenant/unlocks/{NO_ID}", None),
        ("GET", "/api/v1/tenant/rooms", None),
    ]


def landlord_endpoints(world: World) -> list[Endpoint]:
    return [("GET", "/api/v1/landlord/locks", None),
            ("GET", f"/api/v1/landlord/locks/{world.lock_of('green')}/records", None)]


POLICE_ENDPOINTS: list[Endpoint] = [("GET", "/api/v1/police/alerts", None)]


def gateway_endpoints() -> list[Endpoint]:
    return [
        ("GET", f"{api.PREFIX}/locks", None),
        ("GET", f"{api.PREFIX}/commands?wait_ms=0", None),
        ("POST", f"{api.PREFIX}/results", {"results": []}),
        ("POST", f"{api.PREFIX}/events", {"events": []}),
        ("POST", f"{api.PREFIX}/heartbeat", {"sent_at_ms": now_ms(), "queued_events": 0, "locks": []}),
    ]


async def call(world: World, endpoint: Endpoint, headers: dict[str, str] | None) -> httpx.Response:
    method, path, body = endpoint
    return await world.client.request(method, path, json=body, headers=headers or {})


def refused(r: httpx.Response, status: int, error: str | None = None, *mentions: str) -> dict[str, Any]:
    """Assert the status and the error envelope; `mentions` must appear in the detail (case-insensitive)."""
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    body: dict[str, Any] = r.json()
    assert isinstance(body.get("error"), str), body
    assert body["error"]
    assert isinstance(body.get("detail"), str), body
    assert body["detail"]
    if error is not None:
        assert body["error"] == error, body
    for word in mentions:
        assert word.lower() in body["detail"].lower(), (word, body)
    return body


async def test_every_endpoint_refuses_missing_or_unknown_credentials_with_401(world: World) -> None:
    endpoints = tenant_endpoints(world) + landlord_endpoints(world) + POLICE_ENDPOINTS + gateway_endpoints()
    bad_headers: list[dict[str, str] | None] = [
        None, {"Authorization": "Bearer hl_not-a-real-token"}, {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "}, {"Authorization": "hl_token-without-scheme"},
    ]
    for endpoint in endpoints:
        for headers in bad_headers:
            r = await call(world, endpoint, headers)
            refused(r, 401, "unauthorized")
            assert r.headers.get("www-authenticate") == "Bearer"


async def test_person_endpoints_refuse_a_gateway_token_and_gateway_endpoints_a_person_token(world: World) -> None:
    tenant = await world.headers("green")
    for endpoint in tenant_endpoints(world) + landlord_endpoints(world) + POLICE_ENDPOINTS:
        refused(await call(world, endpoint, world.gateway), 401, "unauthorized")
    for endpoint in gateway_endpoints():
        refused(await call(world, endpoint, tenant), 401, "unauthorized", "gateway")


async def test_wrong_role_is_refused_with_403_naming_the_role(world: World) -> None:
    tenant, landlord, police = [await world.headers(k) for k in ("green", "landlord", "police")]
    for endpoint in tenant_endpoints(world):
        for headers in (landlord, police):
            refused(await call(world, endpoint, headers), 403, "forbidden", "tenant")
    for endpoint in landlord_endpoints(world):
        for headers in (tenant, police):
            refused(await call(world, endpoint, headers), 403, "forbidden", "landlord")
    for endpoint in POLICE_ENDPOINTS:
        for headers in (tenant, landlord):
            refused(await call(world, endpoint, headers), 403, "forbidden", "police")


async def test_expired_session_token_is_refused(world: World) -> None:
    headers = await world.headers("green")
    async with world.db() as session, session.begin():
        await session.execute(update(UserSession).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))

    refused(await world.client.get("/api/v1/tenant/rooms", headers=headers), 401, "unauthorized", "expired")


async def test_login_refuses_wrong_credentials_and_malformed_bodies(world: World) -> None:
    phone = world.person("green")["phone"]
    login = "/api/v1/auth/login"
    refused(await world.client.post(login, json={"phone": phone, "password": "wrong"}), 401, "invalid_credentials")
    refused(await world.client.post(login, json={"phone": "13999999999", "password": "healthlock-demo"}), 401,
            "invalid_credentials")
    refused(await world.client.post(login, json={"phone": phone}), 422, "invalid_request", "password")
    refused(await world.client.post(login, json={"phone": "1", "password": "x"}), 422, "invalid_request", "phone")
    refused(await world.client.post(login, json={"phone": phone, "password": ""}), 422, "invalid_request", "password")
    refused(await world.client.post(login, json=[phone]), 422, "invalid_request")
    refused(await world.client.post(login, content=b"{not json", headers={"content-type": "application/json"}),
            422, "invalid_request", "json")
    ok = await world.client.post(login, json={"phone": phone, "password": "healthlock-demo"})
    assert ok.status_code == 200
    assert set(ok.json()) == {"token", "user_id", "role", "expires_at"}


async def test_unlock_request_with_bad_fields_is_refused_naming_the_field(world: World) -> None:
    headers = await world.headers("green")
    lock_id = str(world.lock_of("green"))

    async def unlock(body: Any, **params: Any) -> httpx.Response:
        return await world.client.post("/api/v1/tenant/unlocks", json=body, params=params or {"wait_s": 0},
                                        headers=headers)

    refused(await unlock({"lock_id": "door-101"}), 422, "invalid_request", "lock_id")
    refused(await unlock({"lock_id": 101}), 422, "invalid_request", "lock_id")
    refused(await unlock({}), 422, "invalid_request", "lock_id")
    refused(await unlock({"lock_id": lock_id, "health_code": "H" * 65}), 422, "invalid_request", "health_code")
    refused(await unlock({"lock_id": lock_id, "health_code": 12345}), 422, "invalid_request", "health_code")
    for wait_s in (-1, 10.5, 3600, "soon", "nan"):
        refused(await unlock({"lock_id": lock_id}, wait_s=wait_s), 422, "invalid_request", "wait_s")
    refused(await unlock({"lock_id": NO_ID}), 404, "lock_not_found", NO_ID)


async def test_unknown_or_foreign_ids_are_404_and_malformed_ids_422(world: World) -> None:
    green, yellow, landlord = [await world.headers(k) for k in ("green", "yellow", "landlord")]
    yellows = (await world.unlock("yellow", headers=yellow)).json()["attempt_id"]

    refused(await world.client.get(f"/api/v1/tenant/unlocks/{NO_ID}", headers=green), 404, "attempt_not_found")
    refused(await world.client.get(f"/api/v1/tenant/unlocks/{yellows}", headers=green), 404, "attempt_not_found")
    refused(await world.client.get("/api/v1/tenant/unlocks/latest", headers=green), 422, "invalid_request",
            "attempt_id")
    refused(await world.client.get(f"/api/v1/landlord/locks/{NO_ID}/records", headers=landlord), 404,
            "lock_not_found")
    refused(await world.client.get("/api/v1/landlord/locks/101/records", headers=landlord), 422,
            "invalid_request", "lock_id")


async def test_list_parameters_out_of_range_are_refused(world: World) -> None:
    green, landlord, police = [await world.headers(k) for k in ("green", "landlord", "police")]
    lock_id = world.lock_of("green")
    for limit in (0, 201, -5, "all"):
        refused(await world.client.get("/api/v1/tenant/unlocks", params={"limit": limit}, headers=green), 422,
                "invalid_request", "limit")
    refused(await world.client.get(f"/api/v1/landlord/locks/{lock_id}/records", params={"limit": 501},
                                   headers=landlord), 422, "invalid_request", "limit")
    refused(await world.client.get("/api/v1/police/alerts", params={"status": "closed"}, headers=police), 422,
            "invalid_request", "status")
    refused(await world.client.get("/api/v1/police/alerts", params={"limit": 0}, headers=police), 422,
            "invalid_request", "limit")


async def test_unknown_routes_and_methods_still_answer_with_an_error_code(world: World) -> None:
    refused(await world.client.get("/api/v1/tenant/doors"), 404, "not_found")
    refused(await world.client.delete("/api/v1/tenant/rooms"), 405, "method_not_allowed")
    refused(await world.client.get(f"{api.PREFIX}/results", headers=world.gateway), 405, "method_not_allowed")


async def test_long_poll_wait_out_of_range_is_refused(world: World) -> None:
    for wait_ms in (30_001, -1, "forever", 1.5):
        r = await world.client.get(f"{api.PREFIX}/commands", params={"wait_ms": wait_ms}, headers=world.gateway)
        refused(r, 422, "invalid_request", "wait_ms")


async def test_command_results_with_bad_fields_are_refused(world: World) -> None:
    async def results(*items: dict[str, Any]) -> httpx.Response:
        return await world.client.post(f"{api.PREFIX}/results", json={"results": list(items)}, headers=world.gateway)

    good = {"command_id": str(uuid.uuid4()), "outcome": "acknowledged", "reported_at_ms": now_ms()}
    assert (await results(good)).status_code == 200
    body = refused(await results({**good, "reported_at_ms": SECONDS}), 422, "invalid_request",
                   "reported_at_ms", "milliseconds", "seconds")
    assert str(SECONDS) in body["detail"]
    refused(await results({**good, "reported_at_ms": MICROSECONDS}), 422, "invalid_request", "microseconds")
    refused(await results({**good, "outcome": "done"}), 422, "invalid_request", "outcome")
    refused(await results({**good, "command_id": "cmd-1"}), 422, "invalid_request", "command_id")
    refused(await results({**good, "colour": "green"}), 422, "invalid_request", "colour")  # extra field
    refused(await results({**good, "reject_reason": 256}), 422, "invalid_request", "reject_reason")
    refused(await results({**good, "detail": "x" * 501}), 422, "invalid_request", "detail")
    refused(await results(*[good] * (api.MAX_BATCH + 1)), 422, "invalid_request", "results")
    refused(await world.client.post(f"{api.PREFIX}/results", json={"results": [], "gateway": "gw-1"},
                                    headers=world.gateway), 422, "invalid_request", "gateway")


async def test_event_uploads_with_bad_fields_are_refused(world: World) -> None:
    frame = world.event(world.lock_of("green"), EventKind.DOOR_CLOSED)

    async def events(*items: dict[str, Any]) -> httpx.Response:
        return await world.client.post(f"{api.PREFIX}/events", json={"events": list(items)}, headers=world.gateway)

    good = {"frame_b64": frame, "received_at_ms": now_ms()}
    refused(await events({**good, "frame_b64": "%%% not base64 %%%"}), 422, "invalid_request", "frame_b64", "base64")
    refused(await events({**good, "frame_b64": ""}), 422, "invalid_request", "frame_b64")
    refused(await events({**good, "frame_b64": "QUJD" * 300}), 422, "invalid_request", "frame_b64")  # too long
    refused(await events({**good, "received_at_ms": SECONDS}), 422, "invalid_request", "received_at_ms",
            "milliseconds", "seconds")
    refused(await events({**good, "lock_id": str(world.lock_of("green"))}), 422, "invalid_request", "lock_id")
    refused(await events({"received_at_ms": now_ms()}), 422, "invalid_request", "frame_b64")
    assert (await events(good)).status_code == 200  # none of the refused uploads stored anything
    assert (await events(good)).json()["receipts"][0]["status"] == "duplicate"


async def test_heartbeats_with_bad_fields_are_refused(world: World) -> None:
    lock_id = str(world.lock_of("green"))

    async def beat(**changes: Any) -> httpx.Response:
        body = {"sent_at_ms": now_ms(), "queued_events": 0,
                "locks": [{"lock_id": lock_id, "connected": True, "battery_pct": 50}], **changes}
        return await world.client.post(f"{api.PREFIX}/heartbeat", json=body, headers=world.gateway)

    assert (await beat()).status_code == 200
    refused(await beat(sent_at_ms=SECONDS), 422, "invalid_request", "sent_at_ms", "milliseconds", "seconds")
    refused(await beat(sent_at_ms=0), 422, "invalid_request", "sent_at_ms")
    refused(await beat(queued_events=-1), 422, "invalid_request", "queued_events")
    refused(await beat(uptime_s=5), 422, "invalid_request", "uptime_s")
    refused(await beat(locks=[{"lock_id": lock_id, "connected": True, "battery_pct": 101}]), 422,
            "invalid_request", "battery_pct")
    refused(await beat(locks=[{"lock_id": "lock-101", "connected": True}]), 422, "invalid_request", "lock_id")
    refused(await beat(locks=[{"lock_id": lock_id, "connected": True, "key": "00"}]), 422, "invalid_request", "key")


async def test_heartbeat_numbers_no_honest_gateway_sends_are_refused_and_unlocks_keep_working(world: World) -> None:
    lock_id = str(world.lock_of("green"))

    async def beat(**changes: Any) -> httpx.Response:
        body = {"sent_at_ms": now_ms(), "queued_events": 0, "locks": [], **changes}
        return await world.client.post(f"{api.PREFIX}/heartbeat", json=body, headers=world.gateway)

    for offset in (-10**13, 2**63, 10**13):
        refused(await beat(locks=[{"lock_id": lock_id, "connected": True, "lock_clock_offset_ms": offset}]), 422,
                "invalid_request", "lock_clock_offset_ms")
    refused(await beat(queued_events=2**40), 422, "invalid_request", "queued_events")

    r = await world.unlock("green")

    assert r.status_code == 201, r.text
    assert r.json()["state"] == "pending"
