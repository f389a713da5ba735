"""The fuzz harnesses in CI's time budget: every target, both engines, a few hundred inputs each.

The full campaigns (≥ 10,000 inputs per target and engine) are `python -m fuzz`, outside CI;
this run fails when a harness crashes, so a regression that any fuzzer input reaches shows up
here first, with the saved input named in the failure. The seeds are fixed, so a failure
replays. atheris runs uninstrumented here: instrumenting costs seconds of start-up per target
(see `fuzz/atheris_child.py`), which a few hundred inputs cannot repay; campaigns instrument.
The canary target proves each engine notices a crash (and `check` a hang): a smoke run that
could not fail would prove nothing.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from fuzz import canary, engine_atheris, engine_hypothesis
from fuzz.contract import Violation, check
from fuzz.outcome import Outcome
from fuzz.targets import TARGETS, Target
from symbolicator.errors import MalformedObject

HYPOTHESIS_RUNS = 100
ATHERIS_RUNS = 200
TIME_LIMIT = 5.0
SEED = 20261121


def _failure(outcome: Outcome) -> str:
    return f"{outcome.target}/{outcome.engine}: {outcome.error or ''} crash inputs {outcome.crashes}\n{outcome.detail}"


@pytest.mark.parametrize("name", list(TARGETS))
def test_hypothesis_smoke(name: str, tmp_path: Path) -> None:
    outcome = engine_hypothesis.run(TARGETS[name], HYPOTHESIS_RUNS, None, TIME_LIMIT, tmp_path, SEED)
    assert outcome.ok, _failure(outcome)
    assert outcome.inputs >= HYPOTHESIS_RUNS


@pytest.mark.parametrize("name", list(TARGETS))
def test_atheris_smoke(name: str, tmp_path: Path) -> None:
    outcome = engine_atheris.run(TARGETS[name], ATHERIS_RUNS, None, TIME_LIMIT, tmp_path, SEED, instrument=False)
    assert outcome.ok, _failure(outcome)
    assert outcome.inputs >= ATHERIS_RUNS


@pytest.fixture
def canary_target(tmp_path: Path) -> Target:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for name, data in canary.seeds().items():
        (seeds / name).write_bytes(data)
    return Target("canary", "fuzz.canary", "crashes on purpose", ("fuzz.canary",), corpus_dir=seeds)


@pytest.mark.parametrize("engine", [engine_hypothesis, engine_atheris])
def test_engines_catch_and_save_a_crash(engine: ModuleType, canary_target: Target, tmp_path: Path) -> None:
    crashes = tmp_path / "crashes"
    outcome = engine.run(canary_target, 500, None, TIME_LIMIT, crashes, SEED)
    assert not outcome.ok and len(outcome.crashes) == 1
    saved = outcome.crashes[0]
    assert saved.parent == crashes and b"crash" in saved.read_bytes()
    assert "IndexError" in outcome.detail and "the canary crashed" in outcome.detail


def test_contract() -> None:
    check(canary.run, b"typed")
    check(canary.run, b"fine")
    with pytest.raises(Violation, match="exception: IndexError") as crashed:
        check(canary.run, b"crash")
    assert isinstance(crashed.value.__cause__, IndexError)
    with pytest.raises(Violation, match="hang") as hung:
        check(canary.run, b"hang", seconds=0.2)
    assert hung.value.kind == "hang"
    with pytest.raises(MalformedObject):
        canary.run(b"typed")
