"""Fake SMS provider, as the alert delivery worker sees it over HTTP.

    POST /sms/v1/messages   header Authorization: Bearer <sms_api_key>
         body {"to": "<phone>", "text": "...", "idempotency_key": "<str>"}
         202 {"message_id": "..."}   stored and "sent"
         200 {"message_id": "..."}   the same idempotency_key again: the first message's id, stored once
         409 {"error": "idempotency_key_reused", ...}   same key with a different `to` or `text`
         401 {"error": "unauthorized", ...}             missing or wrong bearer token
         503 {"error": "sms_provider_unavailable", ...} while the outage knob is on (nothing stored)
         422 {"error": "invalid_request", ...}          bad body

Tester knobs (no token: they are the tester's, not the provider's API):
    GET  /sms/v1/messages  -> 200 {"messages": [{"message_id", "to", "text", "idempotency_key",
                                                 "received_at_ms"}]}   in arrival order
    POST /sms/v1/outage  {"down": true|false}  -> 200 {"down": ...}
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from simulator.authority import Outage
from simulator.errors import ApiError
from simulator.lock_firmware import wall_clock_ms

MAX_SMS_TEXT_CHARS = 1_000  # several concatenated SMS; longer is a bug in the sender


class SmsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: Annotated[str, Field(min_length=3, max_length=32)]
    text: Annotated[str, Field(min_length=1, max_length=MAX_SMS_TEXT_CHARS)]
    idempotency_key: Annotated[str, Field(min_length=1, max_length=200)]


class SmsMessage(BaseModel):
    message_id: str
    to: str
    text: str
    idempotency_key: str
    received_at_ms: int


class SmsMessages(BaseModel):
    messages: list[SmsMessage]


class SmsAccepted(BaseModel):
    message_id: str


class SmsProvider:
    def __init__(self, api_key: str, clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self._api_key = api_key
        self._clock_ms = clock_ms
        self.messages: list[SmsMessage] = []
        self._by_key: dict[str, SmsMessage] = {}
        self.down = False

    def check_token(self, authorization: str | None) -> None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), self._api_key.encode()):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token")

    def send(self, request: SmsRequest) -> tuple[SmsMessage, bool]:
        """Returns the stored message and whether it is new."""
        if self.down:
            raise ApiError(503, "sms_provider_unavailable", "the SMS provider is down (outage knob)")
        existing = self._by_key.get(request.idempotency_key)
        if existing is not None:
            if (existing.to, existing.text) != (request.to, request.text):
                raise ApiError(409, "idempotency_key_reused",
                               "this idempotency_key was used for a different message")
            return existing, False
        message = SmsMessage(
            message_id=f"sms-{uuid.uuid4().hex}", to=request.to, text=request.text,
            idempotency_key=request.idempotency_key, received_at_ms=self._clock_ms(),
        )
        self.messages.append(message)
        self._by_key[message.idempotency_key] = message
        return message, True


def sms_router(provider: SmsProvider) -> APIRouter:
    router = APIRouter(prefix="/sms/v1", tags=["SMS provider"])

    def bearer_token(authorization: Annotated[str | None, Header()] = None) -> None:
        provider.check_token(authorization)  # a dependency, so it runs before the body is validated

    @router.post(
        "/messages", status_code=202, response_model=SmsAccepted, dependencies=[Depends(bearer_token)]
    )
    async def send_message(request: SmsRequest) -> JSONResponse:
        message, is_new = provider.send(request)
        return JSONResponse({"message_id": message.message_id}, status_code=202 if is_new else 200)

    @router.get("/messages")
    async def list_messages() -> SmsMessages:
        return SmsMessages(messages=list(provider.messages))

    @router.post("/outage")
    async def set_outage(outage: Outage) -> Outage:
        provider.down = outage.down
        return outage

    return router
