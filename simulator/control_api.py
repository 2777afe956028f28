"""The simulator's HTTP app: the fake authority and SMS provider, plus the testers' lock knobs.

Lock knobs (no auth: loopback only, for testers, the demo and end-to-end tests):
    GET  /healthz                          {"status": "ok", "locks": K}
    GET  /locks                            {"locks": [LockView, ...]}
    GET  /locks/{lock_id}                  LockView
    POST /locks/{lock_id}/door     {"action": "open_inside" | "open_outside" | "close"}      -> LockView
         409 door_locked (open_outside while the bolt is thrown), door_already_open, door_already_closed
    POST /locks/{lock_id}/battery  {"pct": 0..100}      emits BATTERY                       -> LockView
    POST /locks/{lock_id}/clock    {"offset_ms": int}   the lock's clock = real time + offset -> LockView
    POST /locks/{lock_id}/vanish   out of radio range (links drop, adverts stop)            -> LockView
    POST /locks/{lock_id}/appear   back in range                                            -> LockView
    POST /locks/{lock_id}/jam      {"jammed": bool}     accepted commands emit JAMMED, bolt stays
    POST /locks/{lock_id}/drop-link-after-write         next accepted command acts, then the link dies unanswered
    POST /locks/{lock_id}/attack   {"kind": "replay_captured" | "forged_mac" | "expired"}
         200 {"kind", "written", "att_error", "rejected_reason", "actuated", "detail"}
         409 nothing_captured (replay_captured / expired before the lock accepted any command)

LockView = {lock_id, label, ble_address, name, bolt: "locked|unlocked", door: "closed|open", battery_pct,
            actuations, rejections: [{"reason": RejectReason name, "at_ms"}], last_counter, next_seq,
            centrals, clock_offset_ms, present, jammed, buffered_events}

Every refusal is `{"error": code, "detail": ...}` with a 4xx status (503 for the outage knobs);
an unknown lock id is 404 unknown_lock, a malformed one 422 invalid_request.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from simulator.attacker import Attacker, AttackKind, NothingCaptured
from simulator.authority import HealthAuthority, authority_router
from simulator.errors import ApiError
from simulator.lock_firmware import DoorRefused
from simulator.sms_provider import SmsProvider, sms_router
from simulator.virtual_lock import VirtualLock


class DoorAction(StrEnum):
    OPEN_INSIDE = "open_inside"
    OPEN_OUTSIDE = "open_outside"
    CLOSE = "close"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DoorRequest(_Body):
    action: DoorAction


class BatteryRequest(_Body):
    pct: Annotated[int, Field(ge=0, le=100)]


class ClockRequest(_Body):
    offset_ms: Annotated[int, Field(ge=-(10**12), le=10**12)]  # about 30 years either way


class JamRequest(_Body):
    jammed: bool


class AttackRequest(_Body):
    kind: AttackKind


def lock_view(lock: VirtualLock) -> dict[str, Any]:
    fw = lock.firmware
    return {
        "lock_id": str(lock.lock_id),
        "label": lock.spec.label,
        "ble_address": lock.address,
        "name": lock.name,
        "bolt": "locked" if fw.bolt_locked else "unlocked",
        "door": "open" if fw.door_open else "closed",
        "battery_pct": fw.battery_pct,
        "actuations": fw.actuations,
        "rejections": [{"reason": r.reason.name, "at_ms": r.at_ms} for r in fw.rejections],
        "last_counter": fw.last_counter,
        "next_seq": fw.next_seq,
        "centrals": lock.centrals,
        "clock_offset_ms": fw.clock_offset_ms,
        "present": lock.present,
        "jammed": fw.jammed,
        "buffered_events": lock.buffered_events,
    }


class LockRegistry:
    def __init__(self, locks: dict[uuid.UUID, VirtualLock]) -> None:
        self.locks = locks

    def find(self, lock_id: uuid.UUID) -> VirtualLock:
        lock = self.locks.get(lock_id)
        if lock is None:
            raise ApiError(404, "unknown_lock", f"no simulated lock with id {lock_id}")
        return lock


def status_router(registry: LockRegistry) -> APIRouter:
    router = APIRouter(tags=["status"])

    @router.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "locks": len(registry.locks)}

    @router.get("/locks")
    async def list_locks() -> dict[str, Any]:
        return {"locks": [lock_view(lock) for lock in registry.locks.values()]}

    @router.get("/locks/{lock_id}")
    async def get_lock(lock_id: uuid.UUID) -> dict[str, Any]:
        return lock_view(registry.find(lock_id))

    return router


def physical_knobs_router(registry: LockRegistry) -> APIRouter:
    """What a person at the door, or the lock's own hardware, does."""
    router = APIRouter(prefix="/locks/{lock_id}", tags=["lock knobs"])

    @router.post("/door")
    async def door(lock_id: uuid.UUID, body: DoorRequest) -> dict[str, Any]:
        lock = registry.find(lock_id)
        try:
            if body.action is DoorAction.CLOSE:
                lock.close_door()
            else:
                lock.open_door(from_inside=body.action is DoorAction.OPEN_INSIDE)
        except DoorRefused as refused:
            raise ApiError(409, refused.code, refused.detail) from refused
        return lock_view(lock)

    @router.post("/battery")
    async def battery(lock_id: uuid.UUID, body: BatteryRequest) -> dict[str, Any]:
        lock = registry.find(lock_id)
        lock.set_battery(body.pct)
        return lock_view(lock)

    @router.post("/clock")
    async def clock(lock_id: uuid.UUID, body: ClockRequest) -> dict[str, Any]:
        lock = registry.find(lock_id)
        lock.firmware.clock_offset_ms = body.offset_ms
        return lock_view(lock)

    @router.post("/jam")
    async def jam(lock_id: uuid.UUID, body: JamRequest) -> dict[str, Any]:
        lock = registry.find(lock_id)
        lock.firmware.jammed = body.jammed
        return lock_view(lock)

    return router


def radio_knobs_router(registry: LockRegistry, attacker: Attacker) -> APIRouter:
    """What happens on the air: range, and an attacker's central."""
    router = APIRouter(prefix="/locks/{lock_id}", tags=["radio knobs"])

    @router.post("/vanish")
    async def vanish(lock_id: uuid.UUID) -> dict[str, Any]:
        lock = registry.find(lock_id)
        lock.vanish()
        return lock_view(lock)

    @router.post("/drop-link-after-write")
    async def drop_link_after_write(lock_id: uuid.UUID) -> dict[str, Any]:
        """The next accepted command actuates, then the link is lost before the write is answered."""
        lock = registry.find(lock_id)
        lock.drop_link_after_write = True
        return lock_view(lock)

    @router.post("/appear")
    async def appear(lock_id: uuid.UUID) -> dict[str, Any]:
        lock = registry.find(lock_id)
        lock.appear()
        return lock_view(lock)

    @router.post("/attack")
    async def attack(lock_id: uuid.UUID, body: AttackRequest) -> dict[str, Any]:
        lock = registry.find(lock_id)
        try:
            result = await attacker.attack(body.kind, lock)
        except NothingCaptured as exc:
            raise ApiError(409, "nothing_captured", str(exc)) from exc
        return result.as_json()

    return router


def create_app(
    locks: dict[uuid.UUID, VirtualLock], attacker: Attacker, authority: HealthAuthority, sms: SmsProvider
) -> FastAPI:
    app = FastAPI(title="HealthLock simulator", docs_url="/docs", redoc_url=None)
    registry = LockRegistry(locks)
    app.include_router(status_router(registry))
    app.include_router(physical_knobs_router(registry))
    app.include_router(radio_knobs_router(registry, attacker))
    app.include_router(authority_router(authority))
    app.include_router(sms_router(sms))

    @app.exception_handler(ApiError)
    async def on_api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse({"error": "invalid_request", "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "detail": exc.detail}, status_code=exc.status_code)

    return app
