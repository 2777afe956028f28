"""Fake health-code authority, as the backend's health-code provider client sees it over HTTP.

    GET  /authority/v1/health-codes/{code}    header X-Api-Key: <authority_api_key>
         200 {"code": "...", "colour": "green|yellow|red", "updated_at_ms": <epoch ms of the last change>,
              "holder_id_number": "<whose code it is, or null>"}
         404 {"error": "unknown_code", "detail": ...}
         401 {"error": "unauthorized", "detail": ...}           missing or wrong key
         503 {"error": "authority_unavailable", "detail": ...}  while the outage knob is on

Tester knobs (they keep working during an outage):
    PUT  /authority/v1/health-codes/{code}  {"colour": "green|yellow|red", "holder_id_number"?}   same X-Api-Key
         200 the record; creates the code if it is new (the authority issued a code), 422 on a bad colour
    POST /authority/v1/outage  {"down": true|false}  -> 200 {"down": ...}    no key: a fault knob, not API
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ConfigDict, Field

from simulator.errors import ApiError
from simulator.lock_firmware import wall_clock_ms
from simulator.world import Colour, World


class HealthCodeRecord(BaseModel):
    code: str
    colour: Colour
    updated_at_ms: int
    holder_id_number: str | None = None


class ColourChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    colour: Colour
    holder_id_number: str | None = Field(default=None, min_length=6, max_length=32)  # kept when omitted


class Outage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    down: bool


class HealthAuthority:
    def __init__(self, world: World, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self._api_key = world.authority_api_key
        self._clock_ms = clock_ms
        now = clock_ms()
        self.codes = {c.code: HealthCodeRecord(code=c.code, colour=c.colour, updated_at_ms=now,
                                               holder_id_number=c.holder_id_number)
                      for c in world.health_codes}
        self.down = False

    def check_key(self, presented: str | None) -> None:
        if presented is None or not hmac.compare_digest(presented.encode(), self._api_key.encode()):
            raise ApiError(401, "unauthorized", "missing or wrong X-Api-Key")

    def lookup(self, code: str) -> HealthCodeRecord:
        if self.down:
            raise ApiError(503, "authority_unavailable", "the health-code authority is down (outage knob)")
        record = self.codes.get(code)
        if record is None:
            raise ApiError(404, "unknown_code", "this health code is not known to the authority")
        return record

    def set_colour(self, code: str, colour: Colour, holder_id_number: str | None = None) -> HealthCodeRecord:
        known = self.codes.get(code)
        holder = holder_id_number or (known.holder_id_number if known else None)
        record = HealthCodeRecord(code=code, colour=colour, updated_at_ms=self._clock_ms(), holder_id_number=holder)
        self.codes[code] = record
        return record


def authority_router(authority: HealthAuthority) -> APIRouter:
    router = APIRouter(prefix="/authority/v1", tags=["health-code authority"])

    def api_key(x_api_key: Annotated[str | None, Header(alias="X-Api-Key")] = None) -> None:
        authority.check_key(x_api_key)  # a dependency, so it runs before the body is validated

    @router.get("/health-codes/{code}", dependencies=[Depends(api_key)])
    async def get_health_code(code: str) -> HealthCodeRecord:
        return authority.lookup(code)

    @router.put("/health-codes/{code}", dependencies=[Depends(api_key)])
    async def put_health_code(code: str, change: ColourChange) -> HealthCodeRecord:
        return authority.set_colour(code, change.colour, change.holder_id_number)

    @router.post("/outage")
    async def set_outage(outage: Outage) -> Outage:
        authority.down = outage.down
        return outage

    return router
