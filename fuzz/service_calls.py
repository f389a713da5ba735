"""What the service does with a parsed request, minus storage: real engines, fixture-backed lookups.

A request model that accepts a body hands it to `native.symbolicate` / `js.symbolicate`,
and the handler serialises the answer with orjson. Both steps can still fail on values the
model let through (an address near 2^64, a register the heuristic trusts, a line number
past the file), so the `requests` and `apple_crash` targets run them too. The lookups are
the same callbacks the service passes, answered from real fixtures instead of storage:

- native: module `i` resolves to a symcache built from a real ELF (every third module), or
  to `missing` / `malformed` statuses, so found, failed and unknown frames all occur;
- JS: an `abs_path` ending in `app.js` is the esbuild fixture with its converted map,
  `greet.js` a minified file whose map failed to convert, anything else a missing file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from symbolicator.errors import ObjectFileStatus
from symbolicator.native.objects import identify
from symbolicator.native.symcache import SymCache
from symbolicator.native.symcache_build import build
from symbolicator.service import js, native
from symbolicator.service.native.modules import ResolvedModule
from symbolicator.sourcemaps.context import LineIndex
from symbolicator.sourcemaps.smcache import SmCache, build_from_sources

_FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
ELF = _FIXTURES / "native" / "out" / "elf" / "c_gcc_O2_dwarf4"
JS_APP = _FIXTURES / "js" / "out" / "esbuild" / "app.js"
JS_BROKEN = _FIXTURES / "js" / "out" / "parts" / "greet.js"


@cache
def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()


@cache
def _symcache() -> tuple[bytes, int]:
    return build(ELF), identify(ELF)[0].image_vmaddr


async def resolve_native(module: native.RawModule) -> ResolvedModule:
    """The `resolve` callback of `native.symbolicate`: a real symcache, or a failure status."""
    kind = module.index % 3
    if kind == 1:
        return ResolvedModule(ObjectFileStatus.MISSING)
    if kind == 2:
        return ResolvedModule(ObjectFileStatus.MALFORMED)
    data, vmaddr = _symcache()
    cache_ = SymCache.from_bytes(data)
    return ResolvedModule(ObjectFileStatus.FOUND, cache_, vmaddr, identify(ELF)[0].arch)


def symbolicate_native(req: native.NativeRequest) -> dict[str, Any]:
    """The completed native payload, serialised as the handler does (an error if it cannot be)."""
    out = _loop().run_until_complete(native.symbolicate(req, resolve_native))
    orjson.dumps(out)
    return out


@cache
def _js_modules() -> dict[str, js.Module]:
    text = JS_APP.read_text()
    found = js.Module(str(JS_APP), lines=LineIndex(text), sourcemap=f"{JS_APP}.map", resolved_with="url",
                      cache=SmCache.from_bytes(build_from_sources(Path(f"{JS_APP}.map").read_bytes(), text),
                                               map_url=f"{JS_APP}.map"))
    broken = js.Module(str(JS_BROKEN), lines=LineIndex(JS_BROKEN.read_text()), resolved_with="url",
                       map_error={"type": "malformed_sourcemap", "url": f"{JS_BROKEN}.map"})
    return {"app.js": found, "greet.js": broken}


async def get_js_module(abs_path: str) -> js.Module:
    """The `get_module` callback of `js.symbolicate`, by the file name at the end of `abs_path`."""
    name = abs_path.split("?", 1)[0].rsplit("/", 1)[-1]
    return _js_modules().get(name) or js.Module(abs_path, minified_error="missing_source")


async def original_source(url: str) -> Sequence[str] | None:
    return None


def symbolicate_js(req: js.JsRequest) -> dict[str, Any]:
    out = _loop().run_until_complete(js.symbolicate(req, get_js_module, original_source))
    orjson.dumps(out)
    return out
