"""The simulator's checkers are trusted because they catch planted bugs (tests/mutants.py).

Each mutant is planted alone, in a process of its own, and the random seed sweep runs from seed 0
until a run fails (no scripted scenario helps): the first failing seed must be the recorded one,
within 300 seeds. A mutant that stops being caught, or is caught at another seed, fails the test;
record anew (`MUTANTS_RECORD=1` prints every mutant's first failing seed in the budget) only
after reading why. The unmutated code must pass every seed the mutants are caught at.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import pytest

from consortium.sim.runner import SimSettings, run_seed
from consortium.sim.whole import NODE_CONSENSUS
from tests.mutants import MUTANTS, Mutant

pytestmark = [pytest.mark.slow]

SEED_BUDGET = 300
SETTINGS = {"model": SimSettings(), "node": SimSettings(app="node", consensus=NODE_CONSENSUS)}
RECORD = bool(os.environ.get("MUTANTS_RECORD"))


def first_failing_seed(settings: SimSettings, limit: int) -> tuple[int | None, str]:
    for seed in range(limit):
        result = run_seed(seed, settings)
        if not result.ok:
            why = (
                result.safety_violations
                or ([result.liveness_failure] if result.liveness_failure else [])
                or result.business_invariant_violations
            )
            return seed, why[0]
    return None, ""


def _hunt(name: str | None, app: str, limit: int) -> tuple[int | None, str]:
    """In a worker process: plant the mutant called `name` (None: none) and sweep."""
    with pytest.MonkeyPatch.context() as mp:
        if name is not None:
            next(m for m in MUTANTS if m.name == name).plant(mp)
        return first_failing_seed(SETTINGS[app], limit)


def _limit(mutant: Mutant) -> int:
    return SEED_BUDGET if RECORD else mutant.first_failing_seed + 1


@pytest.fixture(scope="module")
def hunts() -> dict[str | None, tuple[int | None, str]]:
    """Every mutant's sweep, and the unmutated sweeps, on all cores at once."""
    jobs: list[tuple[str | None, str, int]] = [(m.name, m.app, _limit(m)) for m in MUTANTS]
    for app in SETTINGS:
        recorded = [m.first_failing_seed for m in MUTANTS if m.app == app]
        jobs.append((None, app, max(recorded) + 1))
    jobs.sort(key=lambda job: -job[2] * (10 if job[1] == "node" else 1))  # longest first
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=context) as pool:
        futures = {(name, app): pool.submit(_hunt, name, app, limit) for name, app, limit in jobs}
        return {
            (name if name is not None else f"unmutated {app}"): future.result()
            for (name, app), future in futures.items()
        }


@pytest.mark.parametrize("app", sorted(SETTINGS))
def test_the_unmutated_code_passes_every_recorded_seed(hunts, app: str) -> None:
    seed, why = hunts[f"unmutated {app}"]
    assert seed is None, f"{app} seed {seed} fails without a mutant: {why}"


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_the_seed_sweep_catches_the_mutant(hunts, mutant: Mutant) -> None:
    seed, why = hunts[mutant.name]
    assert seed is not None, f"{mutant.name}: not caught within {_limit(mutant)} seeds"
    print(f"{mutant.name}: first failing seed {seed}: {why}")
    assert seed == mutant.first_failing_seed, f"{mutant.name}: caught first at seed {seed}: {why}"
