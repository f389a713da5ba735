"""Figures, ratios and pass/fail lines, and the Markdown they end up in.

Ratios are the point of the bench (issue 5: peers run in the same run so ratios
hold on a noisy machine), so each comparison is measured as interleaved pairs
(peer, ours, ours, peer, …, so neither side always runs first) and timed
figures are the best of each side's samples, as `timeit` advises: load from
other processes only ever adds time, so the minimum is the least disturbed
sample, and the ratio of minima is the one that holds on a noisy machine. Peak
RSS is not disturbed by load; it is the median. Every raw sample is kept in
the report's appendix.
"""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.child import Sample

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class Pairs:
    """Interleaved fresh-process samples of our side and a peer's, same inputs, same run."""

    ours: list[Sample]
    peer: list[Sample]

    def best_seconds(self, side: str) -> float:
        return min(s.seconds for s in getattr(self, side))

    def median_rss(self, side: str) -> float:
        return statistics.median(s.maxrss for s in getattr(self, side))

    def time_ratio(self) -> float:
        """ours ÷ peer, best of each side (lower is better for us)."""
        return self.best_seconds("ours") / self.best_seconds("peer")

    def rss_ratio(self) -> float:
        return self.median_rss("ours") / self.median_rss("peer")

    def raw(self) -> str:
        """Every sample, for the appendix: how noisy the run was."""
        def fmt(side: str) -> str:
            return ", ".join(f"{s.seconds * 1000:.0f}" for s in getattr(self, side))
        return f"ours [{fmt('ours')}] ms; peer [{fmt('peer')}] ms"


def interleave(ours: Callable[[], Sample], peer: Callable[[], Sample], repeats: int) -> Pairs:
    """Alternate the two sides `repeats` times; the first side alternates too, against drift."""
    a: list[Sample] = []
    b: list[Sample] = []
    for i in range(repeats):
        if i % 2:
            b.append(peer())
            a.append(ours())
        else:
            a.append(ours())
            b.append(peer())
    return Pairs(a, b)


@dataclass(frozen=True)
class Row:
    """One line of a results table; `passed` None when the line carries no target."""

    figure: str
    ours: str
    peer: str
    ratio: str
    target: str
    passed: bool | None
    profile_key: str | None = None


@dataclass
class Section:
    """One part of RESULTS.md: a heading, notes on the inputs, rows, and profiles of missed targets.

    `profiles` maps a missed figure to cProfile's top entries (own time) of our
    side of it, run once more in a fresh child, so the lead can route the work.
    """

    title: str
    notes: list[str]
    rows: list[Row]
    profiles: dict[str, str] = field(default_factory=dict)
    samples: dict[str, str] = field(default_factory=dict)


def verdict(passed: bool | None) -> str:
    return "–" if passed is None else ("**PASS**" if passed else "**FAIL**")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def mib(n: float) -> str:
    return f"{n / MiB:,.0f} MiB"


def rate(per_second: float) -> str:
    return f"{per_second:,.0f}/s"


def table(rows: Sequence[Row]) -> list[str]:
    lines = ["| figure | ours | peer | ratio | target | result |", "| --- | ---: | ---: | ---: | --- | --- |"]
    lines += [f"| {r.figure} | {r.ours} | {r.peer} | {r.ratio} | {r.target} | {verdict(r.passed)} |" for r in rows]
    return lines


def machine() -> dict[str, Any]:
    """What the ratios were taken on: they move with the machine and with its load."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "load": os.getloadavg(), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def peer_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("symbolic", "sourcemap", "symbolicator"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def section_main(prog: str, doc: str | None, quick_help: str, run: Callable[[bool, Callable[[str], None]], Section],
                 argv: list[str] | None = None) -> int:
    """`python -m bench.<part> [--quick]` for a part run alone: its section as Markdown on stdout."""
    import argparse
    import sys
    import time

    parser = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    args = parser.parse_args(argv)
    section = run(args.quick, lambda m: print(f"[bench {time.strftime('%H:%M:%S')}] {m}", file=sys.stderr, flush=True))
    print("\n".join([f"## {section.title}", "", *section.notes, "", *table(section.rows)]))
    return 0 if all(r.passed is not False for r in section.rows) else 1
