"""The gateway's durable outbox: door events and command results wait here until the backend takes them.

stdlib sqlite3 run through asyncio.to_thread rather than aiosqlite: the gateway's volume is tiny
(a few rows a second at most), one connection behind a threading lock is the whole concurrency story,
and it keeps the gateway's dependencies to what bleak and httpx already need. WAL + synchronous=FULL:
a row that was acknowledged to the caller survives a power cut.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lock_gateway.protocol.gateway_api import CommandResult, UploadedEvent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    frame_b64 TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    command_id TEXT PRIMARY KEY,
    body_json TEXT NOT NULL,
    queued_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    body_json TEXT NOT NULL,
    reason TEXT NOT NULL,
    dead_at_ms INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class QueuedEvent:
    row_id: int
    event: UploadedEvent


@dataclass(frozen=True)
class QueuedResult:
    result: CommandResult


class DurableQueue:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        self._conn = conn

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self, sql: str, params: Iterable[object] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            if self._conn is None:
                raise RuntimeError("durable queue is not open")
            with self._conn:  # commits (or rolls back) before the lock is released
                return self._conn.execute(sql, tuple(params)).fetchall()

    def _run_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        with self._lock:
            if self._conn is None:
                raise RuntimeError("durable queue is not open")
            with self._conn:  # one transaction
                self._conn.executemany(sql, rows)

    # -- events

    async def put_event(self, event: UploadedEvent) -> None:
        await asyncio.to_thread(
            self._run, "INSERT INTO events (frame_b64, received_at_ms) VALUES (?, ?)",
            (event.frame_b64, event.received_at_ms),
        )

    async def peek_events(self, limit: int) -> list[QueuedEvent]:
        rows = await asyncio.to_thread(
            self._run, "SELECT id, frame_b64, received_at_ms FROM events ORDER BY id LIMIT ?", (limit,)
        )
        return [
            QueuedEvent(int(str(r[0])), UploadedEvent(frame_b64=str(r[1]), received_at_ms=int(str(r[2]))))
            for r in rows
        ]

    async def delete_events(self, row_ids: Sequence[int]) -> None:
        await asyncio.to_thread(self._run_many, "DELETE FROM events WHERE id = ?", [(i,) for i in row_ids])

    async def count_events(self) -> int:
        rows = await asyncio.to_thread(self._run, "SELECT COUNT(*) FROM events")
        return int(str(rows[0][0]))

    # -- results

    async def put_result(self, result: CommandResult) -> None:
        # First result for a command wins: a command is executed once, so a second row would be a bug.
        await asyncio.to_thread(
            self._run,
            "INSERT OR IGNORE INTO results (command_id, body_json, queued_at_ms) VALUES (?, ?, ?)",
            (str(result.command_id), result.model_dump_json(), result.reported_at_ms),
        )

    async def peek_results(self, limit: int) -> list[QueuedResult]:
        rows = await asyncio.to_thread(
            self._run, "SELECT body_json FROM results ORDER BY queued_at_ms LIMIT ?", (limit,)
        )
        return [QueuedResult(CommandResult.model_validate_json(str(r[0]))) for r in rows]

    async def delete_results(self, command_ids: Sequence[str]) -> None:
        await asyncio.to_thread(
            self._run_many, "DELETE FROM results WHERE command_id = ?", [(c,) for c in command_ids]
        )

    # -- dead letters: batches the backend refused as malformed (422) are kept for a human, not retried

    async def dead_letter_events(self, items: Sequence[QueuedEvent], reason: str, now_ms: int) -> None:
        await asyncio.to_thread(self._move_to_dead, "events", "id", [(q.row_id, q.event.model_dump_json())
                                                                     for q in items], reason, now_ms)

    async def dead_letter_results(self, items: Sequence[QueuedResult], reason: str, now_ms: int) -> None:
        await asyncio.to_thread(self._move_to_dead, "results", "command_id", [
            (str(q.result.command_id), q.result.model_dump_json()) for q in items], reason, now_ms)

    def _move_to_dead(
        self, table: str, key: str, items: Sequence[tuple[object, str]], reason: str, now_ms: int
    ) -> None:
        with self._lock:
            if self._conn is None:
                raise RuntimeError("durable queue is not open")
            with self._conn:
                self._conn.executemany(
                    "INSERT INTO dead_letters (kind, body_json, reason, dead_at_ms) VALUES (?, ?, ?, ?)",
                    [(table, body, reason[:1000], now_ms) for _, body in items],
                )
                # table/key are our own literals above, never input
                self._conn.executemany(
                    f"DELETE FROM {table} WHERE {key} = ?", [(k,) for k, _ in items]  # noqa: S608
                )

    async def count_dead_letters(self) -> int:
        rows = await asyncio.to_thread(self._run, "SELECT COUNT(*) FROM dead_letters")
        return int(str(rows[0][0]))
