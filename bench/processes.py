"""Warm events/s with 1 and 2 service processes (issue 11, item 6): what `serve --processes` buys.

Run by `service_load.py` after its own service has stopped, on the same uploads
and the same (warm) cache folder, with the same event files. For each process
count a fresh `symbolicator serve --processes N` starts, answers a warm-up
window (each process opens its caches into its own memory), then JS and native
events run at concurrency `CONCURRENCY` from `load_client.py` (one connection per
in-flight request, so the kernel spreads connections over the processes). The
counts alternate (1, 2, 2, 1, …) and each count's best window counts, as the
other service figures do; the ratio is 2 processes ÷ 1.

The load client shares the cores with the service: on a 2-core machine two
service processes and the client compete, so the ratio says what a second
process adds there, not what it would add on idle cores. The machine may also
be shared with other work: the report says how loaded it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report import Row
from bench.service_harness import metric, run_load
from tests.support.service import ServiceProcess

COUNTS = (1, 2)
CONCURRENCY = 16
ROUNDS = {True: 1, False: 2}


def process_rows(run_dir: Path, settings: dict[str, Any], event_files: dict[str, Path], window: float,
                 quick: bool, log: Callable[[str], None]) -> tuple[list[Row], dict[str, Any]]:
    """Rows of warm events/s per process count and kind, and the raw runs."""
    best: dict[tuple[str, int], dict[str, Any]] = {}
    runs: dict[str, Any] = {}
    conversions = 0.0
    order = [n for r in range(ROUNDS[quick]) for n in (COUNTS if r % 2 == 0 else COUNTS[::-1])]
    for i, count in enumerate(order):
        svc = ServiceProcess(run_dir, settings, args=("--processes", str(count)))
        try:
            svc.start(timeout=120)
            log(f"service: {count} process(es), warm-up window, then JS and native events at concurrency "
                f"{CONCURRENCY} for {window:.0f} s each")
            run_load(run_dir, svc.url, list(event_files.values()), CONCURRENCY, max(2.0, window / 2))
            for kind, events in event_files.items():
                result = run_load(run_dir, svc.url, [events], CONCURRENCY, window)
                runs[f"{kind}, {count} process(es), run {i + 1}"] = result
                if (kind, count) not in best or result["events_per_s"] > best[kind, count]["events_per_s"]:
                    best[kind, count] = result
            conversions += metric(svc.url, "symbolicator_native_conversions_total") + \
                metric(svc.url, "symbolicator_js_conversions_total")
        finally:
            svc.stop()
    rows = []
    for kind in event_files:
        one, two = best[kind, 1], best[kind, 2]
        errors = {**one["errors"], **two["errors"]}
        rows.append(Row(f"{kind}: warm events/s at concurrency {CONCURRENCY}, `serve --processes 2` (ours) vs "
                        "`--processes 1` (peer)",
                        f"{two['events_per_s']:,.0f} events/s; p50 {two['p50_s'] * 1000:,.1f} ms",
                        f"{one['events_per_s']:,.0f} events/s; p50 {one['p50_s'] * 1000:,.1f} ms",
                        f"{two['events_per_s'] / one['events_per_s']:.2f}×", "info (reported)",
                        None if not errors else False))
    rows.append(Row("conversions during the process-count runs (warm cache: expected 0)", f"{conversions:.0f}", "",
                    "", "sanity", conversions == 0))
    return rows, runs


def note(quick: bool) -> str:
    return (f"Processes: the same uploads and warm cache folder served by `symbolicator serve --processes N`, "
            f"N = 1 and 2 alternating ({ROUNDS[quick]} round{'s' if ROUNDS[quick] > 1 else ''}), a warm-up window "
            f"each time, then JS and native events at concurrency {CONCURRENCY}; the best window per count. "
            f"{os.cpu_count()} cores shared by the service processes, their workers and the load client.")
