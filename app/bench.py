"""`make bench`: unlock decisions per second against a trivial endpoint of the same backend, same run.

The backend runs as a real uvicorn process on SQLite with the simulator as health authority;
no gateway runs, so what is measured is the decision path: sign-in check, tenancy, authority
lookup over HTTP, policy, and one transaction with the attempt and the signed command. The load
generator shares the machine's cores with the server: figures compare the two endpoints, they
are not a capacity claim. Nothing here asserts on time.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.demo import DemoStack

WARMUP_REQUESTS = 50
PROGRESS_EVERY = 500


@dataclass(frozen=True)
class Measured:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def line(self) -> str:
        return (f"{self.name:<18} {self.requests:>6} requests  {self.per_second:8.1f} req/s  "
                f"p50 {statistics.median(self.latencies_ms):7.2f} ms  p99 {self.percentile(0.99):7.2f} ms  "
                f"errors {self.errors}")


async def _measure(name: str, requests: int, concurrency: int,
                   call: Callable[[], Awaitable[httpx.Response]], expect: int) -> Measured:
    latencies: list[float] = []
    errors = 0
    issued = 0

    async def worker() -> None:
        nonlocal errors, issued
        while issued < requests:
            issued += 1
            started = time.perf_counter()
            try:
                status = (await call()).status_code
            except httpx.HTTPError:
                status = 0  # transport failure: counted, not fatal to the run
            latencies.append((time.perf_counter() - started) * 1000)
            if status != expect:
                errors += 1
            if len(latencies) % PROGRESS_EVERY == 0:
                sys.stdout.write(f"  {name}: {len(latencies)}/{requests}\n")
                sys.stdout.flush()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Measured(name, len(latencies), errors, time.perf_counter() - started, latencies)


async def _run(stack: DemoStack, requests: int, concurrency: int) -> tuple[Measured, Measured]:
    green = stack.manifest["people"]["green"]
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=stack.backend_url, timeout=httpx.Timeout(30.0), limits=limits) as client:
        login = await client.post("/api/v1/auth/login", json={"phone": green["phone"], "password": green["password"]})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        body = {"lock_id": green["lock_id"], "health_code": green["health_code"]}

        def trivial() -> Awaitable[httpx.Response]:
            return client.get("/healthz")

        def unlock() -> Awaitable[httpx.Response]:
            return client.post("/api/v1/tenant/unlocks", params={"wait_s": 0}, json=body, headers=headers)

        await _measure("warm-up", WARMUP_REQUESTS, concurrency, trivial, 200)
        await _measure("warm-up", WARMUP_REQUESTS, concurrency, unlock, 201)
        trivial_run = await _measure("trivial /healthz", requests, concurrency, trivial, 200)
        unlock_run = await _measure("unlock decision", requests, concurrency, unlock, 201)
    return trivial_run, unlock_run


def run_bench(workdir: Path, requests: int, concurrency: int) -> int:
    sys.stdout.write(f"Starting backend and simulator (SQLite in {workdir})...\n")
    sys.stdout.flush()
    with DemoStack(workdir, with_gateway=False) as stack:
        sys.stdout.write(f"Measuring {requests} requests per endpoint, {concurrency} concurrent clients\n")
        trivial_run, unlock_run = asyncio.run(_run(stack, requests, concurrency))
    sys.stdout.write(f"{trivial_run.line()}\n{unlock_run.line()}\n")
    sys.stdout.write(f"ratio: {unlock_run.per_second / trivial_run.per_second:.2f}\n")
    return 0 if trivial_run.errors == 0 and unlock_run.errors == 0 else 1
