"""The native figures of issue 4, ours beside `symbolic` (Rust), `llvm-symbolizer` and `addr2line`.

- *cold symcache build*: our `symcache_build.build(path)` against symbolic's
  `Archive.open(path).get_object(arch).make_symcache()`, each in a fresh child
  that opens the ELF itself; the caches are written out afterwards, untimed, for
  the warm figure.
- *warm whole frames*: one frame is what the service does for it — find the
  module among five images (bisect), caller-address adjustment (frame 0 of each
  40-frame thread unadjusted, the rest −1 on x86_64: ours `caller_addr`,
  symbolic's `find_best_instruction`), the cache lookup with its inline chain,
  and names (ours are demangled in the cache; symbolic 13.9's Python API has no
  demangler and returns the mangled `symbol`, so it does less work here).
- *llvm-symbolizer* (`--obj=F`) and *addr2line* (`-f -i -C -e F`): the same
  adjusted addresses in one batch on stdin, wall time including the process and
  its DWARF loading, the way a batch job would use them.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench.child import Sample, profile_text, run_command, run_task
from bench.inputs import NativeInput, native_input
from bench.report import GiB, Row, Section, interleave, mib, ms, rate

N_FRAMES = {True: 5_000, False: 50_000}
REPEATS = {True: 3, False: 3}
HERE = "bench.native_bench"
THREAD_LEN = 40
WARM_UP = 1_000
IMAGE_BASE = 0x5555_0000_0000
IMAGE_STRIDE = 0x1000_0000
N_IMAGES = 5
OUR_IMAGE = 2


def _images() -> tuple[list[int], list[int]]:
    starts = [IMAGE_BASE + k * IMAGE_STRIDE for k in range(N_IMAGES)]
    return starts, [IMAGE_STRIDE // 2] * N_IMAGES


def _frames_in(a: Mapping[str, Any]) -> list[int]:
    """Absolute instruction addresses: the sampled file addresses placed in image OUR_IMAGE."""
    return [IMAGE_BASE + OUR_IMAGE * IMAGE_STRIDE + x for x in json.loads(Path(a["addresses"]).read_text())]


# --- tasks: run inside bench.child -----------------------------------------------------------

def ours_build(a: Mapping[str, Any]) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    from symbolicator.native.symcache_build import build

    def save(data: bytes) -> None:
        if a.get("out"):
            Path(a["out"]).write_bytes(data)

    return (lambda: build(a["binary"])), save


def symbolic_build(a: Mapping[str, Any]) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    from symbolic.debuginfo import Archive

    def save(cache: Any) -> None:
        if a.get("out"):
            with open(a["out"], "wb") as fh:
                cache.dump_into(fh)

    return (lambda: Archive.open(a["binary"]).get_object(arch=a["arch"]).make_symcache()), save


def ours_frames(a: Mapping[str, Any]) -> Callable[[], Any]:
    """Warm: the symcache is memory-mapped and the first WARM_UP frames were resolved before timing.

    Only those: the timed pass still meets most names for the first time, as a
    service meeting new crashes would, on both sides alike. With `hot`, every
    frame was resolved once before (a long-lived cache object on a repeating
    crash): ours then answers names from its in-process memo.
    """
    from symbolicator.native.caller_addr import Adjustment, lookup_address
    from symbolicator.native.symcache import SymCache
    from symbolicator.types import Arch

    cache = SymCache.open(a["cache"])
    starts, sizes = _images()
    frames_in = _frames_in(a)
    arch = Arch.X86_64

    def frames(frames_in: list[int] = frames_in) -> dict[str, Any]:
        answers: list[Any] = []
        for i, addr in enumerate(frames_in):
            m = bisect_right(starts, addr) - 1
            if m < 0 or addr >= starts[m] + sizes[m]:
                answers.append(None)
                continue
            adjusted = lookup_address(addr, arch, index=i % THREAD_LEN, adjustment=Adjustment.AUTO,
                                      signal=None, registers={})
            hits = cache.lookup(adjusted - starts[m])
            answers.append([(f.function, f.file, f.line) for f in hits])
        return {"n": len(frames_in), "answers": answers[: a.get("keep", 0)]}

    frames(frames_in if a.get("hot") else frames_in[:WARM_UP])
    return frames


def symbolic_frames(a: Mapping[str, Any]) -> Callable[[], Any]:
    from symbolic.symcache import SymCache, find_best_instruction

    cache = SymCache.open(a["cache"])
    starts, sizes = _images()
    frames_in = _frames_in(a)

    def frames(frames_in: list[int] = frames_in) -> dict[str, Any]:
        answers: list[Any] = []
        for i, addr in enumerate(frames_in):
            m = bisect_right(starts, addr) - 1
            if m < 0 or addr >= starts[m] + sizes[m]:
                answers.append(None)
                continue
            adjusted = find_best_instruction(addr, "x86_64", crashing_frame=i % THREAD_LEN == 0)
            hits = cache.lookup(adjusted - starts[m])
            answers.append([(f.symbol, f.full_path, f.line) for f in hits])
        return {"n": len(frames_in), "answers": answers[: a.get("keep", 0)]}

    frames(frames_in if a.get("hot") else frames_in[:WARM_UP])
    return frames


# --- the section: runs in the parent ----------------------------------------------------------

def _task(name: str, args: Mapping[str, Any]) -> Callable[[], Sample]:
    return lambda: run_task(f"{HERE}:{name}", args)


def _agreement(ours: list[Any], theirs: list[Any]) -> tuple[float, float]:
    """Share of frames with the same inline depth, and with the same (file, line) at every depth.

    symbolic reports line 0 where ours reports none (a compiler-generated row).
    """
    both = [(o, t) for o, t in zip(ours, theirs, strict=True) if o and t]
    if not both:
        return 0.0, 0.0
    depth = sum(len(o) == len(t) for o, t in both) / len(both)

    def same(x: list[Any], y: list[Any]) -> bool:
        return x[1] == y[1] and (x[2] or None) == (y[2] or None)

    lines = sum(len(o) == len(t) and all(same(x, y) for x, y in zip(o, t, strict=True)) for o, t in both)
    return depth, lines / len(both)


def _batch_stdin(inp: NativeInput) -> bytes:
    """The addresses the engines look up (after adjustment), one hex address a line."""
    addrs = json.loads(inp.addresses.read_text())
    return "".join(f"{x if i % THREAD_LEN == 0 else x - 1:#x}\n" for i, x in enumerate(addrs)).encode()


def run(quick: bool, log: Callable[[str], None], profile: bool = True) -> Section:
    """Measure every native figure: build the program if needed, then interleaved fresh children."""
    n = N_FRAMES[quick]
    log("native: generating/compiling the C++ program (cached in bench/work/native)")
    inp = native_input(quick, n)
    reps = REPEATS[quick]
    out = inp.binary.parent
    base = {"binary": str(inp.binary), "arch": inp.arch}
    ours_cache, peer_cache = out / "ours.symcache", out / "symbolic.symcache"
    rows: list[Row] = []
    profiles: dict[str, tuple[str, dict[str, Any]]] = {}

    log("native: cold symcache build (ours vs symbolic)")
    build = interleave(_task("ours_build", {**base, "out": str(ours_cache)}),
                       _task("symbolic_build", {**base, "out": str(peer_cache)}), reps)
    r = build.time_ratio()
    rows.append(Row("symcache build, cold", ms(build.best_seconds("ours")),
                    f"{ms(build.best_seconds('peer'))} (symbolic `make_symcache`)", f"{r:.1f}×",
                    "≤ 25× (aim 10×)", r <= 25))
    if r > 10:
        profiles["symcache build"] = ("ours_build", base)
    rss = build.median_rss("ours")
    rows.append(Row("symcache build, peak RSS", mib(rss), mib(build.median_rss("peer")),
                    f"{build.rss_ratio():.2f}×", "≤ 1.5 GiB (ours)", rss <= 1.5 * GiB))
    floor_ours = run_task(f"{HERE}:ours_build", base, setup_only=True).maxrss
    floor_peer = run_task(f"{HERE}:symbolic_build", base, setup_only=True).maxrss
    rows.append(Row("… of which interpreter + imports (no work)", mib(floor_ours), mib(floor_peer),
                    f"work alone: {mib(build.median_rss('ours') - floor_ours)} vs "
                    f"{mib(build.median_rss('peer') - floor_peer)}", "info", None))
    rows.append(Row("symcache size on disk", mib(ours_cache.stat().st_size), mib(peer_cache.stat().st_size),
                    f"{ours_cache.stat().st_size / peer_cache.stat().st_size:.2f}×", "info", None))

    log("native: warm whole-frame lookups (ours vs symbolic)")
    f_args = {**base, "addresses": str(inp.addresses), "keep": 2_000}
    frames = interleave(_task("ours_frames", {**f_args, "cache": str(ours_cache)}),
                        _task("symbolic_frames", {**f_args, "cache": str(peer_cache)}), reps)
    ours_rate = n / frames.best_seconds("ours")
    ratio = 1 / frames.time_ratio()
    rows.append(Row(f"warm whole frames/s ({n:,} return addresses, inlinees, names)", rate(ours_rate),
                    f"{rate(n / frames.best_seconds('peer'))} (symbolic `SymCache.lookup`)", f"{ratio:.2f}×",
                    "≥ 2×", ratio >= 2))
    if ratio < 2:
        profiles["warm frames"] = ("ours_frames", {**f_args, "cache": str(ours_cache)})
    hot = interleave(_task("ours_frames", {**f_args, "cache": str(ours_cache), "hot": True, "keep": 0}),
                     _task("symbolic_frames", {**f_args, "cache": str(peer_cache), "hot": True, "keep": 0}), reps)
    rows.append(Row("hot whole frames/s (every frame resolved once before)", rate(n / hot.best_seconds("ours")),
                    rate(n / hot.best_seconds("peer")), f"{1 / hot.time_ratio():.2f}×", "info", None))
    depth, lines = _agreement(frames.ours[0].extra["answers"], frames.peer[0].extra["answers"])
    rows.append(Row("same answers as symbolic (first 2,000 frames): inline depth / file+line at every depth",
                    f"{depth:.1%} / {lines:.1%}", "", "", "sanity", None))

    stdin = _batch_stdin(inp)
    raw = {"symcache build": build.raw(), "warm frames (whole pass)": frames.raw(), "hot frames": hot.raw()}
    for tool, argv in (("llvm-symbolizer", ["llvm-symbolizer", f"--obj={inp.binary}"]),
                       ("addr2line", ["addr2line", "-f", "-i", "-C", "-e", str(inp.binary)])):
        log(f"native: {tool}, one batch on stdin")
        runs = [run_command(argv, stdin) for _ in range(reps)]
        seconds = min(s.seconds for s in runs)
        peer_rss = sorted(s.maxrss for s in runs)[len(runs) // 2]
        raw[tool] = "[" + ", ".join(f"{s.seconds * 1000:.0f}" for s in runs) + "] ms"
        ratio = ours_rate / (n / seconds)
        rows.append(Row(f"whole frames/s vs `{tool}` (one batch, process included)", rate(ours_rate),
                        f"{rate(n / seconds)} ({ms(seconds)}, {mib(peer_rss)})", f"{ratio:.1f}×",
                        "well above (≥ 2× here)" if tool == "llvm-symbolizer" else "info",
                        ratio >= 2 if tool == "llvm-symbolizer" else None))

    notes = [
        f"Input: a generated C++ program (`bench/inputs.py`: template-heavy std containers over generated "
        f"structs, lambdas, `always_inline` chains), `clang++ -O1 -g`: {inp.binary.stat().st_size / 2**20:.1f} MiB "
        f"file, **{inp.dwarf_bytes / 2**20:.1f} MiB of DWARF**; {reps} interleaved fresh-child pairs per figure; "
        "times are the best sample of each side, RSS the median.",
        "Names: ours are demangled (in the cache); symbolic 13.9's Python API returns mangled symbols.",
    ]
    texts = {}
    if profile:
        for figure, (task, args) in profiles.items():
            log(f"native: profiling our side: {figure}")
            texts[f"{figure} (`{HERE}:{task}`)"] = profile_text(f"{HERE}:{task}", args)
    return Section("Native symcache (issue 4)", notes, rows, texts, raw)
