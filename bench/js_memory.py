"""Peak memory of the whole service (service + conversion workers) converting a 64 MiB minified file.

Issue 15 item 2: a minified file scraped from any website must convert with the service's
whole process tree ≤ 1.5 GiB. This runs the real service (`symbolicator serve`, default
settings but loopback fetches allowed) against a loopback website serving `big_bundle.py`'s
real esbuild bundle and its map, sends one `/symbolicate-js` request with frames at real
mappings, and samples every process of the service's tree every 50 ms:

- *peak summed RSS*: the highest sum of VmRSS over the tree at one sample;
- *sum of peak HWM*: each process's own VmHWM, summed (an upper bound: peaks of different
  processes need not coincide);
- the summed RSS 5 s after the answer (what the service keeps).

The real map (no `sourcesContent`) is ~86 MiB, over the 64 MiB `fetch.max_bytes`, so the
run raises that cap to 128 MiB: the map side then costs more than the default settings allow,
which makes the figure conservative. `--names-budget` overrides `limits.js_names_max_memory_bytes`
(MiB); the report says whether names were kept or skipped (`data.function_names`).

    python -m bench.js_memory [--names-budget MIB] [--workers N] [--out bench/results/js_memory.md]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

import requests

from bench.big_bundle import MiB, build
from chaos.inject import memory_kib
from chaos.rig import descendants
from symbolicator.sourcemaps.sourcemap import parse
from tests.support.service import ServiceProcess
from tests.support.websites import Website

LIMIT_MIB = 1536
SAMPLE_S = 0.05


def sample_positions(map_path: Path, n: int = 20) -> tuple[list[tuple[int, int]], int]:
    """1-based (line, column) of `n` mappings spread over the file, and the number of mappings (parsed
    before the service starts, so this process's memory is not in the figures)."""
    keys = parse(map_path.read_bytes()).keys
    picks = [int(keys[i * (len(keys) - 1) // (n - 1)]) for i in range(n)]
    return [((k >> 32) + 1, (k & 0xFFFFFFFF) + 1) for k in picks], len(keys)


class TreeSampler:
    """Summed VmRSS of a process and its descendants every `SAMPLE_S`; each pid's VmHWM."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_sum_kib = 0
        self.hwm_kib: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            total = 0
            for p in [self.pid, *descendants(self.pid)]:
                rss, hwm = memory_kib(p)
                total += rss
                if hwm:
                    self.hwm_kib[p] = max(self.hwm_kib.get(p, 0), hwm)
            self.peak_sum_kib = max(self.peak_sum_kib, total)


def run_website(minified: Path, smap: Path, ready: threading.Event, stop: threading.Event,
                out: dict[str, str]) -> None:
    async def main() -> None:
        async with Website() as site:
            site.add_body("/static/big.min.js", minified.read_bytes(), content_type="application/javascript")
            site.add_body("/static/big.min.js.map", smap.read_bytes(), content_type="application/json")
            out["url"] = site.url("/static/big.min.js")
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.1)

    asyncio.run(main())


def measure(names_budget_mib: int | None, workers: int | None) -> dict[str, Any]:
    bundle = build()
    positions, mappings = sample_positions(bundle.sourcemap)
    ready, stop, site = threading.Event(), threading.Event(), {}
    web = threading.Thread(target=run_website, args=(bundle.minified, bundle.sourcemap, ready, stop, site), daemon=True)
    web.start()
    ready.wait(120)
    limits: dict[str, Any] = {"job_timeout_s": 1800.0}
    if names_budget_mib is not None:
        limits["js_names_max_memory_bytes"] = names_budget_mib * MiB
    settings: dict[str, Any] = {"fetch": {"allow_private_addresses": True, "max_bytes": 128 * MiB,
                                          "read_timeout_s": 120.0, "total_timeout_s": 600.0},
                                "limits": limits}
    with tempfile.TemporaryDirectory(prefix="js-memory-") as tmp:
        root = Path(tmp)
        settings["storage"] = {"backend": "local", "local_dir": str(root / "uploads")}
        settings["cache"] = {"dir": str(root / "cache")}
        if workers is not None:
            settings["workers"] = workers
        body = {"stacktraces": [{"frames": [{"abs_path": site["url"], "lineno": line, "colno": col}
                                            for line, col in positions]}]}
        with ServiceProcess(root, settings) as svc:
            assert svc.proc is not None
            time.sleep(3)  # the pool warms up: the idle tree is part of the figure
            with TreeSampler(svc.proc.pid) as sampler:
                started = time.monotonic()
                r = requests.post(f"{svc.url}/symbolicate-js", json=body, timeout=1800)
                elapsed = time.monotonic() - started
            answer = r.json()
            time.sleep(5)
            settled = sum(memory_kib(p)[0] for p in [svc.proc.pid, *descendants(svc.proc.pid)])
    stop.set()
    frames = answer.get("stacktraces", [{}])[0].get("frames", [])
    return {
        "minified_mib": round(bundle.minified.stat().st_size / MiB, 1),
        "map_mib": round(bundle.sourcemap.stat().st_size / MiB, 1),
        "mappings": mappings,
        "names_budget_mib": names_budget_mib if names_budget_mib is not None else "default",
        "status": answer.get("status"),
        "seconds": round(elapsed, 1),
        "frames": len(frames),
        "symbolicated": sum(1 for f in frames if f.get("data", {}).get("symbolicated")),
        "with_function": sum(1 for f in frames if f.get("function")),
        "names_skipped": sum(1 for f in frames if f.get("data", {}).get("function_names") == "skipped"),
        "errors": sorted({e["type"] for e in answer.get("errors", [])}),
        "peak_summed_rss_mib": round(sampler.peak_sum_kib / 1024),
        "sum_of_peak_hwm_mib": round(sum(sampler.hwm_kib.values()) / 1024),
        "summed_rss_5s_after_mib": round(settled / 1024),
        "peak_hwm_mib_per_process": [round(v / 1024) for v in sampler.hwm_kib.values()],
        "limit_mib": LIMIT_MIB,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--names-budget", type=int, default=None, help="limits.js_names_max_memory_bytes in MiB")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="append the result as a JSON line")
    args = ap.parse_args()
    result = measure(args.names_budget, args.workers)
    line = json.dumps(result)
    print(line)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
