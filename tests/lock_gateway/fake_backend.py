"""A small backend that follows the gateway contract and records what it receives (test double)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException, Query

from lock_gateway.protocol.gateway_api import (
    MAX_LONG_POLL_MS,
    PREFIX,
    Command,
    CommandBatch,
    CommandResult,
    CommandResults,
    EventReceipt,
    EventsAck,
    EventStatus,
    EventUpload,
    Heartbeat,
    HeartbeatAck,
    LockAssignment,
    LockAssignments,
    ResultsAck,
    decode_frame,
    encode_frame,
)
from lock_gateway.protocol.lock_frames import EventFrame, FrameError

LONG_POLL_STEP_S = 0.05
Auth = Annotated[str | None, Header()]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class FakeBackend:
    url: str = ""
    token: str = "gw-test-token-0123456789"
    assignments: list[LockAssignment] = field(default_factory=list)
    down: bool = False  # every gateway call answers 503
    pending: list[Command] = field(default_factory=list)
    results: dict[uuid.UUID, CommandResult] = field(default_factory=dict)
    events: dict[tuple[uuid.UUID, int], EventFrame] = field(default_factory=dict)
    event_uploads: int = 0  # events received, duplicates included
    heartbeats: list[Heartbeat] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, lock_id: uuid.UUID, address: str, frame: bytes, command_id: uuid.UUID,
             expires_at_ms: int) -> None:
        with self.lock:
            self.pending.append(Command(command_id=command_id, lock_id=lock_id, ble_address=address,
                                        frame_b64=encode_frame(frame), expires_at_ms=expires_at_ms))

    def take_pending(self) -> list[Command]:
        with self.lock:
            taken, self.pending = self.pending, []
            return taken


def create_fake_backend_app(state: FakeBackend) -> FastAPI:  # noqa: C901 - one closure per endpoint
    app = FastAPI()

    def check(authorization: str | None) -> None:
        if authorization != f"Bearer {state.token}":
            raise HTTPException(401, "bad token")
        if state.down:
            raise HTTPException(503, "backend down (test knob)")

    @app.get(f"{PREFIX}/locks")
    async def locks(authorization: Auth = None) -> LockAssignments:
        check(authorization)
        return LockAssignments(locks=state.assignments)

    @app.get(f"{PREFIX}/commands")
    async def commands(wait_ms: Annotated[int, Query(ge=0, le=MAX_LONG_POLL_MS)],
                       authorization: Auth = None) -> CommandBatch:
        check(authorization)
        deadline = time.monotonic() + wait_ms / 1000
        # Commands are queued from the test's thread, so a loop-bound asyncio.Event cannot be set there.
        while not (taken := state.take_pending()) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(LONG_POLL_STEP_S)
        return CommandBatch(commands=taken, server_time_ms=now_ms())

    @app.post(f"{PREFIX}/results")
    async def results(body: CommandResults, authorization: Auth = None) -> ResultsAck:
        check(authorization)
        with state.lock:
            for result in body.results:
                state.results.setdefault(result.command_id, result)
        return ResultsAck(accepted=[r.command_id for r in body.results])

    @app.post(f"{PREFIX}/events")
    async def events(body: EventUpload, authorization: Auth = None) -> EventsAck:
        check(authorization)
        receipts = []
        with state.lock:
            for index, uploaded in enumerate(body.events):
                state.event_uploads += 1
                try:
                    frame = EventFrame.decode(decode_frame(uploaded.frame_b64))
                except FrameError as exc:
                    receipts.append(EventReceipt(index=index, lock_id=None, seq=None,
                                                 status=EventStatus.REJECTED, reason=str(exc)))
                    continue
                key = (frame.lock_id, frame.seq)
                status = EventStatus.DUPLICATE if key in state.events else EventStatus.STORED
                state.events.setdefault(key, frame)
                receipts.append(EventReceipt(index=index, lock_id=frame.lock_id, seq=frame.seq, status=status))
        return EventsAck(receipts=receipts)

    @app.post(f"{PREFIX}/heartbeat")
    async def heartbeat(body: Heartbeat, authorization: Auth = None) -> HeartbeatAck:
        check(authorization)
        with state.lock:
            state.heartbeats.append(body)
        return HeartbeatAck(server_time_ms=now_ms())

    return app
