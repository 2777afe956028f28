"""The gateway's side of the gateway <-> backend HTTP contract: one httpx client, typed calls, typed errors.

Each call makes one attempt and classifies the outcome; the loops that call it own the retry policy
(they know whether to retry now, later, or never). Transient: connect errors, timeouts, 5xx, 429.
Fatal: 401/403 (token wrong or revoked). 422: the message broke the contract, a bug on one side.
"""

from __future__ import annotations

from typing import TypeVar

import httpx
import structlog
from pydantic import BaseModel, ValidationError

from lock_gateway.errors import BackendAuthRejected, BackendRefusedBatch, BackendUnavailable
from lock_gateway.protocol.gateway_api import (
    PREFIX,
    CommandBatch,
    CommandResults,
    EventsAck,
    EventUpload,
    Heartbeat,
    HeartbeatAck,
    LockAssignments,
    ResultsAck,
)

log = structlog.get_logger(__name__)

# Slack on top of the long-poll wait for the backend to answer and the network to deliver it.
LONG_POLL_MARGIN_S = 10.0
# Establishing a TCP/TLS connection to the backend: longer than this means it is down or unreachable.
HTTP_CONNECT_TIMEOUT_S = 5.0

_Reply = TypeVar("_Reply", bound=BaseModel)


class BackendClient:
    def __init__(self, base_url: str, token: str, request_timeout_s: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._timeout = httpx.Timeout(request_timeout_s, connect=HTTP_CONNECT_TIMEOUT_S)
        self._http = httpx.AsyncClient(
            base_url=base_url + PREFIX,
            headers={"Authorization": f"Bearer {token}"},
            timeout=self._timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def fetch_locks(self) -> LockAssignments:
        return await self._call("GET", "/locks", LockAssignments)

    async def poll_commands(self, wait_ms: int) -> CommandBatch:
        timeout = httpx.Timeout(
            wait_ms / 1000 + LONG_POLL_MARGIN_S, connect=HTTP_CONNECT_TIMEOUT_S
        )
        return await self._call("GET", "/commands", CommandBatch, params={"wait_ms": wait_ms},
                                http_timeout=timeout)

    async def post_results(self, body: CommandResults) -> ResultsAck:
        return await self._call("POST", "/results", ResultsAck, body=body)

    async def post_events(self, body: EventUpload) -> EventsAck:
        return await self._call("POST", "/events", EventsAck, body=body)

    async def post_heartbeat(self, body: Heartbeat) -> HeartbeatAck:
        return await self._call("POST", "/heartbeat", HeartbeatAck, body=body)

    async def _call(
        self,
        method: str,
        path: str,
        reply_type: type[_Reply],
        *,
        body: BaseModel | None = None,
        params: dict[str, int] | None = None,
        http_timeout: httpx.Timeout | None = None,
    ) -> _Reply:
        content = body.model_dump_json().encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            response = await self._http.request(
                method, path, content=content, headers=headers, params=params,
                timeout=http_timeout or self._timeout,
            )
        except httpx.TransportError as exc:  # connect, read, write, pool, protocol errors and timeouts
            raise BackendUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        _raise_for_status(method, path, response)
        try:
            return reply_type.model_validate_json(response.content)
        except ValidationError as exc:
            # The backend answered 2xx with something off-contract: treat as transient (a deploy in
            # progress) rather than crash; the loop backs off and asks again.
            raise BackendUnavailable(f"{method} {path}: reply does not match the contract: {exc}") from exc


def _raise_for_status(method: str, path: str, response: httpx.Response) -> None:
    status = response.status_code
    if status < 300:
        return
    what = f"{method} {path} -> {status}: {response.text[:300]}"
    if status in (401, 403):
        raise BackendAuthRejected(what)
    if status == 422:
        raise BackendRefusedBatch(what)
    if status == 429 or status >= 500:
        raise BackendUnavailable(what)
    # Any other 4xx means the gateway and backend disagree about the contract: no retry will fix it,
    # but the gateway must keep serving its locks, so it is logged loudly and treated like a refusal.
    raise BackendRefusedBatch(what)
