"""Issue 5, item 6: the derived cache past its size limit — size stays under the cap, the hot set stays hot.

    python -m bench.cache_scale [--quick]

The service (subprocess, S3 storage on a real SeaweedFS) runs with a small
derived-cache cap (64 MiB; quick 24 MiB). Hundreds of distinct real source maps
(`bench/cache_inputs.py`: esbuild bundles of real npm packages, each converting
to a ~1 MiB sourcemap cache) are uploaded as artifact bundles with
`symbolicator upload`. A separate client process (`bench/plan_client.py`, 4
requests in flight) first touches each map of a hot working set once, then runs
the workload: 80 % of requests for a random hot map, 20 % a cold stream in which
every map is new. The cold maps alone are several times the cap, so eviction
runs all along.

- **Size.** A thread looks every 50 ms at the derived-cache folder and adds up
  the entry files and the SQLite database: what the cap bounds (diskcache's
  "volume"), compared with the cap. Beside it, evicted files the service still
  maps (from `/proc/PID/maps`: deleted, so not in the folder, but their blocks
  stay allocated until unmapped) are added and compared with the cap too; the
  WAL and temp files of conversions in flight are shown for information.
- **Hot hit rate = hot requests answered without converting their map again.**
  A warm request may be answered from the service's in-memory memo of opened
  caches without touching the disk cache, so disk-cache hits undercount; but
  every *conversion* follows exactly one miss of the derived cache
  (`symbolicator_cache_misses{cache="derived"}`), and each cold request is one
  such miss (a new map, requested once). So hot conversions = misses − cold
  requests, over the workload only (the warm-up's compulsory ones excluded),
  and hot hit rate = 1 − hot conversions ÷ hot requests (two concurrent hot
  requests sharing one conversion count once: 4 in flight make that rare).
- **The disk cache's own LRU.** After the workload the service is restarted on
  the same folder and asked for each hot map once: a fresh process has no
  memo, so its derived-cache hits say which hot maps eviction kept on disk.
- Every answer is checked against the map's own mapping at the frame's position.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cache_inputs import MapSet, map_set
from bench.coalescing import js_problem
from bench.inputs import REPO, WORK
from bench.report import MiB, Row, Section, section_main
from bench.s3_rig import Rig, delta, run_plan, scrape, service_on_s3

CAP = {True: 24 * MiB, False: 64 * MiB}
HOT = {True: 8, False: 20}
COLD = {True: 60, False: 280}
HOT_SHARE = 0.8
CONCURRENCY = 4
SCOPE, RELEASE = "bench/cache", "scale"
HOST = "https://app.bench.invalid"  # never fetched: scraping is off
SAMPLE_S = 0.05
SEED = 20261121
HITS, MISSES = 'symbolicator_cache_hits{cache="derived"}', 'symbolicator_cache_misses{cache="derived"}'


@dataclass
class DiskUse:
    """One look at the derived cache's disk use (bytes): entry files, the SQLite database, its WAL and
    shared-memory files, temp files of conversions in flight, and evicted files the service still holds
    open (deleted, so not in the folder, but their blocks are not freed until it lets go)."""

    at: float
    entries: int
    db: int
    wal: int
    temp: int
    held: int

    @property
    def capped(self) -> int:
        """What the cap bounds (diskcache's volume): entry files + the database."""
        return self.entries + self.db

    @property
    def occupied(self) -> int:
        """The cached data's real disk use: the capped part plus evicted files still held open."""
        return self.capped + self.held

    @property
    def folder(self) -> int:
        """Every file in the cache's folder (adds the WAL and in-flight temp files to the capped part)."""
        return self.entries + self.db + self.wal + self.temp


def walk(folder: Path, pid: int | None) -> DiskUse:
    entries = db = wal = temp = 0
    tmp = str(folder / "tmp")
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                size = os.stat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue  # evicted or renamed while we walked
            if dirpath.startswith(tmp):
                temp += size
            elif name == "cache.db":
                db += size
            elif name.startswith("cache.db"):
                wal += size
            else:
                entries += size
    return DiskUse(time.monotonic(), entries, db, wal, temp, held_deleted(folder, pid))


def held_deleted(folder: Path, pid: int | None) -> int:
    """Bytes of files under `folder` that process `pid` still maps although they were deleted."""
    if pid is None:
        return 0
    spans: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/maps") as maps:
            for line in maps:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and parts[5].startswith(str(folder)) and parts[5].rstrip().endswith("(deleted)"):
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    spans[f"{parts[4]}:{parts[5]}"] = spans.get(f"{parts[4]}:{parts[5]}", 0) + hi - lo
    except OSError:
        return 0
    return sum(spans.values())


class DiskSampler(threading.Thread):
    """Looks at `folder` (and what `pid` holds open under it) every `SAMPLE_S` until stopped."""

    def __init__(self, folder: Path, pid: int | None) -> None:
        super().__init__(name="disk-sampler", daemon=True)
        self.folder = folder
        self.pid = pid
        self.samples: list[DiskUse] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append(walk(self.folder, self.pid))
            self._stop_event.wait(SAMPLE_S)

    def stop(self) -> list[DiskUse]:
        self._stop_event.set()
        self.join()
        self.samples.append(walk(self.folder, self.pid))
        return self.samples


@dataclass
class Outcome:
    cap: int
    hot: list[str]
    cold: list[str]
    hot_requests: int
    samples: list[DiskUse]
    misses: float
    requests: int
    correct: int
    latency: dict[str, list[float]]
    final: dict[str, float]
    upload_seconds: float
    on_disk_after: float
    failures: list[str] = field(default_factory=list)

    @property
    def hot_conversions(self) -> float:
        """Every conversion follows one derived-cache miss; each cold request is exactly one of them."""
        return self.misses - len(self.cold)

    @property
    def hot_hit_rate(self) -> float:
        """Hot requests answered without converting their map again."""
        return 1.0 - self.hot_conversions / self.hot_requests if self.hot_requests else 0.0


def request(maps: MapSet, name: str) -> dict[str, Any]:
    pos = maps.positions[name]
    frame = {"abs_path": f"{HOST}/{name}.js", "lineno": pos["line"], "colno": pos["column"]}
    return {"path": f"/symbolicate-js?scope={SCOPE}", "body": {"stacktraces": [{"frames": [frame]}],
                                                              "release": RELEASE}}


def workload(hot: list[str], cold: list[str]) -> list[str]:
    """Every cold map once, in order, among 4× as many picks from the hot set; fixed seed."""
    rng = random.Random(SEED)
    n_hot = round(len(cold) * HOT_SHARE / (1 - HOT_SHARE))
    slots = ["cold"] * len(cold) + ["hot"] * n_hot
    rng.shuffle(slots)
    cold_iter = iter(cold)
    return [next(cold_iter) if s == "cold" else rng.choice(hot) for s in slots]


def groups(n_hot: int, n_cold: int) -> list[int]:
    """Folder (= artifact bundle) sizes: the hot maps in tens, the cold ones in twenties."""
    return [min(10, n_hot - i) for i in range(0, n_hot, 10)] + [min(20, n_cold - i) for i in range(0, n_cold, 20)]


async def upload_all(rig: Rig, maps: MapSet) -> float:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "symbolicator", "upload", "--url", rig.url, "--scope", SCOPE, "--release", RELEASE,
        "--wait", "--no-progress", *(str(maps.folder(g)) for g in range(len(maps.groups))),
        cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"symbolicator upload failed: {out.decode()[-1000:]}{err.decode()[-1000:]}")
    return time.perf_counter() - started


def settings(work: Path, cap: int) -> dict[str, Any]:
    return {"cache": {"dir": str(work / "cache"), "derived_max_bytes": cap, "downloads_max_bytes": 4096 * MiB},
            "scraping": {"enabled": False}, "workers": 2}


async def measure(quick: bool, log: Callable[[str], None]) -> Outcome:
    n_hot, n_cold, cap = HOT[quick], COLD[quick], CAP[quick]
    work = WORK / "cache_scale"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log(f"cache_scale: generating {n_hot + n_cold} source maps")
    maps = await asyncio.to_thread(map_set, groups(n_hot, n_cold))
    names = [n for g in maps.groups for n in g]
    hot, cold = names[:n_hot], names[n_hot:]
    order = workload(hot, cold)
    with service_on_s3(work, settings(work, cap), counting=False) as rig:
        log(f"cache_scale: uploading {len(maps.groups)} artifact bundles")
        upload_seconds = await upload_all(rig, maps)
        assert rig.service.proc is not None
        sampler = DiskSampler(work / "cache" / "derived", rig.service.proc.pid)
        sampler.start()
        try:
            log(f"cache_scale: warming the hot set ({n_hot} maps)")
            warm = await run_plan(work, "warm", rig.url, [request(maps, n) for n in hot], CONCURRENCY)
            before = await asyncio.to_thread(scrape, rig.url)
            log(f"cache_scale: workload of {len(order)} requests ({n_cold} cold)")
            results = await run_plan(work, "workload", rig.url, [request(maps, n) for n in order], CONCURRENCY)
            after = await asyncio.to_thread(scrape, rig.url)
        finally:
            samples = sampler.stop()
        log("cache_scale: restarting the service: which hot maps are still in the disk cache?")
        await asyncio.to_thread(rig.service.stop)
        await asyncio.to_thread(rig.service.start)
        again = await run_plan(work, "again", rig.url, [request(maps, n) for n in hot], 1)
        fresh = await asyncio.to_thread(scrape, rig.url)
    shutil.rmtree(work, ignore_errors=True)
    answered = list(zip(hot + order + hot, warm + results + again))
    problems = [p for name, r in answered if (p := js_problem(r, maps.positions[name]["expected"]))]
    hot_set = set(hot)
    latency: dict[str, list[float]] = {"hot": [], "cold": []}
    for name, r in zip(order, results):
        latency["hot" if name in hot_set else "cold"].append(r["seconds"])
    return Outcome(cap, hot, cold, sum(n in hot_set for n in order), samples, delta(after, before, MISSES),
                   len(answered), len(answered) - len(problems), latency, after, upload_seconds,
                   fresh.get(HITS, 0.0), problems[:3])


def over_time(samples: list[DiskUse], figure: str, points: int = 11) -> str:
    """`figure` of the samples at evenly spaced moments of the run, in MiB."""
    t0, t1 = samples[0].at, samples[-1].at
    picks = []
    for k in range(points):
        t = t0 + (t1 - t0) * k / (points - 1)
        picks.append(min(samples, key=lambda s: abs(s.at - t)))
    return " → ".join(f"{getattr(s, figure) / MiB:.1f}" for s in picks)


def run(quick: bool, log: Callable[[str], None]) -> Section:
    o = asyncio.run(measure(quick, log))
    capped = max(o.samples, key=lambda s: s.capped)
    occupied = max(o.samples, key=lambda s: s.occupied)
    folder = max(s.folder for s in o.samples)
    wal, temp = max(s.wal for s in o.samples), max(s.temp for s in o.samples)
    final_bytes = o.final.get('symbolicator_cache_bytes{cache="derived"}', 0.0)
    final_entries = o.final.get('symbolicator_cache_entries{cache="derived"}', 0.0)
    med = {k: statistics.median(v) * 1000 if v else 0.0 for k, v in o.latency.items()}
    cap = f"{o.cap / MiB:.0f} MiB"
    rows = [
        Row("derived cache on disk, largest seen (entry files + database, walked)", f"{capped.capped / MiB:.2f} MiB",
            "", "", f"≤ cap ({cap})", capped.capped <= o.cap),
        Row("… + evicted files the service still maps (space not freed), largest seen",
            f"{occupied.occupied / MiB:.1f} MiB (held: {occupied.held / MiB:.1f})", "", "", f"≤ cap ({cap})",
            occupied.occupied <= o.cap),
        Row("every file in the folder, largest seen (+ WAL/shm up to "
            f"{wal / MiB:.1f} MiB, temp files of conversions in flight up to {temp / MiB:.1f} MiB)",
            f"{folder / MiB:.1f} MiB", "", "", "info", None),
        Row("derived cache at the end (service's `symbolicator_cache_bytes`)",
            f"{final_bytes / MiB:.1f} MiB, {final_entries:.0f} entries", "", "", "info", None),
        Row("hot-set hit rate (hot requests answered without a new conversion)",
            f"{100 * o.hot_hit_rate:.2f} % ({o.hot_requests - o.hot_conversions:.0f} of {o.hot_requests})",
            "", "", "> 95 %", o.hot_hit_rate > 0.95),
        Row("hot maps still in the disk cache after the run (fresh service process)",
            f"{o.on_disk_after:.0f} of {len(o.hot)}", "", "", "all (LRU keeps the hot set)",
            o.on_disk_after == len(o.hot)),
        Row("answers correct", f"{o.correct}/{o.requests}", "", "", "all", o.correct == o.requests),
        Row("median latency, hot / cold requests", f"{med['hot']:.0f} / {med['cold']:.0f} ms", "", "", "info", None),
    ]
    notes = [
        (f"Derived-cache cap {cap}; {len(o.hot) + len(o.cold)} distinct real source maps (`bench/cache_inputs.py`) "
         f"uploaded as artifact bundles ({o.upload_seconds:.0f} s); hot set of {len(o.hot)} maps touched once, then "
         f"{len(o.cold) + o.hot_requests} requests: {len(o.cold)} cold (each a new map) and {o.hot_requests} for a "
         f"random hot map; {CONCURRENCY} in flight from a separate client process."),
        (f"Conversions during the workload (derived-cache misses in `/metrics`; each conversion follows one): "
         f"{o.misses:.0f}: {len(o.cold)} cold maps and {o.hot_conversions:.0f} hot maps converted again."),
        ("Then the service is restarted on the same cache folder and asked for each hot map once: its derived-cache "
         "hits (a fresh process has no in-memory state) say which hot maps the disk cache kept."),
        (f"Over the run (MiB, {len(o.samples)} looks every {SAMPLE_S * 1000:.0f} ms, 11 evenly spaced shown): "
         f"entries + database {over_time(o.samples, 'capped')}; with evicted files still held "
         f"{over_time(o.samples, 'occupied')}."),
    ]
    if o.failures:
        notes.append("Wrong answers, first ones: " + "; ".join(f"`{f}`" for f in o.failures))
    return Section("Cache at scale (issue 5, item 6, `bench/cache_scale.py`)", notes, rows)


def main(argv: list[str] | None = None) -> int:
    return section_main("python -m bench.cache_scale", __doc__, "24 MiB cap, 8 hot + 60 cold maps", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
