"""Gateway <-> backend HTTP contract, version 1. Shared by the backend's gateway router and the gateway.

Every request carries `Authorization: Bearer <gateway token>` (issued when the landlord registers
the gateway; stored hashed by the backend). Frames travel base64-encoded, exactly as the lock
produced or will consume them: the gateway never needs to understand a frame to relay it.

    GET  {PREFIX}/locks                       -> LockAssignments   which locks this gateway serves
    GET  {PREFIX}/commands?wait_ms=N          -> CommandBatch      long-poll; returns at once when work exists
    POST {PREFIX}/results   CommandResults    -> ResultsAck        idempotent by command_id
    POST {PREFIX}/events    EventUpload       -> EventsAck         idempotent by (lock_id, seq)
    POST {PREFIX}/heartbeat Heartbeat         -> HeartbeatAck
"""

from __future__ import annotations

import base64
import binascii
import uuid
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from lock_gateway.protocol.lock_frames import FrameError, require_epoch_ms

API_VERSION = "v1"
PREFIX = f"/gateway/{API_VERSION}"
MAX_LONG_POLL_MS = 30_000
MAX_BATCH = 500  # events or results in one request: bounds request size and transaction length


def _epoch_ms(value: int) -> int:
    try:
        return require_epoch_ms(value, "timestamp")
    except FrameError as exc:
        raise ValueError(str(exc)) from exc


def _base64_frame(value: str) -> str:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("frame_b64 is not valid base64") from exc
    if not raw:
        raise ValueError("frame_b64 is empty")
    return value


EpochMs = Annotated[int, AfterValidator(_epoch_ms)]
FrameB64 = Annotated[str, Field(max_length=1024), AfterValidator(_base64_frame)]
BleAddress = Annotated[str, Field(pattern=r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def encode_frame(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def decode_frame(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


class LockAssignment(_Message):
    lock_id: uuid.UUID
    ble_address: BleAddress


class LockAssignments(_Message):
    locks: list[LockAssignment]


class Command(_Message):
    command_id: uuid.UUID
    lock_id: uuid.UUID
    ble_address: BleAddress
    frame_b64: FrameB64
    expires_at_ms: EpochMs  # server clock: after this the gateway drops the command unsent


class CommandBatch(_Message):
    commands: list[Command]
    server_time_ms: EpochMs


class CommandOutcome(StrEnum):
    ACKNOWLEDGED = "acknowledged"  # the lock accepted the write (MAC, counter and expiry were good)
    REJECTED_BY_LOCK = "rejected_by_lock"  # the lock answered the write with a rejection code
    NOT_DELIVERED = "not_delivered"  # no byte of the frame reached the lock (scan/connect failed, expired)
    UNKNOWN = "unknown"  # the write was attempted and its answer was lost


class CommandResult(_Message):
    command_id: uuid.UUID
    outcome: CommandOutcome
    reject_reason: int | None = Field(default=None, ge=0, le=255)  # lock_frames.RejectReason
    detail: str = Field(default="", max_length=500)
    reported_at_ms: EpochMs


class CommandResults(_Message):
    results: list[CommandResult] = Field(max_length=MAX_BATCH)


class ResultsAck(_Message):
    accepted: list[uuid.UUID]  # includes results already recorded before (idempotent)


class UploadedEvent(_Message):
    frame_b64: FrameB64
    received_at_ms: EpochMs  # gateway clock when the notification arrived


class EventUpload(_Message):
    events: list[UploadedEvent] = Field(max_length=MAX_BATCH)


class EventStatus(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # already stored: the gateway may forget it
    REJECTED = "rejected"  # unparseable, unknown lock or bad MAC: recorded as a security finding, not retried


class EventReceipt(_Message):
    index: int  # position in the upload
    lock_id: uuid.UUID | None
    seq: int | None
    status: EventStatus
    reason: str = ""


class EventsAck(_Message):
    receipts: list[EventReceipt]


class LockPresence(_Message):
    lock_id: uuid.UUID
    connected: bool
    rssi: int | None = None
    battery_pct: int | None = Field(default=None, ge=0, le=100)
    # lock clock minus gateway clock, read from the info characteristic at the last contact
    lock_clock_offset_ms: int | None = None
    last_error: str = Field(default="", max_length=300)


class Heartbeat(_Message):
    sent_at_ms: EpochMs
    queued_events: int = Field(ge=0)
    locks: list[LockPresence] = Field(max_length=MAX_BATCH)


class HeartbeatAck(_Message):
    server_time_ms: EpochMs
