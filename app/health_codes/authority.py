"""Client for the health-code authority's HTTP API.

    GET {base}/health-codes/{code}   header X-Api-Key
      200 {"code": str, "colour": "green"|"yellow"|"red", "updated_at_ms": int, "holder_id_number": str}
      404 the authority does not know this code
      401 our key is wrong (a configuration fault, reported as unreachable)
      5xx / timeout: the authority is unreachable
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from app.clock import from_ms
from models.health import HealthColour


class AuthorityUnavailable(Exception):
    """The authority could not answer; the policy decides what that means at the door."""


@dataclass(frozen=True)
class AuthorityAnswer:
    colour: HealthColour | None  # None: the authority does not know the code
    updated_at: dt.datetime | None
    holder_id_number: str | None = None  # compared as a keyed digest, never stored


class HealthAuthorityClient:
    source = "health-authority"

    def __init__(self, client: httpx.AsyncClient, base_url: str, api_key: str, timeout_s: float) -> None:
        self._client, self._base_url, self._api_key = client, base_url.rstrip("/"), api_key
        self._timeout = httpx.Timeout(timeout_s)

    async def lookup(self, code: str) -> AuthorityAnswer:
        try:
            response = await self._client.get(
                f"{self._base_url}/health-codes/{quote(code, safe='')}",
                headers={"X-Api-Key": self._api_key},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise AuthorityUnavailable(f"health-code authority unreachable: {exc!r}") from exc
        if response.status_code == 404:
            return AuthorityAnswer(None, None)
        if response.status_code != 200:
            raise AuthorityUnavailable(f"health-code authority answered {response.status_code}")
        try:
            body = response.json()
            holder = body.get("holder_id_number")
            return AuthorityAnswer(HealthColour(body["colour"]), from_ms(int(body["updated_at_ms"])),
                                   str(holder) if holder else None)
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthorityUnavailable(f"health-code authority sent an answer we cannot read: {exc!r}") from exc
