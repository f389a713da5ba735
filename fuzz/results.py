"""`fuzz/RESULTS.md`: the last figures of every target and engine, with when, where and how.

Rows live in `fuzz/results.json` (one per target × engine, replaced when that pair runs
again), so running one target refreshes its rows and keeps the others; the Markdown is
regenerated from all rows each time.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.report import machine
from fuzz.outcome import Outcome
from fuzz.targets import TARGETS

HERE = Path(__file__).resolve().parent
ROWS = HERE / "results.json"
MARKDOWN = HERE / "RESULTS.md"
ENGINES = ("hypothesis", "atheris")


@dataclass
class Row:
    target: str
    engine: str
    inputs: int
    seconds: float
    crashes: int
    date: str
    machine: str
    command: str
    seed: int
    time_limit: float
    note: str = ""


def describe_machine() -> tuple[str, str]:
    """(machine line, date) as the benchmarks print them; load shows how shared the cores were."""
    m = machine()
    load = ", ".join(f"{x:.1f}" for x in m["load"])
    return f"{m['cpu']}, {m['cores']} cores, load {load}, Python {platform.python_version()}", m["date"]


def record(outcomes: list[Outcome], command: str, seed: int, time_limit: float) -> None:
    rows = {(r["target"], r["engine"]): r for r in json.loads(ROWS.read_text())} if ROWS.exists() else {}
    where, date = describe_machine()
    for o in outcomes:
        note = o.error.splitlines()[0] if o.error else ", ".join(p.name for p in o.crashes)
        rows[(o.target, o.engine)] = asdict(Row(o.target, o.engine, o.inputs, round(o.seconds, 1), len(o.crashes),
                                                date, where, command, seed, time_limit, note))
    order = {name: i for i, name in enumerate(TARGETS)}
    ordered = sorted(rows.values(), key=lambda r: (order.get(r["target"], 99), ENGINES.index(r["engine"])))
    ROWS.write_text(json.dumps(ordered, indent=1) + "\n")
    MARKDOWN.write_text(render(ordered))


def render(rows: list[dict[str, object]]) -> str:
    lines = [
        "# Fuzzing results",
        "",
        "Written by `python -m fuzz` (see `fuzz/README.md`); one row per target and engine, from its last run.",
        "A crash is an input that broke the contract: an exception other than the project's typed errors, a run",
        "past the per-input time limit, or a wrong answer from a differential check. Every crash found so far is",
        "fixed and kept as a regression test in `tests/test_fuzz_regressions.py`.",
        "",
        "| target | engine | inputs | seconds | inputs/s | crashes | date | seed | note |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for r in rows:
        seconds = float(r["seconds"])  # type: ignore[arg-type]
        rate = f"{int(r['inputs']) / seconds:.0f}" if seconds else "–"  # type: ignore[call-overload]
        lines.append(f"| {r['target']} | {r['engine']} | {r['inputs']} | {seconds:.0f} | {rate} | {r['crashes']} "
                     f"| {r['date']} | {r['seed']} | {r['note']} |")
    lines += ["", "## Commands and machines", ""]
    for command in dict.fromkeys(str(r["command"]) for r in rows):
        used = [r for r in rows if r["command"] == command]
        pairs = ", ".join(f"{r['target']}/{r['engine']}" for r in used)
        lines += [f"- `{command}` ({pairs}; per-input limit {used[0]['time_limit']} s)",
                  f"  on {used[0]['machine']}"]
    return "\n".join(lines) + "\n"
