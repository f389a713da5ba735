"""The in-process engine time of an event: the denominator of the service-overhead figure.

"Engine time" is what the format engines do for one event once their caches
are warm, with the same calls the service makes for each frame:

- JS (per frame, as `service.js.request.FrameMapper.frame`): `minified_context` of the
  minified file (5 lines), `SmCache.lookup(line, col)` (token and enclosing
  original function), `SmCache.source_context` (5 lines);
- native (per thread, as `service.native`): the module by bisection over the
  load addresses, `caller_addr.lookup_addresses` for the thread, and
  `SymCache.lookup` per frame (inline chain, demangled names), reading each
  answer's function, file and line.

The caches are the ones the service's workers make, built by the very functions
they run (`service.js.lookup.convert_sourcemap`, `service.native.modules.convert_debug_file`),
in a separate process. Each event is timed alone; after one untimed pass over
every event, each event's figure is its best of `passes` timed passes, and the
engine time is the median over events (load only ever adds time; issue 5 asks
for ratios that survive a noisy machine).

"Service code in process" is an info figure between the two: the service's own
request code without HTTP, JSON or module lookup (`JsRequest.from_json` +
`service.js.symbolicate`; `NativeRequest.from_json` + `service.native.symbolicate`)
over the same opened caches, so the overhead can be split into our request
code and everything around it.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench.service_events import ElfModule


@dataclass(frozen=True)
class EngineCaches:
    """The caches the service's workers would build; `metas` as `convert_debug_file` returns them."""

    smcache: Path
    symcaches: tuple[Path, ...]
    metas: tuple[dict[str, Any], ...]


def build_caches(map_path: Path, minified: Path, modules: Sequence[ElfModule], out: Path) -> EngineCaches:
    """Run the workers' conversion functions in one spawned process (their memory never stays here)."""
    from symbolicator.service.js.lookup import convert_sourcemap
    from symbolicator.service.native.modules import convert_debug_file

    out.mkdir(parents=True, exist_ok=True)
    smcache = out / "bundle.smcache"
    paths = tuple(out / f"module{k}.symcache" for k in range(len(modules)))
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        js = pool.submit(convert_sourcemap, map_path.read_bytes(), minified.read_bytes(), str(smcache))
        metas = tuple(pool.submit(convert_debug_file, str(m.path), str(p), None).result()
                      for m, p in zip(modules, paths))
        js.result()
    return EngineCaches(smcache, paths, metas)


def per_event_seconds(events: Sequence[Any], one: Callable[[Any], object], passes: int) -> list[float]:
    """Each event's best time over `passes`, after one untimed warming pass over all of them."""
    for e in events:
        one(e)
    best = [float("inf")] * len(events)
    clock = time.perf_counter
    for _ in range(passes):
        for i, e in enumerate(events):
            t = clock()
            one(e)
            best[i] = min(best[i], clock() - t)
    return best


def js_engine(caches: EngineCaches, minified: Path, map_url: str, events: Sequence[dict[str, Any]],
              passes: int) -> list[float]:
    from symbolicator.service.js import CONTEXT_LINES
    from symbolicator.sourcemaps.context import LineIndex, minified_context
    from symbolicator.sourcemaps.smcache import SmCache

    cache = SmCache.open(caches.smcache, map_url)
    lines = LineIndex(minified.read_text("utf-8", "replace"))
    frames = [[(f["lineno"], f["colno"]) for t in e["body"]["stacktraces"] for f in t["frames"]] for e in events]

    def one(positions: list[tuple[int, int]]) -> None:
        for line, col in positions:
            minified_context(lines, line, col, CONTEXT_LINES)  # type: ignore[arg-type]
            token = cache.lookup(line, col)
            if token is not None:
                cache.source_context(token.source_index, token.original_line, CONTEXT_LINES)

    return per_event_seconds(frames, one, passes)


def native_engine(caches: EngineCaches, modules: Sequence[ElfModule], events: Sequence[dict[str, Any]],
                  passes: int) -> list[float]:
    from symbolicator.native.caller_addr import FrameAddr, lookup_addresses
    from symbolicator.native.symcache import SymCache
    from symbolicator.types import Arch

    symcaches = [SymCache.open(p) for p in caches.symcaches]
    archs = [Arch.parse(m["arch"]) for m in caches.metas]
    vmaddrs = [int(m["image_vmaddr"]) for m in caches.metas]
    starts = [m.image_addr for m in modules]
    threads = [[int(f["instruction_addr"], 16) for f in e["body"]["stacktraces"][0]["frames"]] for e in events]

    def one(addrs: list[int]) -> None:
        located = [bisect_right(starts, a) - 1 for a in addrs]
        lookup = lookup_addresses([FrameAddr(a, None, archs[k]) for a, k in zip(addrs, located)],
                                  Arch.UNKNOWN, None, {})
        for k, addr in zip(located, lookup):
            for hit in symcaches[k].lookup(addr - starts[k] + vmaddrs[k]):
                hit.function, hit.file, hit.line  # noqa: B018 - the service reads them all

    return per_event_seconds(threads, one, passes)


def js_service_code(caches: EngineCaches, minified: Path, map_url: str, events: Sequence[dict[str, Any]],
                    passes: int) -> list[float]:
    from symbolicator.service import js
    from symbolicator.sourcemaps.context import LineIndex
    from symbolicator.sourcemaps.smcache import SmCache

    module = js.Module(events[0]["body"]["stacktraces"][0]["frames"][0]["abs_path"],
                       lines=LineIndex(minified.read_text("utf-8", "replace")),
                       cache=SmCache.open(caches.smcache, map_url), sourcemap=map_url, resolved_with="release")

    async def get_module(abs_path: str) -> js.Module:
        return module

    async def no_source(url: str) -> None:
        return None

    loop = asyncio.new_event_loop()
    try:
        return per_event_seconds([e["body"] for e in events], lambda body: loop.run_until_complete(
            js.symbolicate(js.JsRequest.from_json(body), get_module, no_source)), passes)
    finally:
        loop.close()


def native_service_code(caches: EngineCaches, events: Sequence[dict[str, Any]], passes: int) -> list[float]:
    from symbolicator.errors import ObjectFileStatus
    from symbolicator.native.symcache import SymCache
    from symbolicator.service import native
    from symbolicator.service.native.modules import ResolvedModule
    from symbolicator.types import Arch

    class Kept(ResolvedModule):
        """Shared across events: the request's `close()` must not unmap it."""

        def close(self) -> None:
            pass

    by_debug_id = {}
    body0 = events[0]["body"]
    for m, path, meta in zip(body0["modules"], caches.symcaches, caches.metas):
        by_debug_id[m["debug_id"]] = Kept(ObjectFileStatus.FOUND, SymCache.open(path), int(meta["image_vmaddr"]),
                                          Arch.parse(meta["arch"]), dict(meta["features"]))

    async def resolve(module: native.RawModule) -> ResolvedModule:
        return by_debug_id[str(module.debug_id)]

    loop = asyncio.new_event_loop()
    try:
        return per_event_seconds([e["body"] for e in events], lambda body: loop.run_until_complete(
            native.symbolicate(native.NativeRequest.from_json(body), resolve)), passes)
    finally:
        loop.close()

