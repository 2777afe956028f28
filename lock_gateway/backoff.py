"""Bounded, jittered exponential backoff shared by every retry loop of the gateway."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Full-jitter exponential backoff: the n-th wait is uniform in [floor, min(cap, base * 2**n)].

    Full jitter de-synchronises many gateways hammering a backend that just came back.
    """

    base_s: float
    cap_s: float
    floor_s: float = 0.05
    _attempt: int = field(default=0, init=False)

    def next_delay_s(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2**self._attempt))
        self._attempt = min(self._attempt + 1, 32)
        return random.uniform(self.floor_s, max(self.floor_s, ceiling))  # noqa: S311 - jitter, not crypto

    async def sleep(self) -> None:
        await asyncio.sleep(self.next_delay_s())

    def reset(self) -> None:
        self._attempt = 0
