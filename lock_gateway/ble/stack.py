"""Which bleak backend the gateway drives, chosen by settings and handed to the code as plain kwargs.

The gateway's own code only calls bleak's public API (`BleakScanner`, `BleakClient`,
`establish_connection`) and splats these kwargs into it. In production the kwargs are empty, so bleak
picks its platform backend; the demo and the tests select the bumble backend over an HCI transport.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from lock_gateway.ble.bumble_adapter import BumbleAdapter


@dataclass
class BleStack:
    scanner_kwargs: dict[str, Any] = field(default_factory=dict)
    client_kwargs: dict[str, Any] = field(default_factory=dict)
    adapter: BumbleAdapter | None = None
    # One LE initiator per controller: the gateway issues scan-and-connect for one lock at a time.
    connect_gate: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def description(self) -> str:
        if self.adapter is None:
            return "system (bleak default)"
        return f"bumble over {self.adapter.hci_spec}"

    def is_up(self) -> bool:
        return self.adapter is None or self.adapter.up.is_set()

    async def wait_up(self) -> None:
        if self.adapter is not None:
            await self.adapter.up.wait()

    async def close(self) -> None:
        if self.adapter is not None:
            await self.adapter.close()

    async def run(self) -> None:
        """Keep the adapter up until cancelled, then `close()` it (the system backend manages its own)."""
        if self.adapter is not None:
            await self.adapter.run()
        else:
            await asyncio.Event().wait()


def system_stack() -> BleStack:
    return BleStack()


def bumble_stack(hci_spec: str) -> BleStack:
    from lock_gateway.ble.bumble_backend import BumbleBleakClient
    from lock_gateway.ble.bumble_scanner import BumbleBleakScanner

    adapter = BumbleAdapter(hci_spec)
    return BleStack(
        scanner_kwargs={"backend": BumbleBleakScanner, "bumble_adapter": adapter},
        client_kwargs={"backend": BumbleBleakClient, "bumble_adapter": adapter},
        adapter=adapter,
    )
