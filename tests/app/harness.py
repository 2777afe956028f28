"""What the backend tests do again and again: read the database, sign lock frames, unlock, wait for SMS.

The simulator process (and so its SMS provider) is shared by every test of the session and every seed
uses the same station phone: a test finds *its* texts by the idempotency keys, which are the delivery
ids in its own database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.secrets import new_token, token_digest
from app.clock import to_ms
from app.db import make_engine, make_session_factory
from lock_gateway.protocol import gateway_api as api
from lock_gateway.protocol.lock_frames import NO_COMMAND, EventFrame, EventKind
from models import Alert, AlertDelivery, AuditEntry, Gateway
from models.alerts import AlertKind

WAIT_S = 5.0  # every wait in these tests is bounded by this
POLL_S = 0.05
T = TypeVar("T")


@asynccontextmanager
async def open_db(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(database_url)
    try:
        yield make_session_factory(engine)
    finally:
        await engine.dispose()


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = WAIT_S) -> T:
    """Re-run `probe` until it returns something truthy; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s waiting for {what}"
        await asyncio.sleep(POLL_S)


def cheap_password_hash(password: str) -> str:
    """app.auth.secrets' stored format with a tiny scrypt cost: sign-ins take ~1 ms, not ~130 ms."""
    salt = secrets.token_bytes(16)
    n, r, p = 2**4, 8, 1
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def now_ms() -> int:
    return to_ms(dt.datetime.now(dt.UTC))


class World:
    """The seeded world of one test: ids, keys and the routes a tester would use."""

    def __init__(self, backend: Any, db: async_sessionmaker[AsyncSession]) -> None:
        self.backend, self.db, self.client = backend, db, backend.client
        self.manifest: dict[str, Any] = backend.manifest
        self._keys = {uuid.UUID(lock["lock_id"]): bytes.fromhex(lock["key_hex"])
                      for lock in backend.world["simulator_world"]["locks"]}
        self._seq: dict[uuid.UUID, int] = {}

    # ------------------------------------------------------------------ people and locks
    def person(self, key: str) -> dict[str, Any]:
        person: dict[str, Any] = self.manifest["people"][key]
        return person

    def lock_of(self, key: str) -> uuid.UUID:
        return uuid.UUID(self.person(key)["lock_id"])

    def lock(self, label: str) -> uuid.UUID:
        return uuid.UUID(self.manifest["locks"][label])

    def key_of(self, lock_id: uuid.UUID) -> bytes:
        return self._keys[lock_id]

    @property
    def gateway(self) -> dict[str, str]:
        headers: dict[str, str] = self.backend.gateway_headers
        return headers

    async def headers(self, key: str) -> dict[str, str]:
        if key in ("landlord", "police"):
            return await self.backend.login(self.manifest[key]["phone"])  # type: ignore[no-any-return]
        return await self.backend.as_person(key)  # type: ignore[no-any-return]

    async def add_gateway(self) -> dict[str, str]:
        """Another gateway on the seeded property, serving no locks; returns its request headers."""
        token = new_token("gw")
        async with self.db() as session, session.begin():
            first = (await session.execute(select(Gateway).limit(1))).scalar_one()
            session.add(Gateway(property_id=first.property_id, name="二号网关", token_digest=token_digest(token)))
        return {"Authorization": f"Bearer {token}"}

    # ------------------------------------------------------------------ tenant actions
    async def unlock(self, key: str, *, lock_id: uuid.UUID | None = None, code: str | bool | None = True,
                     headers: dict[str, str] | None = None) -> httpx.Response:
        """Cloud unlock as `key`; `code=True` submits the person's own health code."""
        health_code = self.person(key)["health_code"] if code is True else code
        body: dict[str, Any] = {"lock_id": str(lock_id or self.lock_of(key))}
        if health_code is not None:
            body["health_code"] = health_code
        return await self.client.post("/api/v1/tenant/unlocks", params={"wait_s": 0}, json=body,
                                      headers=headers or await self.headers(key))

    # ------------------------------------------------------------------ gateway actions
    async def take_commands(self, wait_ms: int = 0, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        r = await self.client.get(f"{api.PREFIX}/commands", params={"wait_ms": wait_ms},
                                  headers=headers or self.gateway)
        assert r.status_code == 200, r.text
        commands: list[dict[str, Any]] = r.json()["commands"]
        return commands

    async def post_results(self, *results: dict[str, Any], headers: dict[str, str] | None = None) -> list[str]:
        body = {"results": [{"reported_at_ms": now_ms(), **result} for result in results]}
        r = await self.client.post(f"{api.PREFIX}/results", json=body, headers=headers or self.gateway)
        assert r.status_code == 200, r.text
        accepted: list[str] = r.json()["accepted"]
        return accepted

    def event(self, lock_id: uuid.UUID, kind: EventKind, *, seq: int | None = None,
              occurred_at_ms: int | None = None, command_id: uuid.UUID = NO_COMMAND, value: int = 0,
              battery_pct: int = 80, key: bytes | None = None) -> str:
        """A signed event frame, base64 as the gateway relays it; seq follows on from the last one made."""
        if seq is None:
            seq = self._seq.get(lock_id, 0) + 1
        self._seq[lock_id] = max(seq, self._seq.get(lock_id, 0))
        frame = EventFrame(lock_id, seq, occurred_at_ms or now_ms(), kind, command_id, value, battery_pct)
        return api.encode_frame(frame.signed(key or self.key_of(lock_id)).encode())

    async def post_events(self, *frames_b64: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        body = {"events": [{"frame_b64": f, "received_at_ms": now_ms()} for f in frames_b64]}
        r = await self.client.post(f"{api.PREFIX}/events", json=body, headers=headers or self.gateway)
        assert r.status_code == 200, r.text
        receipts: list[dict[str, Any]] = r.json()["receipts"]
        return receipts

    # ------------------------------------------------------------------ database reads
    async def get(self, model: type[T], ident: Any) -> T:
        async with self.db() as session:
            row = await session.get(model, ident)
            assert row is not None, f"no {model.__name__} {ident}"
            return row

    async def all(self, statement: Any) -> list[Any]:
        async with self.db() as session:
            return list((await session.execute(statement)).scalars().all())

    async def alerts(self, kind: AlertKind | None = None) -> list[Alert]:
        query = select(Alert).order_by(Alert.created_at)
        if kind is not None:
            query = query.where(Alert.kind == kind)
        return await self.all(query)

    async def deliveries(self, alert_id: uuid.UUID, channel: str | None = None) -> list[AlertDelivery]:
        query = select(AlertDelivery).where(AlertDelivery.alert_id == alert_id)
        if channel is not None:
            query = query.where(AlertDelivery.channel == channel)
        return await self.all(query)

    async def audit(self, action: str) -> list[AuditEntry]:
        return await self.all(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.at))

    # ------------------------------------------------------------------ SMS seen by the provider
    async def my_sms(self) -> list[dict[str, Any]]:
        """Texts the simulator's provider stored for this test's deliveries, in arrival order."""
        ids = {str(i) for i in await self.all(select(AlertDelivery.id).where(AlertDelivery.channel == "sms"))}
        messages = await asyncio.to_thread(self.backend.simulator.sms_messages)
        return [m for m in messages if m["idempotency_key"] in ids]

    async def sms_count_settles(self, count: int, what: str) -> list[dict[str, Any]]:
        """Wait until this test has `count` texts, then check no more arrive within a few worker rounds."""
        async def enough() -> tuple[list[dict[str, Any]]] | None:
            messages = await self.my_sms()
            return (messages,) if len(messages) >= count else None

        await eventually(enough, what)
        await asyncio.sleep(0.3)  # ~6 worker polls: a duplicate send would show up here
        messages = await self.my_sms()
        assert len(messages) == count, messages
        return messages
