"""What a lock must never forget across a restart: its last accepted command counter and next event seq.

A real lock keeps these in flash; the simulator keeps them in one JSON file in --state-dir, replaced
atomically (write a temporary file, then `os.replace`) so a kill mid-write leaves the old file intact.
Values are saved *before* the effect leaves the lock (ATT write response, notification), so a crash can
only skip a sequence number (a gap the backend reports), never reuse one.

    {"version": 1, "locks": {"<lock uuid>": {"last_counter": 7, "next_seq": 42}}}
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

STATE_FILE_NAME = "simulator-lock-state.json"
_FORMAT_VERSION = 1


@dataclass
class LockCounters:
    last_counter: int = 0  # no command accepted yet: the backend's first counter is 1
    next_seq: int = 1  # event sequence numbers start at 1


class CounterStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / STATE_FILE_NAME
        self._counters: dict[uuid.UUID, LockCounters] = {}
        self._load()

    def get(self, lock_id: uuid.UUID) -> LockCounters:
        return self._counters.setdefault(lock_id, LockCounters())

    def save(self) -> None:
        data = {
            "version": _FORMAT_VERSION,
            "locks": {
                str(lock_id): {"last_counter": c.last_counter, "next_seq": c.next_seq}
                for lock_id, c in self._counters.items()
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        # Small synchronous write on purpose: the value must be on disk before the lock answers.
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            for key, value in data["locks"].items():
                self._counters[uuid.UUID(key)] = LockCounters(
                    last_counter=int(value["last_counter"]), next_seq=int(value["next_seq"])
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Starting from zero would reuse sequence numbers and accept replayed commands: refuse.
            raise RuntimeError(
                f"lock state file {self.path} is unreadable ({exc}); fix or delete it deliberately"
            ) from exc
        log.info("loaded lock counters for %d lock(s) from %s", len(self._counters), self.path)
