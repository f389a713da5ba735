"""The JavaScript figures of issue 3, ours beside `symbolic` (Rust) and `sourcemap` 0.2.1 (pure Python).

Each comparison gives both sides the same work, in a fresh child each:

- *mappings index*: our `parse` (all of `mappings` decoded into sorted arrays)
  against `SourceMapView.from_json_bytes`, which indexes the same tokens;
- *full conversion*: our `build_from_sources` (parse + scope names from the
  minified source + cache bytes) against `SourceMapCache.from_bytes(minified, map)`,
  which also parses the minified source for scope names;
- `sourcemap.loads` (a Token object per mapping) against our `parse`;
- *fetched original*: the bundle's largest original converted the way the service converts an
  original fetched apart from a map without `sourcesContent` (`original_names.build`, once per
  content), beside symbolic's full conversion of the bundle (info: symbolic has no such step);
- *whole frames*: on the same N sampled mapped positions, a lookup, the original
  function name and 5 lines of source context around the original line, from a
  filled cache (ours memory-mapped from the file the full conversion wrote).

The frame tasks also return what they resolved, so the report can show that
both sides answered the same positions the same way (agreement on original
line and column), and the comparison is not one of different work.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench.child import Sample, profile_text, run_task
from bench.inputs import WORK, JsInput, js_input
from bench.report import Pairs, Row, Section, interleave, mib, ms, rate

N_FRAMES = {True: 5_000, False: 50_000}
REPEATS = {True: 3, False: 5}
WARM_UP = 1_000
HERE = "bench.sourcemap_bench"


# --- tasks: run inside bench.child -----------------------------------------------------------

def ours_parse(a: Mapping[str, Any]) -> Callable[[], Any]:
    from symbolicator.sourcemaps import parse

    raw = Path(a["map"]).read_bytes()
    return lambda: parse(raw)


def symbolic_view(a: Mapping[str, Any]) -> Callable[[], Any]:
    from symbolic.sourcemap import SourceMapView

    raw = Path(a["map"]).read_bytes()
    return lambda: SourceMapView.from_json_bytes(raw)


def pypi_sourcemap(a: Mapping[str, Any]) -> Callable[[], Any]:
    import sourcemap

    raw = Path(a["map"]).read_bytes()
    return lambda: sourcemap.loads(raw.decode("utf-8"))


def ours_full(a: Mapping[str, Any]) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    """The conversion the service runs in its pool (bytes in, the default memory budget of the name
    pass: its RSS-watched parse); the bytes are saved afterwards, untimed."""
    import symbolicator.sourcemaps.scopes  # noqa: F401  (imported in setup, as symbolic's library is)
    from symbolicator.config import LimitsSettings
    from symbolicator.sourcemaps import build_from_sources
    from symbolicator.sourcemaps.smcache import write

    budget = LimitsSettings().js_names_max_memory_bytes

    raw, js = Path(a["map"]).read_bytes(), Path(a["minified"]).read_bytes()

    def after(data: Any) -> None:
        if a.get("out"):
            write(a["out"], data)

    return (lambda: build_from_sources(raw, js, names_max_memory=budget)), after


def symbolic_full(a: Mapping[str, Any]) -> Callable[[], Any]:
    from symbolic.sourcemapcache import SourceMapCache

    raw, js = Path(a["map"]).read_bytes(), Path(a["minified"]).read_bytes()
    return lambda: SourceMapCache.from_bytes(js, raw)


def ours_original(a: Mapping[str, Any]) -> Callable[[], Any]:
    """An original fetched apart from its map, converted for names as the worker job does (default budget)."""
    from symbolicator.config import LimitsSettings
    from symbolicator.sourcemaps import original_names

    budget = LimitsSettings().js_names_max_memory_bytes
    raw = Path(a["original"]).read_bytes()
    return lambda: original_names.build(a["original"], raw, budget)


def _largest_original(inp: JsInput) -> Path:
    """The bundle's largest `sourcesContent` entry as a file (written once beside the bundle)."""
    out = WORK / "js" / f"{inp.package}.original.js"
    if not out.exists() or out.stat().st_mtime < inp.sourcemap.stat().st_mtime:
        contents = json.loads(inp.sourcemap.read_bytes()).get("sourcesContent") or [""]
        out.write_text(max((c or "" for c in contents), key=len))
    return out


def ours_frames(a: Mapping[str, Any]) -> Callable[[], Any]:
    """Warm: the cache is open and WARM_UP positions were resolved before the clock starts.

    `context` is the number of context lines (5; 0 for the lookup-only figure).
    """
    from symbolicator.sourcemaps import SmCache

    cache = SmCache.open(a["cache"])
    positions = [tuple(p) for p in json.loads(Path(a["positions"]).read_text())]
    n_context = a.get("context", 5)

    def frames(positions: list[Any] = positions) -> dict[str, Any]:
        answers: list[Any] = []
        for line, col in positions:
            token = cache.lookup(line, col)
            if token is None:
                answers.append(None)
                continue
            if not n_context:
                answers.append((token.original_line, token.original_column, token.function, None))
                continue
            context = cache.source_context(token.source_index, token.original_line, n_context)
            answers.append((token.original_line, token.original_column, token.function,
                            context.context_line if context else None))
        return {"n": len(positions), "answers": answers[: a.get("keep", 0)],
                "hits": sum(x is not None for x in answers)}

    frames(positions[:WARM_UP])
    return frames


def symbolic_frames(a: Mapping[str, Any]) -> Callable[[], Any]:
    from symbolic.sourcemapcache import SourceMapCache

    cache = SourceMapCache.from_bytes(Path(a["minified"]).read_bytes(), Path(a["map"]).read_bytes())
    positions = [tuple(p) for p in json.loads(Path(a["positions"]).read_text())]
    n_context = a.get("context", 5)

    def frames(positions: list[Any] = positions) -> dict[str, Any]:
        answers: list[Any] = []
        for line, col in positions:
            token = cache.lookup(line, col, n_context)
            answers.append(None if token is None else
                           (token.line, token.col, token.function_name, token.context_line))
        return {"n": len(positions), "answers": answers[: a.get("keep", 0)],
                "hits": sum(x is not None for x in answers)}

    frames(positions[:WARM_UP])
    return frames


# --- the section: runs in the parent ----------------------------------------------------------

def _task(name: str, args: Mapping[str, Any]) -> Callable[[], Sample]:
    return lambda: run_task(f"{HERE}:{name}", args)


def _agreement(ours: list[Any], theirs: list[Any]) -> tuple[float, float]:
    """Share of positions where both give the same original (line, column), and the same function."""
    both = [(o, t) for o, t in zip(ours, theirs, strict=True) if o is not None and t is not None]
    if not both:
        return 0.0, 0.0
    pos = sum(o[0] == t[0] and o[1] == t[1] for o, t in both) / len(both)
    fn = sum(o[2] == (None if t[2] == "<anonymous>" else t[2]) for o, t in both) / len(both)
    return pos, fn


def run(quick: bool, log: Callable[[str], None], profile: bool = True) -> Section:
    """Measure every JS figure; several interleaved fresh children per figure."""
    inp: JsInput = js_input(quick, N_FRAMES[quick])
    reps = REPEATS[quick]
    m = {"map": str(inp.sourcemap), "minified": str(inp.minified)}
    cache = WORK / "js" / f"{inp.package}.smcache"
    rows: list[Row] = []
    profiles: dict[str, tuple[str, dict[str, Any]]] = {}

    log("js: mappings index (parse vs SourceMapView.from_json_bytes)")
    index = interleave(_task("ours_parse", m), _task("symbolic_view", m), reps)
    rows.append(_time_row("mappings index, cold", index, "symbolic `SourceMapView.from_json_bytes`", 5.0))
    rows.append(_rss_row("mappings index, peak RSS", index, None))
    if not rows[-2].passed:
        profiles["mappings index"] = ("ours_parse", m)

    log("js: full conversion with scope names (build_from_sources vs SourceMapCache.from_bytes)")
    full = interleave(_task("ours_full", {**m, "out": str(cache)}), _task("symbolic_full", m), reps)
    rows.append(_time_row("full conversion with scope names, cold", full,
                          "symbolic `SourceMapCache.from_bytes`", 3.0))
    if not rows[-1].passed:
        profiles["full conversion"] = ("ours_full", m)
    rows.append(_rss_row("full conversion, peak RSS", full, 1.5))
    floor_ours = run_task(f"{HERE}:ours_full", m, setup_only=True).maxrss
    floor_peer = run_task(f"{HERE}:symbolic_full", m, setup_only=True).maxrss
    rows.append(Row("… of which interpreter + imports + inputs (no work)", mib(floor_ours), mib(floor_peer),
                    f"work alone: {mib(full.median_rss('ours') - floor_ours)} vs "
                    f"{mib(full.median_rss('peer') - floor_peer)}", "info", None))

    log("js: a fetched original converted for names (original_names.build vs SourceMapCache.from_bytes)")
    original = _largest_original(inp)
    fetched = interleave(_task("ours_original", {"original": str(original)}), _task("symbolic_full", m),
                         max(1, reps - 2))
    rows.append(Row(f"fetched original converted for names ({original.stat().st_size / 1e6:.1f} MB original), cold",
                    ms(fetched.best_seconds("ours")),
                    f"{ms(fetched.best_seconds('peer'))} (symbolic `SourceMapCache.from_bytes` of the bundle)",
                    f"{fetched.time_ratio():.2f}×", "info", None))

    log("js: sourcemap 0.2.1 loads vs our parse")
    slow = interleave(_task("ours_parse", m), _task("pypi_sourcemap", m), max(1, reps - 2))
    speedup = 1 / slow.time_ratio()
    rows.append(Row("mappings index vs `sourcemap` 0.2.1 `loads`, cold", ms(slow.best_seconds("ours")),
                    f"{ms(slow.best_seconds('peer'))} (`sourcemap.loads`)", f"{speedup:.1f}× faster",
                    "≥ 5× faster", speedup >= 5))
    rows.append(_rss_row("… peak RSS vs `sourcemap` 0.2.1", slow, None))

    log("js: warm whole-frame resolutions")
    f_args = {**m, "cache": str(cache), "positions": str(inp.positions), "keep": 2_000}
    frame_reps = min(reps, 3)
    frames = interleave(_task("ours_frames", f_args), _task("symbolic_frames", f_args), frame_reps)
    ours_rate = statistics_rate(frames, "ours")
    peer_rate = statistics_rate(frames, "peer")
    ratio = 1 / frames.time_ratio()
    rows.append(Row(f"warm whole frames/s (lookup + function + 5 lines context; {N_FRAMES[quick]:,} positions)",
                    rate(ours_rate), f"{rate(peer_rate)} (symbolic `SourceMapCache.lookup`)", f"{ratio:.2f}×",
                    "≥ 2×", ratio >= 2))
    if ratio < 2:
        profiles["warm frames"] = ("ours_frames", f_args)
    bare = {**f_args, "context": 0, "keep": 0}
    lookups = interleave(_task("ours_frames", bare), _task("symbolic_frames", bare), frame_reps)
    rows.append(Row("warm lookups/s without source context (lookup + function only)",
                    rate(statistics_rate(lookups, "ours")),
                    f"{rate(statistics_rate(lookups, 'peer'))} (`lookup(line, col, 0)`)",
                    f"{1 / lookups.time_ratio():.2f}×", "info", None))
    pos, fn = _agreement(frames.ours[0].extra["answers"], frames.peer[0].extra["answers"])
    rows.append(Row("same answers as symbolic (first 2,000 frames): original line+column / function name "
                    "(`<anonymous>` = none)",
                    f"{pos:.1%} / {fn:.1%}", "", "", "sanity", None))

    notes = [
        f"Input: `{inp.package}` bundled by esbuild `--bundle --minify --sourcemap`: "
        f"map {inp.sourcemap.stat().st_size / 1e6:.1f} MB, minified {inp.minified.stat().st_size / 1e6:.1f} MB; "
        f"{reps} interleaved fresh-child pairs per figure (sourcemap 0.2.1: {max(1, reps - 2)}); "
        "times are the best sample of each side, RSS the median.",
        "Ratios: ours ÷ peer for times and RSS (lower is better), peer ÷ ours for speed-ups and rates.",
    ]
    texts = {}
    if profile:
        for figure, (task, args) in profiles.items():
            log(f"js: profiling our side of the missed target: {figure}")
            texts[f"{figure} (`{HERE}:{task}`)"] = profile_text(f"{HERE}:{task}", args)
    samples = {"mappings index": index.raw(), "full conversion": full.raw(), "fetched original": fetched.raw(),
               "vs sourcemap 0.2.1": slow.raw(),
               "warm frames (whole pass)": frames.raw(), "warm lookups, no context": lookups.raw()}
    return Section("JavaScript source maps (issue 3)", notes, rows, texts, samples)


def statistics_rate(pairs: Pairs, side: str) -> float:
    return int(getattr(pairs, side)[0].extra["n"]) / pairs.best_seconds(side)


def _time_row(figure: str, pairs: Pairs, peer_name: str, limit: float) -> Row:
    r = pairs.time_ratio()
    return Row(figure, ms(pairs.best_seconds("ours")), f"{ms(pairs.best_seconds('peer'))} ({peer_name})",
               f"{r:.2f}×", f"≤ {limit:g}×", r <= limit)


def _rss_row(figure: str, pairs: Pairs, limit: float | None) -> Row:
    r = pairs.rss_ratio()
    return Row(figure, mib(pairs.median_rss("ours")), mib(pairs.median_rss("peer")), f"{r:.2f}×",
               f"≤ {limit:g}×" if limit else "info", (r <= limit) if limit else None)
