"""Where alert messages go: the console (demos, operators' logs) and HTTP SMS providers."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Protocol

import httpx

from alerts.masking import mask_phone


class DeliveryFailed(Exception):
    """A send did not go through. `transient` failures are retried; others are not."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class OutgoingMessage:
    delivery_id: str  # idempotency key: a retried send must not text the officer twice
    recipient: str
    text: str


class Sender(Protocol):
    async def send(self, message: OutgoingMessage) -> str | None:
        """Send; return the provider's message id if it has one; raise DeliveryFailed."""
        ...


class ConsoleSender:
    async def send(self, message: OutgoingMessage) -> str | None:
        sys.stdout.write(f"[alert] {message.text}\n")
        sys.stdout.flush()
        return None


class HttpSmsSender:
    """POST {url}/messages {"to", "text", "idempotency_key"} with a bearer key (the simulator serves it)."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, api_key: str) -> None:
        self._client, self._base_url, self._api_key = client, base_url.rstrip("/"), api_key

    async def send(self, message: OutgoingMessage) -> str | None:
        try:
            response = await self._client.post(
                f"{self._base_url}/messages",
                json={"to": message.recipient, "text": message.text, "idempotency_key": message.delivery_id},
                headers={"Authorization": f"Bearer {self._api_key}"},
            )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"SMS provider unreachable: {exc!r}", transient=True) from exc
        if response.status_code in (200, 201, 202):
            message_id = response.json().get("message_id")
            return str(message_id) if message_id is not None else None
        transient = response.status_code == 429 or response.status_code >= 500
        raise DeliveryFailed(
            f"SMS provider answered {response.status_code} for {mask_phone(message.recipient)}: "
            f"{response.text[:200]}",
            transient=transient,
        )
