from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.simulator.harness import SeededLock, SimulatorProcess, write_world

# Lock 0 runs two minutes ahead, to check INFO reports the lock's own clock.
LOCK_CLOCK_OFFSET_MS = 120_000


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sim")


@pytest.fixture(scope="module")
def world(sim_dir: Path) -> tuple[Path, list[SeededLock]]:
    return write_world(sim_dir, n_locks=8, clock_offsets_ms={0: LOCK_CLOCK_OFFSET_MS})


@pytest.fixture(scope="module")
def simulator(world: tuple[Path, list[SeededLock]], sim_dir: Path) -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(world[0], sim_dir / "state", sim_dir / "simulator.log").start()
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def locks(world: tuple[Path, list[SeededLock]]) -> list[SeededLock]:
    return world[1]
