"""In-process wake-up of gateway long-polls, so a new command leaves at once.

With several replicas a command may be written on one and polled on another; the long-poll
also re-reads the database every COMMAND_POLL_S, which bounds the delay in that case.
"""

from __future__ import annotations

import asyncio
import uuid


class GatewayWakeups:
    def __init__(self) -> None:
        self._events: dict[uuid.UUID, asyncio.Event] = {}

    def event_for(self, gateway_id: uuid.UUID) -> asyncio.Event:
        return self._events.setdefault(gateway_id, asyncio.Event())

    def wake(self, gateway_id: uuid.UUID) -> None:
        self.event_for(gateway_id).set()
