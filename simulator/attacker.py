"""Scenario S7, "sent straight to the lock": an attacker with a phone next to the door and no key.

The simulator passively sniffs the air: each lock keeps the last command frame it accepted
(`LockFirmware.last_accepted_frame`). The attacker is a separate bumble central on the same LocalLink
(in process, bumble's own GATT client, no gateway involved). One attack = scan for the lock, connect,
exchange MTU, discover, write one frame to CONTROL with response, disconnect. Kinds:

  replay_captured  the captured frame, byte for byte (the lock must answer REPLAYED)
  forged_mac       a fresh frame for this lock: new command id, a counter above any seen on the air,
                   a valid expiry, and 16 random bytes as MAC (BAD_MAC)
  expired          the captured frame if it has expired by now; otherwise the captured frame with an
                   expiry in the past and a fresh counter, keeping the captured MAC. Without the key the
                   attacker cannot re-sign it, so the lock refuses it for its MAC (BAD_MAC) before it
                   ever looks at the expiry; the result reports which reason the lock gave.

Both frame-reusing kinds need a capture: NothingCaptured otherwise. Every step is bounded and the whole
attack ends within ATTACK_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from bumble import att, hci
from bumble.core import UUID
from bumble.device import Advertisement, Device, Peer
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from lock_gateway.protocol.lock_frames import (
    ATT_REJECTION_BASE,
    CLOCK_SKEW_TOLERANCE_MS,
    CONTROL_CHAR_UUID,
    MAC_LEN,
    Action,
    CommandFrame,
    RejectReason,
)
from simulator.radio import RadioController
from simulator.virtual_lock import VirtualLock

log = logging.getLogger(__name__)

ATTACK_TIMEOUT_S = 8.0  # the HTTP caller waits on this; every BLE step below fits well inside it
SCAN_TIMEOUT_S = 3.0  # locks advertise every 40-100 ms: three seconds of silence means out of range
CONNECT_TIMEOUT_S = 2.0
GATT_STEP_TIMEOUT_S = 2.0  # one ATT round trip on the emulated link takes about a millisecond
DISCONNECT_TIMEOUT_S = 1.0
ATTACK_MTU = 247  # fits a 67-byte command in one write request
FORGED_EXPIRY_AHEAD_MS = 60_000  # a plausible expiry, as a backend would set it
EXPIRED_BY_MS = CLOCK_SKEW_TOLERANCE_MS + 60_000  # clearly past expiry even with the skew tolerance


class AttackKind(StrEnum):
    REPLAY_CAPTURED = "replay_captured"
    FORGED_MAC = "forged_mac"
    EXPIRED = "expired"


class NothingCaptured(Exception):
    """The attack needs a frame sniffed from the air, and this lock has accepted none yet."""


@dataclass(frozen=True)
class AttackResult:
    kind: AttackKind
    written: bool  # the lock answered the write (accepted or refused)
    att_error: int | None
    rejected_reason: str | None
    actuated: bool  # the lock's actuation count changed
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def build_attack_frame(kind: AttackKind, lock: VirtualLock) -> bytes:
    fw = lock.firmware
    captured = fw.last_accepted_frame
    if kind is AttackKind.FORGED_MAC:
        seen_counter = CommandFrame.decode(captured).counter if captured else 0
        return CommandFrame(
            lock_id=lock.lock_id, command_id=uuid.uuid4(), counter=max(seen_counter, fw.last_counter) + 1,
            expires_at_ms=fw.now_ms() + FORGED_EXPIRY_AHEAD_MS, action=Action.UNLOCK,
            mac=os.urandom(MAC_LEN),
        ).encode()
    if captured is None:
        raise NothingCaptured(f"lock {lock.lock_id} has accepted no command since the simulator started")
    if kind is AttackKind.REPLAY_CAPTURED:
        return captured
    frame = CommandFrame.decode(captured)
    if fw.now_ms() > frame.expires_at_ms + CLOCK_SKEW_TOLERANCE_MS:
        return captured  # already expired: replay it as is
    return CommandFrame(
        lock_id=frame.lock_id, command_id=frame.command_id, counter=frame.counter + 1,
        expires_at_ms=fw.now_ms() - EXPIRED_BY_MS, action=frame.action, mac=frame.mac,
    ).encode()


class Attacker:
    def __init__(self, link: LocalLink) -> None:
        self._controller = RadioController("attacker", link=link)
        self._device = Device(
            name="attacker",
            address=hci.Address.generate_static_address(),
            host=Host(self._controller, AsyncPipeSink(self._controller)),
        )
        self._busy = asyncio.Lock()  # one central, one initiator: attacks run one at a time

    async def start(self) -> None:
        await asyncio.wait_for(self._device.power_on(), GATT_STEP_TIMEOUT_S * 2)

    async def attack(self, kind: AttackKind, lock: VirtualLock) -> AttackResult:
        frame = build_attack_frame(kind, lock)
        async with self._busy:
            before = lock.firmware.actuations
            try:
                async with asyncio.timeout(ATTACK_TIMEOUT_S):
                    att_error, detail = await self._write_to_lock(lock, frame)
            except TimeoutError:
                return AttackResult(kind, False, None, None, lock.firmware.actuations != before,
                                    f"gave up after {ATTACK_TIMEOUT_S} s")
            written = detail is None
            reason = _reason_name(att_error)
            return AttackResult(kind, written, att_error, reason, lock.firmware.actuations != before, detail)

    async def _write_to_lock(self, lock: VirtualLock, frame: bytes) -> tuple[int | None, str | None]:
        """Returns (ATT error code or None, why nothing was written or None)."""
        target = hci.Address(lock.address, hci.Address.RANDOM_DEVICE_ADDRESS)
        if not await self._heard(target):
            return None, f"lock not heard on the air within {SCAN_TIMEOUT_S} s (out of range or busy)"
        try:
            connection = await asyncio.wait_for(
                self._device.connect(target, timeout=CONNECT_TIMEOUT_S), CONNECT_TIMEOUT_S + 1
            )
        except Exception as exc:
            return None, f"connect failed: {exc!r}"
        try:
            peer = Peer(connection)
            await asyncio.wait_for(peer.request_mtu(ATTACK_MTU), GATT_STEP_TIMEOUT_S)
            await asyncio.wait_for(peer.discover_all(), GATT_STEP_TIMEOUT_S)  # type: ignore[no-untyped-call]
            characteristics = peer.get_characteristics_by_uuid(UUID(CONTROL_CHAR_UUID))
            if not characteristics:
                return None, "the device has no CONTROL characteristic"
            try:
                await asyncio.wait_for(
                    peer.write_value(characteristics[0], frame, with_response=True), GATT_STEP_TIMEOUT_S
                )
            except att.ATT_Error as exc:
                return int(exc.error_code), None
            return None, None
        finally:
            if connection.handle in self._device.connections:  # the lock may have vanished meanwhile
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.disconnect(), DISCONNECT_TIMEOUT_S)

    async def _heard(self, target: hci.Address) -> bool:
        heard = asyncio.get_running_loop().create_future()

        def on_advertisement(advertisement: Advertisement) -> None:
            if advertisement.address == target and not heard.done():
                heard.set_result(True)

        self._device.on(Device.EVENT_ADVERTISEMENT, on_advertisement)
        try:
            await asyncio.wait_for(self._device.start_scanning(filter_duplicates=False), GATT_STEP_TIMEOUT_S)
            try:
                return await asyncio.wait_for(heard, SCAN_TIMEOUT_S)
            except TimeoutError:
                return False
        finally:
            self._device.remove_listener(Device.EVENT_ADVERTISEMENT, on_advertisement)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._device.stop_scanning(), GATT_STEP_TIMEOUT_S)


def _reason_name(att_error: int | None) -> str | None:
    if att_error is None:
        return None
    try:
        return RejectReason(att_error - ATT_REJECTION_BASE).name
    except ValueError:
        return None
