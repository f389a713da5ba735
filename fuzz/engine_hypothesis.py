"""The hypothesis engine: a target's structured strategy, in-process, in seeded batches.

Hypothesis has no time budget of its own, so the inputs are run in batches of at most
1,000 (each its own `@given` run with the next seed) and the clock is checked between
them. The first contract violation stops the run after hypothesis has shrunk it; the
input of the last failing call — hypothesis replays the minimal example last — is saved
under the crash folder. No example database: every run starts fresh, and what a run
found lives in `fuzz/crashes/` and, once fixed, in `tests/test_fuzz_regressions.py`.
"""

from __future__ import annotations

import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis.strategies import SearchStrategy

from fuzz.contract import Violation, check
from fuzz.outcome import Outcome, Progress, save_crash
from fuzz.targets import Target

BATCH = 1000


def run(target: Target, runs: int, max_seconds: float | None, time_limit: float, crash_dir: Path,
        base_seed: int = 0, progress_every: float = 10.0) -> Outcome:
    module = target.load()
    strategy: SearchStrategy[bytes] = module.inputs()
    outcome = Outcome(target.name, "hypothesis")
    progress = Progress("hypothesis", target.name, progress_every)
    failing: list[bytes] = []

    def one(data: bytes) -> None:
        outcome.inputs += 1
        try:
            check(module.run, data, time_limit)
        except Violation:
            failing.append(data)
            raise
        progress.say(f"{outcome.inputs}/{runs} inputs")

    started = time.monotonic()
    remaining, batch = runs, 0
    while remaining > 0 and (max_seconds is None or time.monotonic() - started < max_seconds):
        size = min(BATCH, remaining)
        test: Callable[[], None] = seed(base_seed + batch)(settings(
            max_examples=size, deadline=None, database=None, phases=(Phase.generate, Phase.shrink),
            suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet, report_multiple_bugs=False,
            print_blob=False,
        )(given(strategy)(one)))
        before = outcome.inputs
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                test()
        except Exception as exc:  # noqa: BLE001 (a Violation, or hypothesis's Flaky wrapping one)
            outcome.detail = "".join(traceback.format_exception(exc))
            if failing:
                outcome.crashes.append(save_crash(crash_dir, "hypothesis", failing[-1]))
            else:
                outcome.error = f"{type(exc).__name__}: {exc}"
            break
        ran = outcome.inputs - before
        remaining -= ran
        batch += 1
        if ran < size:  # the strategy's space is exhausted
            break
    outcome.seconds = time.monotonic() - started
    progress.say(f"{outcome.inputs} inputs, {len(outcome.crashes)} crashes", force=True)
    return outcome
