"""The gateway's outbox on disk: survives reopening, refuses nothing silently."""

from __future__ import annotations

import uuid
from pathlib import Path

from lock_gateway.durable_queue import DurableQueue
from lock_gateway.protocol.gateway_api import CommandOutcome, CommandResult, UploadedEvent, encode_frame

NOW_MS = 1_800_000_000_000


async def test_events_and_results_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    first = DurableQueue(path)
    await first.open()
    await first.put_event(UploadedEvent(frame_b64=encode_frame(b"\x01\x02"), received_at_ms=NOW_MS))
    await first.put_event(UploadedEvent(frame_b64=encode_frame(b"\x03"), received_at_ms=NOW_MS + 1))
    command_id = uuid.uuid4()
    await first.put_result(CommandResult(command_id=command_id, outcome=CommandOutcome.UNKNOWN,
                                         reported_at_ms=NOW_MS))
    await first.close()

    second = DurableQueue(path)
    await second.open()
    events = await second.peek_events(10)
    assert [e.event.received_at_ms for e in events] == [NOW_MS, NOW_MS + 1]
    assert [r.result.command_id for r in await second.peek_results(10)] == [command_id]
    await second.delete_events([events[0].row_id])
    assert await second.count_events() == 1
    await second.close()


async def test_first_result_for_a_command_wins(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "q.sqlite3")
    await queue.open()
    command_id = uuid.uuid4()
    for outcome in (CommandOutcome.ACKNOWLEDGED, CommandOutcome.UNKNOWN):
        await queue.put_result(CommandResult(command_id=command_id, outcome=outcome, reported_at_ms=NOW_MS))
    [only] = await queue.peek_results(10)
    assert only.result.outcome is CommandOutcome.ACKNOWLEDGED
    await queue.close()


async def test_dead_lettered_events_leave_the_queue_but_are_kept(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "q.sqlite3")
    await queue.open()
    await queue.put_event(UploadedEvent(frame_b64=encode_frame(b"\x01"), received_at_ms=NOW_MS))
    batch = await queue.peek_events(10)
    await queue.dead_letter_events(batch, "422: bad batch", NOW_MS)
    assert await queue.count_events() == 0
    assert await queue.count_dead_letters() == 1
    await queue.close()
