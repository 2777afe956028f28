"""HealthLock lock protocol, version 1: the GATT profile and the byte layout of every frame.

One module, shared by the backend (signs commands, verifies events), the simulator's virtual locks
(verify commands, sign events) and the gateway (reads ids and sequence numbers; it holds no key).

GATT profile (one primary service):
    LOCK_SERVICE_UUID
      INFO_CHAR_UUID     read                 InfoFrame: lock id, battery, lock clock, last sequence
      CONTROL_CHAR_UUID  write with response  CommandFrame; the ATT write fails with
                                              ATT_REJECTION_BASE + RejectReason when the lock refuses it
      EVENTS_CHAR_UUID   notify               EventFrame, one per notification

All integers are big-endian. Every timestamp is epoch milliseconds; a value that looks like
seconds is refused (see `require_epoch_ms`). MACs are HMAC-SHA256 truncated to 16 bytes, keyed
with the lock's own 32-byte key, over every byte of the frame before the MAC.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass
from enum import IntEnum

PROTOCOL_VERSION = 1

LOCK_SERVICE_UUID = "5e1f0001-7a3c-4b8e-9d21-6c0a4f1e2b3d"
INFO_CHAR_UUID = "5e1f0002-7a3c-4b8e-9d21-6c0a4f1e2b3d"
CONTROL_CHAR_UUID = "5e1f0003-7a3c-4b8e-9d21-6c0a4f1e2b3d"
EVENTS_CHAR_UUID = "5e1f0004-7a3c-4b8e-9d21-6c0a4f1e2b3d"

MAC_LEN = 16  # 128-bit tag: forging needs 2^128 tries, and frames stay under one 247-byte ATT MTU
LOCK_KEY_LEN = 32
# Application ATT error codes live in 0x80-0x9F; a rejected command fails its write with 0x80 + reason.
ATT_REJECTION_BASE = 0x80
# A lock accepts a command up to this long after its expiry by the lock's own clock, to absorb drift
# the backend has not yet measured.
CLOCK_SKEW_TOLERANCE_MS = 30_000

# 2001-09-09 .. 2286-11-20 in milliseconds. A seconds timestamp of today (~1.8e9) falls below the floor.
EPOCH_MS_MIN = 1_000_000_000_000
EPOCH_MS_MAX = 9_999_999_999_999


class FrameType(IntEnum):
    COMMAND = 0x01
    EVENT = 0x02
    INFO = 0x03


class Action(IntEnum):
    UNLOCK = 0x01


class EventKind(IntEnum):
    UNLOCKED = 0x01  # bolt retracted by an accepted command (carries its command id)
    LOCKED = 0x02  # bolt thrown again (auto-relock or from inside)
    DOOR_OPENED_OUTSIDE = 0x03
    DOOR_OPENED_INSIDE = 0x04
    DOOR_CLOSED = 0x05
    BATTERY = 0x06  # value = battery percent
    TAMPER = 0x07
    JAMMED = 0x08  # the bolt did not move when driven
    COMMAND_REJECTED = 0x09  # value = RejectReason, command id when it could be read


class RejectReason(IntEnum):
    BAD_MAC = 0x01
    REPLAYED = 0x02  # counter not above the last one this lock accepted
    EXPIRED = 0x03
    WRONG_LOCK = 0x04
    MALFORMED = 0x05
    UNSUPPORTED_ACTION = 0x06


class FrameError(ValueError):
    """A frame that cannot be parsed or is not of this protocol version."""


def require_epoch_ms(value: int, field: str) -> int:
    """Refuse a timestamp that is not plausible epoch milliseconds (F3: seconds read as ms)."""
    if value < EPOCH_MS_MIN:
        raise FrameError(
            f"{field}={value} is not epoch milliseconds (looks like seconds or zero); "
            f"expected a value between {EPOCH_MS_MIN} and {EPOCH_MS_MAX}"
        )
    if value > EPOCH_MS_MAX:
        raise FrameError(f"{field}={value} is beyond {EPOCH_MS_MAX}: microseconds or nanoseconds?")
    return value


def compute_mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:MAC_LEN]


def mac_matches(key: bytes, body: bytes, tag: bytes) -> bool:
    return hmac.compare_digest(compute_mac(key, body), tag)


# ---------------------------------------------------------------------------------------------- commands

_COMMAND_BODY = struct.Struct(">BB16s16sQQB")  # version, type, lock id, command id, counter, expiry, action
COMMAND_FRAME_LEN = _COMMAND_BODY.size + MAC_LEN  # 67 bytes


@dataclass(frozen=True)
class CommandFrame:
    lock_id: uuid.UUID
    command_id: uuid.UUID
    counter: int
    expires_at_ms: int  # by the lock's clock: the backend adds the lock's measured offset
    action: Action
    mac: bytes = b""

    def body(self) -> bytes:
        return _COMMAND_BODY.pack(
            PROTOCOL_VERSION,
            FrameType.COMMAND,
            self.lock_id.bytes,
            self.command_id.bytes,
            self.counter,
            self.expires_at_ms,
            self.action,
        )

    def signed(self, key: bytes) -> CommandFrame:
        return CommandFrame(
            self.lock_id, self.command_id, self.counter, self.expires_at_ms, self.action,
            compute_mac(key, self.body()),
        )

    def encode(self) -> bytes:
        if len(self.mac) != MAC_LEN:
            raise FrameError("command frame is not signed")
        return self.body() + self.mac

    def verify(self, key: bytes) -> bool:
        return mac_matches(key, self.body(), self.mac)

    @classmethod
    def decode(cls, data: bytes) -> CommandFrame:
        if len(data) != COMMAND_FRAME_LEN:
            raise FrameError(f"command frame must be {COMMAND_FRAME_LEN} bytes, got {len(data)}")
        version, ftype, lock_id, command_id, counter, expires_at_ms, action = _COMMAND_BODY.unpack_from(data)
        _check_header(version, ftype, FrameType.COMMAND)
        try:
            parsed_action = Action(action)
        except ValueError as exc:
            raise FrameError(f"unknown action {action}") from exc
        require_epoch_ms(expires_at_ms, "expires_at_ms")
        return cls(
            uuid.UUID(bytes=lock_id), uuid.UUID(bytes=command_id), counter, expires_at_ms,
            parsed_action, data[_COMMAND_BODY.size:],
        )


# ------------------------------------------------------------------------------------------------ events

# version, type, lock id, sequence, occurred at (lock clock), kind, command id, value, battery percent
_EVENT_BODY = struct.Struct(">BB16sIQB16sBB")
EVENT_FRAME_LEN = _EVENT_BODY.size + MAC_LEN  # 65 bytes
NO_COMMAND = uuid.UUID(int=0)


@dataclass(frozen=True)
class EventFrame:
    lock_id: uuid.UUID
    seq: int  # per-lock, starts at 1, +1 per event: gaps mean lost events
    occurred_at_ms: int  # the lock's clock
    kind: EventKind
    command_id: uuid.UUID = NO_COMMAND
    value: int = 0
    battery_pct: int = 0
    mac: bytes = b""

    def body(self) -> bytes:
        return _EVENT_BODY.pack(
            PROTOCOL_VERSION,
            FrameType.EVENT,
            self.lock_id.bytes,
            self.seq,
            self.occurred_at_ms,
            self.kind,
            self.command_id.bytes,
            self.value,
            self.battery_pct,
        )

    def signed(self, key: bytes) -> EventFrame:
        return EventFrame(
            self.lock_id, self.seq, self.occurred_at_ms, self.kind, self.command_id, self.value,
            self.battery_pct, compute_mac(key, self.body()),
        )

    def encode(self) -> bytes:
        if len(self.mac) != MAC_LEN:
            raise FrameError("event frame is not signed")
        return self.body() + self.mac

    def verify(self, key: bytes) -> bool:
        return mac_matches(key, self.body(), self.mac)

    @classmethod
    def decode(cls, data: bytes) -> EventFrame:
        if len(data) != EVENT_FRAME_LEN:
            raise FrameError(f"event frame must be {EVENT_FRAME_LEN} bytes, got {len(data)}")
        version, ftype, lock_id, seq, occurred_at_ms, kind, command_id, value, battery = (
            _EVENT_BODY.unpack_from(data)
        )
        _check_header(version, ftype, FrameType.EVENT)
        try:
            parsed_kind = EventKind(kind)
        except ValueError as exc:
            raise FrameError(f"unknown event kind {kind}") from exc
        require_epoch_ms(occurred_at_ms, "occurred_at_ms")
        return cls(
            uuid.UUID(bytes=lock_id), seq, occurred_at_ms, parsed_kind, uuid.UUID(bytes=command_id),
            value, battery, data[_EVENT_BODY.size:],
        )


# -------------------------------------------------------------------------------------------------- info

_INFO = struct.Struct(">BB16sBQI")  # version, type, lock id, battery percent, lock clock ms, last event seq
INFO_FRAME_LEN = _INFO.size


@dataclass(frozen=True)
class InfoFrame:
    """What a lock tells anyone who reads it. Unsigned: used for presence and clock drift only."""

    lock_id: uuid.UUID
    battery_pct: int
    clock_ms: int
    last_event_seq: int

    def encode(self) -> bytes:
        return _INFO.pack(
            PROTOCOL_VERSION, FrameType.INFO, self.lock_id.bytes, self.battery_pct, self.clock_ms,
            self.last_event_seq,
        )

    @classmethod
    def decode(cls, data: bytes) -> InfoFrame:
        if len(data) != INFO_FRAME_LEN:
            raise FrameError(f"info frame must be {INFO_FRAME_LEN} bytes, got {len(data)}")
        version, ftype, lock_id, battery, clock_ms, last_seq = _INFO.unpack(data)
        _check_header(version, ftype, FrameType.INFO)
        require_epoch_ms(clock_ms, "clock_ms")
        return cls(uuid.UUID(bytes=lock_id), battery, clock_ms, last_seq)


def _check_header(version: int, ftype: int, expected: FrameType) -> None:
    if version != PROTOCOL_VERSION:
        raise FrameError(f"protocol version {version} is not supported (this side speaks {PROTOCOL_VERSION})")
    if ftype != expected:
        raise FrameError(f"frame type {ftype:#04x} where {expected.name} ({expected:#04x}) was expected")


def ble_address_for(lock_id: uuid.UUID) -> str:
    """The static random BLE address a lock advertises, derived from its id (top two bits set)."""
    raw = bytearray(hashlib.sha256(b"healthlock-ble-address" + lock_id.bytes).digest()[:6])
    raw[0] |= 0xC0
    return ":".join(f"{b:02X}" for b in raw)


def advertised_name(lock_id: uuid.UUID) -> str:
    return f"HL-{lock_id.hex[:8]}"
