"""Commands from the backend, executed over BLE: long-poll, one task per command, results to the outbox.

Outcome rules (the F1 field failure: keep "nothing reached the lock" apart from "sent, result lost"):
    expired by the server clock before the write      -> NOT_DELIVERED "expired before delivery"
    lock not found / no link / no CONTROL char        -> NOT_DELIVERED
    write answered OK                                 -> ACKNOWLEDGED
    write answered with ATT error >= rejection base   -> REJECTED_BY_LOCK, reject_reason = code - base
    link lost or timed out after the write was issued -> UNKNOWN, then the link is rebuilt
A command is written at most once: the gateway never retries a write by itself (the backend decides).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from bleak import BleakClient
from bleak.exc import BleakError, BleakGATTProtocolError

from lock_gateway.backend_client import BackendClient
from lock_gateway.backoff import Backoff
from lock_gateway.clock import Clock
from lock_gateway.durable_queue import DurableQueue
from lock_gateway.errors import BackendRefusedBatch, BackendUnavailable, LockLinkError
from lock_gateway.link_registry import LinkRegistry
from lock_gateway.lock_link import LockLink
from lock_gateway.protocol import lock_frames
from lock_gateway.protocol.gateway_api import Command, CommandOutcome, CommandResult, decode_frame

log = structlog.get_logger(__name__)

# Command ids remembered after execution, so a re-sent command is never written twice; a few hours
# of traffic for a busy gateway.
REMEMBERED_COMMANDS = 10_000
# First retry after a failed poll; the cap comes from settings.
POLL_BACKOFF_BASE_S = 0.5
NOTHING_SENT = "nothing reached the lock"


@dataclass(frozen=True)
class Outcome:
    outcome: CommandOutcome
    detail: str
    reject_reason: int | None = None


class CommandRunner:
    def __init__(self, backend: BackendClient, links: LinkRegistry, queue: DurableQueue, clock: Clock,
                 long_poll_ms: int, gatt_op_timeout_s: float, lock_wait_s: float,
                 retry_cap_s: float, on_result_queued: Callable[[], None],
                 on_clock_remeasured: Callable[[], None] = lambda: None) -> None:
        self._backend = backend
        self._links = links
        self._queue = queue
        self._clock = clock
        self._long_poll_ms = long_poll_ms
        self._gatt_op_timeout_s = gatt_op_timeout_s
        self._lock_wait_s = lock_wait_s
        self._retry_cap_s = retry_cap_s
        self._on_result_queued = on_result_queued
        self._on_clock_remeasured = on_clock_remeasured
        self._seen: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        backoff = Backoff(POLL_BACKOFF_BASE_S, self._retry_cap_s)
        try:
            while True:
                try:
                    batch = await self._backend.poll_commands(self._long_poll_ms)
                except (BackendUnavailable, BackendRefusedBatch) as exc:
                    delay_s = backoff.next_delay_s()
                    log.warning("command_poll_failed", error=str(exc), retry_in_s=round(delay_s, 2))
                    await asyncio.sleep(delay_s)
                    continue
                backoff.reset()
                server_offset_ms = batch.server_time_ms - self._clock.now_ms()
                for command in batch.commands:
                    self._start(command, server_offset_ms)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start(self, command: Command, server_offset_ms: int) -> None:
        if command.command_id in self._seen:
            return  # already running or done: a write is never repeated by the gateway
        self._seen[command.command_id] = None
        while len(self._seen) > REMEMBERED_COMMANDS:
            self._seen.popitem(last=False)
        task = asyncio.create_task(self._execute_logged(command, server_offset_ms),
                                   name=f"command-{command.command_id.hex[:8]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute_logged(self, command: Command, server_offset_ms: int) -> None:
        try:
            await self._execute(command, server_offset_ms)
        except Exception:  # a crashed command task must be seen; it would otherwise vanish silently
            log.exception("command_task_failed", command_id=str(command.command_id))

    async def _execute(self, command: Command, server_offset_ms: int) -> None:
        bound = log.bind(command_id=str(command.command_id), lock_id=str(command.lock_id))
        link = self._links.link_for(command.lock_id, command.ble_address)
        outcome = await self._deliver(command, link, server_offset_ms)
        result = CommandResult(
            command_id=command.command_id, outcome=outcome.outcome, reject_reason=outcome.reject_reason,
            detail=outcome.detail[:500], reported_at_ms=self._clock.now_ms(),
        )
        await self._queue.put_result(result)
        self._on_result_queued()
        bound.info("command_done", outcome=outcome.outcome.value, reject_reason=outcome.reject_reason,
                   detail=outcome.detail)
        if outcome.outcome is CommandOutcome.UNKNOWN:
            # The link's state is unknown after a lost answer: close it; the supervisor rebuilds it
            # and re-reads INFO (clock offset) at once.
            await link.drop(f"answer to command {command.command_id} lost: {outcome.detail}")
        elif outcome.reject_reason == lock_frames.RejectReason.EXPIRED:
            self._on_clock_remeasured()  # the offset was re-read in _deliver: report it now

    def _expired(self, command: Command, server_offset_ms: int) -> bool:
        return self._clock.now_ms() + server_offset_ms >= command.expires_at_ms

    async def _deliver(self, command: Command, link: LockLink, server_offset_ms: int) -> Outcome:
        if self._expired(command, server_offset_ms):
            return Outcome(CommandOutcome.NOT_DELIVERED, "expired before delivery")
        try:
            async with asyncio.timeout(self._lock_wait_s):
                await link.mutex.acquire()
        except TimeoutError:
            return Outcome(CommandOutcome.NOT_DELIVERED,
                           f"{NOTHING_SENT}: lock busy for {self._lock_wait_s} s")
        try:
            try:
                client = await link.ensure_connected()  # bounded by the link's connect budget
            except LockLinkError as exc:
                return Outcome(CommandOutcome.NOT_DELIVERED, f"{NOTHING_SENT}: {exc}")
            if self._expired(command, server_offset_ms):  # connecting may have taken seconds
                return Outcome(CommandOutcome.NOT_DELIVERED, "expired before delivery")
            # From here on bytes may reach the lock: no outer deadline may turn a lost answer into
            # NOT_DELIVERED, so the write carries its own.
            outcome = await self._write(client, decode_frame(command.frame_b64))
            if outcome.reject_reason == lock_frames.RejectReason.EXPIRED:
                # The lock's clock disagrees with our measurement: read it again while we hold the lock,
                # so the backend can sign the next command for the lock's own time.
                with contextlib.suppress(BleakError, TimeoutError):
                    await link.refresh_info(client)
            return outcome
        finally:
            link.mutex.release()

    async def _write(self, client: BleakClient, frame: bytes) -> Outcome:
        control = client.services.get_characteristic(lock_frames.CONTROL_CHAR_UUID)
        if control is None:
            return Outcome(CommandOutcome.NOT_DELIVERED, f"{NOTHING_SENT}: no CONTROL characteristic")
        if not client.is_connected:
            return Outcome(CommandOutcome.NOT_DELIVERED, f"{NOTHING_SENT}: link dropped before the write")
        try:
            async with asyncio.timeout(self._gatt_op_timeout_s):
                await client.write_gatt_char(control, frame, response=True)
        except BleakGATTProtocolError as exc:
            return _rejection(int(exc.args[0]))
        except TimeoutError:
            return Outcome(CommandOutcome.UNKNOWN,
                           f"no answer to the write within {self._gatt_op_timeout_s} s")
        except BleakError as exc:
            return Outcome(CommandOutcome.UNKNOWN, f"link lost during the write: {exc}")
        return Outcome(CommandOutcome.ACKNOWLEDGED, "lock accepted the command")


def _rejection(att_code: int) -> Outcome:
    if att_code >= lock_frames.ATT_REJECTION_BASE:
        reason = att_code - lock_frames.ATT_REJECTION_BASE
        try:
            name = lock_frames.RejectReason(reason).name
        except ValueError:
            name = f"code {reason}"
        return Outcome(CommandOutcome.REJECTED_BY_LOCK, f"lock refused the command: {name}", reason)
    # A standard ATT error (not the lock's application range): the lock answered and did not act.
    return Outcome(CommandOutcome.REJECTED_BY_LOCK, f"lock answered the write with ATT error {att_code:#04x}")
