"""End to end: uvicorn, the simulator and the gateway as real processes on loopback.

The seed scenarios (S1-S7) are played exactly as `healthlock demo --once` plays them, then the
field failures F1/F2 are driven through the simulator's fault knobs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.db import make_engine
from app.demo import DemoStack
from models import LockCommand
from simulator.scenario_player import Player

pytestmark = pytest.mark.e2e

CLOCK_JUMP_MS = 10 * 60 * 1000  # beyond command TTL plus the lock's skew tolerance
CLOCK_REMEASURE_S = 3.0  # the gateway reconnects, re-reads the lock's clock and heartbeats within ~2 s
PARALLEL_UNLOCKS = 6  # concurrent requests for one lock: enough to interleave counters, bounded
RESULT_WAIT_S = 10.0  # the gateway's result queue retries within seconds
ATTEMPT_SETTLE_S = 40.0  # command TTL (30 s) plus expiry grace: the longest an attempt can stay open


@pytest.fixture
def stack(database_url: str, tmp_path: Path) -> Iterator[DemoStack]:
    url = None if database_url.startswith("sqlite") else database_url
    with DemoStack(tmp_path / "demo", database_url=url) as running:
        yield running


def _settle(player: Player, who: str, attempt_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {player.login(who)}"}
    deadline = time.monotonic() + ATTEMPT_SETTLE_S
    while True:
        body: dict[str, Any] = player.api.get(f"/api/v1/tenant/unlocks/{attempt_id}", headers=headers).json()
        if body["final"] or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def test_seed_scenarios_and_field_failures_on_real_processes(stack: DemoStack) -> None:
    player = Player(stack.manifest)
    outcomes = player.play()
    failed = [o for o in outcomes if not o.ok]
    assert not failed, "\n".join(f"{o.scenario}: {o.decision} | {o.lock} | {o.sms} {o.problem}" for o in failed)
    assert [o.scenario.split()[0] for o in outcomes] == ["S1", "S2", "S3", "S4", "S5", "S6", "S7"]

    # Two tenants of one unit at once: counters are signed in one order, must reach the lock in that order.
    isolated, no_code = stack.manifest["people"]["isolated"], stack.manifest["people"]["no_code"]
    rejections_before = len(player.lock_state(isolated["lock_id"])["rejections"])
    with ThreadPoolExecutor(PARALLEL_UNLOCKS) as pool:
        answers = list(pool.map(
            lambda _i: Player(stack.manifest).unlock("isolated", isolated["lock_id"], isolated["health_code"]).json(),
            range(PARALLEL_UNLOCKS),
        ))
    states = [_settle(player, "isolated", a["attempt_id"])["state"] for a in answers]
    assert states == ["confirmed"] * PARALLEL_UNLOCKS, states
    assert len(player.lock_state(no_code["lock_id"])["rejections"]) == rejections_before

    # F2: a jammed lock acknowledges the write but its record says the bolt did not move.
    green = stack.manifest["people"]["green"]
    player.sim.post(f"/locks/{green['lock_id']}/jam", json={"jammed": True}).raise_for_status()
    jammed = player.unlock("green", green["lock_id"], green["health_code"]).json()
    assert _settle(player, "green", jammed["attempt_id"])["state"] == "jammed"
    player.sim.post(f"/locks/{green['lock_id']}/jam", json={"jammed": False}).raise_for_status()

    # F1: nothing reaches a lock that is out of range: failed_not_delivered, never "unknown" or success.
    yellow = stack.manifest["people"]["yellow"]
    before = player.lock_state(yellow["lock_id"])
    player.sim.post(f"/locks/{yellow['lock_id']}/vanish").raise_for_status()
    try:
        lost = player.unlock("yellow", yellow["lock_id"], yellow["health_code"]).json()
        settled = _settle(player, "yellow", lost["attempt_id"])
        assert settled["state"] in ("failed_not_delivered", "expired"), settled
        assert settled["state"] != "confirmed"
    finally:
        player.sim.post(f"/locks/{yellow['lock_id']}/appear").raise_for_status()
    assert player.lock_state(yellow["lock_id"])["actuations"] == before["actuations"]

    # F1: the lock acts but the link dies before its answer: the gateway reports "unknown" (not
    # "not delivered"), and the lock's own record, relayed once the link is back, confirms it.
    red = stack.manifest["people"]["red"]
    player.sim.post(f"/locks/{red['lock_id']}/drop-link-after-write").raise_for_status()
    answer_lost = player.unlock("red", red["lock_id"], red["health_code"]).json()
    assert _settle(player, "red", answer_lost["attempt_id"])["state"] == "confirmed"
    assert _gateway_outcome(stack, answer_lost["attempt_id"]) == "unknown"

    # A lock clock that jumped ahead refuses a command as expired; the gateway re-measures the clock at
    # once and the next command is signed for the lock's new time.
    player.sim.post(f"/locks/{yellow['lock_id']}/clock", json={"offset_ms": CLOCK_JUMP_MS}).raise_for_status()
    refused = player.unlock("yellow", yellow["lock_id"], yellow["health_code"]).json()
    assert _settle(player, "yellow", refused["attempt_id"])["state"] == "rejected_by_lock"
    time.sleep(CLOCK_REMEASURE_S)
    retried = player.unlock("yellow", yellow["lock_id"], yellow["health_code"]).json()
    assert _settle(player, "yellow", retried["attempt_id"])["state"] == "confirmed"

    # Lock health reached the landlord: battery and presence came through the gateway's heartbeats.
    landlord = stack.manifest["landlord"]
    token = player.api.post("/api/v1/auth/login", json=landlord).json()["token"]
    locks = player.api.get("/api/v1/landlord/locks", headers={"Authorization": f"Bearer {token}"}).json()
    assert len(locks) == 4
    assert all(lock["battery_pct"] is not None for lock in locks)


def _gateway_outcome(stack: DemoStack, attempt_id: str) -> str | None:
    """What the gateway reported for the attempt's command (waits for the result to land)."""

    async def read() -> str | None:
        engine = make_engine(stack.db_url)
        try:
            async with engine.connect() as connection:
                return await connection.scalar(
                    select(LockCommand.outcome).where(LockCommand.attempt_id == uuid.UUID(attempt_id))
                )
        finally:
            await engine.dispose()

    deadline = time.monotonic() + RESULT_WAIT_S
    while (outcome := asyncio.run(read())) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    return outcome


def test_backend_refuses_gateway_without_credentials(stack: DemoStack) -> None:
    r = httpx.get(f"{stack.backend_url}/gateway/v1/commands", params={"wait_ms": 0}, timeout=5)
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
