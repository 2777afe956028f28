"""The firmware of one virtual lock: command checks, bolt and door state, signed events. No radio here.

Command checks, in this order (the first failure is the reason reported):
    frame does not parse                       -> MALFORMED
    lock_id is not this lock                   -> WRONG_LOCK
    MAC does not verify with this lock's key   -> BAD_MAC
    lock clock > expires_at_ms + tolerance     -> EXPIRED
    counter <= last accepted counter           -> REPLAYED
    action the lock does not perform           -> UNSUPPORTED_ACTION
A rejection emits a signed COMMAND_REJECTED event (value = reason, command id when it could be read).

Bolt and door, as a tester sees them through the knobs:
  * An accepted command retracts the bolt (UNLOCKED with its command id); the bolt throws again
    RELOCK_AFTER_S later (LOCKED), or when the door next closes if it is open at that moment.
  * A jammed lock accepts the command (the write succeeds, the counter is used up) but the bolt does
    not move: JAMMED with the command id, no UNLOCKED, bolt stays locked.
  * Opening from outside needs the bolt retracted. Opening from inside always works (exiting is never
    blocked): the handle retracts the bolt mechanically, so there is no UNLOCKED event (that kind means
    "an accepted command"); the door reports DOOR_OPENED_INSIDE, then DOOR_CLOSED, then LOCKED.
  * An opened door closes by itself DOOR_CLOSE_AFTER_S later.
Timers live in the radio-side wrapper (`virtual_lock`); this module only changes state and emits events.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from lock_gateway.protocol.lock_frames import (
    CLOCK_SKEW_TOLERANCE_MS,
    COMMAND_FRAME_LEN,
    MAC_LEN,
    NO_COMMAND,
    Action,
    CommandFrame,
    EventFrame,
    EventKind,
    FrameError,
    RejectReason,
    mac_matches,
)
from simulator.counter_store import CounterStore

RELOCK_AFTER_S = 3.0  # long enough to push a door open after an unlock, short enough for tests
DOOR_CLOSE_AFTER_S = 2.0  # a door closer pulls an opened door shut in about two seconds
MAX_REMEMBERED_REJECTIONS = 100  # the tester's view needs recent ones only
SUPPORTED_ACTIONS = frozenset({Action.UNLOCK})
# Offset of the action byte in a command frame: the last byte of the body, right before the MAC.
_ACTION_OFFSET = COMMAND_FRAME_LEN - MAC_LEN - 1


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class CommandRejected(Exception):
    def __init__(self, reason: RejectReason, command_id: uuid.UUID = NO_COMMAND) -> None:
        super().__init__(reason.name)
        self.reason = reason
        self.command_id = command_id


class DoorRefused(Exception):
    """A door knob that a physical door would not allow (e.g. pushing a locked door open)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Rejection:
    reason: RejectReason
    at_ms: int


@dataclass
class LockFirmware:
    lock_id: uuid.UUID
    key: bytes = field(repr=False)
    store: CounterStore
    battery_pct: int
    clock_offset_ms: int = 0
    emit_sink: Callable[[EventFrame], None] = lambda _frame: None
    real_clock_ms: Callable[[], int] = wall_clock_ms
    bolt_locked: bool = True
    door_open: bool = False
    jammed: bool = False
    relock_on_close: bool = False
    actuations: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    last_accepted_frame: bytes | None = None  # what a sniffer on the air captured

    # ------------------------------------------------------------------ clock and counters
    def now_ms(self) -> int:
        return self.real_clock_ms() + self.clock_offset_ms

    @property
    def last_counter(self) -> int:
        return self.store.get(self.lock_id).last_counter

    @property
    def next_seq(self) -> int:
        return self.store.get(self.lock_id).next_seq

    # ------------------------------------------------------------------ commands
    def handle_command(self, data: bytes) -> CommandFrame:
        """Check and execute a CONTROL write. Returns the accepted frame or raises CommandRejected."""
        try:
            frame = self._check(data)
        except CommandRejected as rejected:
            self.rejections.append(Rejection(rejected.reason, self.now_ms()))
            del self.rejections[:-MAX_REMEMBERED_REJECTIONS]
            self.emit(EventKind.COMMAND_REJECTED, rejected.command_id, int(rejected.reason))
            raise
        counters = self.store.get(self.lock_id)
        counters.last_counter = frame.counter
        self.store.save()
        self.last_accepted_frame = bytes(data)
        if self.jammed:
            self.emit(EventKind.JAMMED, frame.command_id)
        else:
            self.bolt_locked = False
            self.actuations += 1
            self.emit(EventKind.UNLOCKED, frame.command_id)
        return frame

    def _check(self, data: bytes) -> CommandFrame:
        frame, action_known = self._parse(data)
        if frame.lock_id != self.lock_id:
            raise CommandRejected(RejectReason.WRONG_LOCK, frame.command_id)
        if not mac_matches(self.key, bytes(data[: COMMAND_FRAME_LEN - MAC_LEN]), frame.mac):
            raise CommandRejected(RejectReason.BAD_MAC, frame.command_id)
        if self.now_ms() > frame.expires_at_ms + CLOCK_SKEW_TOLERANCE_MS:
            raise CommandRejected(RejectReason.EXPIRED, frame.command_id)
        if frame.counter <= self.last_counter:
            raise CommandRejected(RejectReason.REPLAYED, frame.command_id)
        if not action_known or frame.action not in SUPPORTED_ACTIONS:
            raise CommandRejected(RejectReason.UNSUPPORTED_ACTION, frame.command_id)
        return frame

    @staticmethod
    def _parse(data: bytes) -> tuple[CommandFrame, bool]:
        """Decode a command; an unknown action byte is reported as UNSUPPORTED_ACTION, not MALFORMED.

        `CommandFrame.decode` refuses unknown actions with FrameError, which would make
        UNSUPPORTED_ACTION unreachable; so a frame that fails decoding is retried with a known action
        byte in place. The MAC is always checked over the bytes as received.
        """
        try:
            return CommandFrame.decode(bytes(data)), True
        except FrameError:
            pass
        if len(data) == COMMAND_FRAME_LEN:
            patched = bytearray(data)
            patched[_ACTION_OFFSET] = Action.UNLOCK
            try:
                return CommandFrame.decode(bytes(patched)), False
            except FrameError:
                pass
        raise CommandRejected(RejectReason.MALFORMED)

    # ------------------------------------------------------------------ bolt and door
    def relock_due(self) -> None:
        """The relock timer fired: throw the bolt now, or when the door closes."""
        if self.bolt_locked:
            return
        if self.door_open:
            self.relock_on_close = True
            return
        self.bolt_locked = True
        self.emit(EventKind.LOCKED)

    def open_door(self, from_inside: bool) -> None:
        if self.door_open:
            raise DoorRefused("door_already_open", "the door is already open")
        if from_inside:
            if self.bolt_locked:
                self.bolt_locked = False  # the inside handle retracts the bolt mechanically
                self.relock_on_close = True
            self.door_open = True
            self.emit(EventKind.DOOR_OPENED_INSIDE)
            return
        if self.bolt_locked:
            raise DoorRefused(
                "door_locked", "the bolt is locked: a locked door cannot be pushed open from outside"
            )
        self.door_open = True
        self.emit(EventKind.DOOR_OPENED_OUTSIDE)

    def close_door(self) -> None:
        if not self.door_open:
            raise DoorRefused("door_already_closed", "the door is already closed")
        self.door_open = False
        self.emit(EventKind.DOOR_CLOSED)
        if self.relock_on_close:
            self.relock_on_close = False
            if not self.bolt_locked:
                self.bolt_locked = True
                self.emit(EventKind.LOCKED)

    def set_battery(self, pct: int) -> None:
        self.battery_pct = pct
        self.emit(EventKind.BATTERY, value=pct)

    # ------------------------------------------------------------------ events
    def emit(self, kind: EventKind, command_id: uuid.UUID = NO_COMMAND, value: int = 0) -> EventFrame:
        counters = self.store.get(self.lock_id)
        seq = counters.next_seq
        counters.next_seq = seq + 1
        self.store.save()  # before the event can leave: a restart must never reuse this seq
        frame = EventFrame(
            lock_id=self.lock_id, seq=seq, occurred_at_ms=self.now_ms(), kind=kind,
            command_id=command_id, value=value, battery_pct=self.battery_pct,
        ).signed(self.key)
        self.emit_sink(frame)
        return frame
