"""Offline JS symbolication: `symbolicator symbolicate trace.txt --symbols DIR…`.

A developer pastes what the console printed and points at the build output. The
trace is parsed by `stacktrace.parse_trace` (V8, Firefox, Safari); each frame's
file is looked for in the folders by file name (the longest matching path
suffix wins, so `static/js/main.js` beats another `main.js`), or used directly
when the trace names a file that exists. Its map is found the way the service
finds one: the `//# debugId=` comment against every map's `debugId`, the last
`sourceMappingURL` (a `data:` URL or a path beside the file), then `<file>.map`
beside it. The frames then go through the very code the endpoint uses
(`service.js.symbolicate`), so `--json` prints what `/symbolicate-js` would
answer, and the text output is a V8-style trace of the original positions.

Sources resolve against the map's path on disk, so frames point at the real
original files, and originals without `sourcesContent` are read from there (for source context,
and parsed once each for function names, as the service parses fetched originals).

Only files inside the folders are read: a trace naming `/etc/…`, or a
`sourceMappingURL` of `../../secret.map`, finds nothing unless the caller allows
the trace's own paths (`trace_paths=True`, the CLI's `--allow-trace-paths`). The
caller may also pass `open_map` to keep converted maps (the CLI's offline cache).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from symbolicator.errors import FormatError, InvalidId, JsErrorKind
from symbolicator.service.js.request import JsRequest, Module, ScrapingOptions, symbolicate
from symbolicator.sourcemaps.context import LineIndex
from symbolicator.sourcemaps.inject import existing_debug_id
from symbolicator.sourcemaps.original_names import OriginalNames
from symbolicator.sourcemaps.original_names import build as build_original_names
from symbolicator.sourcemaps.smcache import SmCache, build_from_sources
from symbolicator.sourcemaps.stacktrace import TraceFrame, format_trace, parse_trace
from symbolicator.sourcemaps.urls import (
    InvalidBase64SourceMap,
    decode_data_url,
    find_source_mapping_url,
    is_data_url,
)
from symbolicator.types import DebugId

JS_SUFFIXES = (".js", ".mjs", ".cjs")
MAX_FILES = 200_000
MAX_FILE_BYTES = 256 * 1024 * 1024

MapOpener = Callable[[Path | None, bytes | None, Path, str, str], SmCache]
"""`(map file or None, embedded map bytes or None, minified file, its text, label) -> SmCache`."""


class SymbolDirs:
    """The JS files and maps below some folders, indexed by name; map debug ids read on demand."""

    def __init__(self, dirs: Sequence[Path], trace_paths: bool = False) -> None:
        self.by_name: dict[str, list[Path]] = {}
        self.roots = [os.path.realpath(d) for d in dirs]
        self.trace_paths = trace_paths
        self.maps: list[Path] = []
        self._debug_ids: dict[str, Path] | None = None
        count = 0
        for root in dirs:
            for folder, _, names in os.walk(root):
                for name in names:
                    path = Path(folder, name)
                    self.by_name.setdefault(name, []).append(path)
                    if name.endswith(".map"):
                        self.maps.append(path)
                    count += 1
                    if count > MAX_FILES:
                        return

    def find(self, location: str) -> Path | None:
        """The file a trace location (URL or path) stands for: the longest path-suffix match by name."""
        path = _path_of(location)
        if path and os.path.isabs(path) and os.path.isfile(path) and self.readable(Path(path)):
            return Path(path)
        parts = [p for p in path.split("/") if p]
        if not parts:
            return None
        best: tuple[int, Path] | None = None
        for candidate in self.by_name.get(parts[-1], []):
            have = candidate.parts
            common = 0
            while common < min(len(parts), len(have)) and parts[-1 - common] == have[-1 - common]:
                common += 1
            if best is None or common > best[0]:
                best = (common, candidate)
        return best[1] if best else None

    def readable(self, path: Path) -> bool:
        """Inside one of the folders (links followed), or anywhere when the trace's paths are allowed."""
        if self.trace_paths:
            return True
        real = os.path.realpath(path)
        return any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots)

    def map_for_debug_id(self, debug_id: DebugId) -> Path | None:
        if self._debug_ids is None:
            self._debug_ids = {}
            for path in self.maps:
                try:
                    found = orjson.loads(path.read_bytes()).get("debugId")
                    if isinstance(found, str):
                        self._debug_ids.setdefault(str(DebugId.parse(found)), path)
                except (OSError, ValueError, AttributeError, FormatError, Exception):
                    continue
        return self._debug_ids.get(str(debug_id))


def _path_of(location: str) -> str:
    if location.startswith("file://"):
        return unquote(urlsplit(location).path)
    if "://" in location:
        return urlsplit(location).path
    return location.split("?", 1)[0].split("#", 1)[0]


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(MAX_FILE_BYTES)


def _read_text(path: Path) -> str:
    return _read_bytes(path).decode("utf-8", "replace")


class OfflineModules:
    """`get_module` / `original_source` / `original_function` for `service.js.symbolicate`, from folders."""

    def __init__(self, dirs: SymbolDirs, open_map: MapOpener | None = None) -> None:
        self.dirs = dirs
        self.open_map = open_map or _open_map
        self._modules: dict[str, Module] = {}
        self._names: dict[str, OriginalNames | None] = {}

    async def module(self, abs_path: str) -> Module:
        if abs_path not in self._modules:
            self._modules[abs_path] = self._module(abs_path)
        return self._modules[abs_path]

    async def original_source(self, url: str) -> Sequence[str] | None:
        found = self.dirs.find(url)
        return LineIndex(_read_text(found)) if found else None

    async def original_function(self, url: str, line: int, column: int) -> str | None:
        """The function enclosing a position of an original on disk that the map has no text for,
        parsed once per file as the service parses a fetched one (`sourcemaps/original_names.py`)."""
        if url not in self._names:
            found = self.dirs.find(url)
            self._names[url] = OriginalNames(build_original_names(str(found), _read_bytes(found))) if found else None
        names = self._names[url]
        return names.function_at(line, column) if names is not None else None

    def _module(self, abs_path: str) -> Module:
        module = Module(abs_path)
        js_path = self.dirs.find(abs_path)
        if js_path is None:
            module.minified_error = JsErrorKind.MISSING_SOURCE
            return module
        text = _read_text(js_path)
        module.lines = LineIndex(text)
        map_path: Path | None = None
        map_bytes: bytes | None = None
        module.resolved_with = "url"
        debug_id = _debug_id(existing_debug_id(text))
        if debug_id is not None and (map_path := self.dirs.map_for_debug_id(debug_id)) is not None:
            module.resolved_with = "debug-id"
        ref = find_source_mapping_url(text)
        if map_path is None and ref and is_data_url(ref):
            try:
                map_bytes = decode_data_url(ref)
            except InvalidBase64SourceMap:
                module.map_error = {"type": JsErrorKind.INVALID_BASE64_SOURCEMAP}
                return module
            except FormatError:
                module.map_error = {"type": JsErrorKind.MALFORMED_SOURCEMAP, "url": str(js_path)}
                return module
        elif map_path is None:
            beside = [js_path.parent / _path_of(ref)] if ref else []
            beside.append(js_path.with_name(js_path.name + ".map"))
            map_path = next((p for p in beside if p.is_file() and self.dirs.readable(p)), None)
            if map_path is None:
                module.map_error = {"type": JsErrorKind.MISSING_SOURCEMAP}
                return module
        label = str(map_path) if map_path else str(js_path)
        module.sourcemap = label
        module.sourcemap_origin = "embedded" if map_path is None else label
        try:
            module.cache = self.open_map(map_path, map_bytes, js_path, text, label)
        except (FormatError, OSError):
            module.map_error = {"type": JsErrorKind.MALFORMED_SOURCEMAP, "url": label}
        return module


def _open_map(map_path: Path | None, embedded: bytes | None, js_path: Path, text: str, label: str) -> SmCache:
    data = embedded if embedded is not None else map_path.read_bytes()  # type: ignore[union-attr]
    return SmCache.from_bytes(build_from_sources(data, text), map_url=label)


def _debug_id(text: str | None) -> DebugId | None:
    try:
        return DebugId.parse(text) if text else None
    except InvalidId:
        return None


def symbolicate_js_request(body: Any, symbol_dirs: Sequence[Path], *, trace_paths: bool = False,
                           open_map: MapOpener | None = None) -> dict[str, Any]:
    """A Symbolicator `/symbolicate-js` JSON body answered from folders (no uploads, no scraping)."""
    payload = asyncio.run(offline_js_payload(JsRequest.from_json(body), symbol_dirs, trace_paths=trace_paths,
                                             open_map=open_map))
    return {"status": "completed", **payload}


async def offline_js_payload(request: JsRequest, symbol_dirs: Sequence[Path], *, trace_paths: bool = False,
                             open_map: MapOpener | None = None) -> dict[str, Any]:
    """The `/symbolicate-js` payload of a parsed request, from folders (also the JS half of `/symbolicate-any`)."""
    modules = OfflineModules(SymbolDirs(symbol_dirs, trace_paths), open_map)
    request = replace(request, scraping=ScrapingOptions(enabled=False))
    payload = await symbolicate(request, modules.module, modules.original_source, _named_file,
                                original_function=modules.original_function)
    return {**payload, "scraping_attempts": [], "used_artifact_bundles": []}


def symbolicate_trace(text: str, symbol_dirs: list[Path], as_json: bool, *, trace_paths: bool = False,
                      open_map: MapOpener | None = None, unresolved: list[dict[str, Any]] | None = None) -> str:
    """A pasted JS stack trace, symbolicated: a readable V8-style trace, or the endpoint's JSON.

    `unresolved`, when given, receives the answer's `errors` (why frames stayed as they were)."""
    trace = parse_trace(text)
    sent = [i for i, f in enumerate(trace.frames)
            if f.abs_path and f.lineno is not None and not f.is_native and not f.abs_path.startswith("node:")]
    frames = [_request_frame(trace.frames[i]) for i in reversed(sent)]
    answer = symbolicate_js_request({"stacktraces": [{"frames": frames}]}, symbol_dirs, trace_paths=trace_paths,
                                    open_map=open_map)
    if unresolved is not None:
        unresolved.extend(answer.get("errors") or [])
    if as_json:
        return orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode() + "\n"
    mapped = list(reversed(answer["stacktraces"][0]["frames"]))
    out: list[TraceFrame] = list(trace.frames)
    for i, frame in zip(sent, mapped, strict=False):
        if frame["data"].get("symbolicated"):
            out[i] = replace(out[i], function=frame.get("function") or out[i].function,
                             abs_path=frame["abs_path"], lineno=frame["lineno"], colno=frame["colno"])
    return format_trace(trace.message, out)


def _named_file(abs_path: Any) -> bool:
    """Offline, any file name will do: traces of local runs name relative files."""
    return isinstance(abs_path, str) and bool(abs_path.strip()) and not abs_path.startswith("<")


def _request_frame(frame: TraceFrame) -> dict[str, Any]:
    out: dict[str, Any] = {"abs_path": frame.abs_path, "lineno": frame.lineno}
    if frame.colno is not None:
        out["colno"] = frame.colno
    if frame.function:
        out["function"] = frame.function
    return out
