"""The engine side of `symbolicator symbolicate` (the parser is in `commands/symbolicate.py`).

FILE is a minidump (`symbolicate_minidump.py`), an Apple crash report (`.crash` text or `.ips` JSON), a Symbolicator
`/symbolicate` JSON request, or a JavaScript stack trace (handed to
`symbolicator.service.js.offline`). For native input every DIR is searched
recursively for ELF and Mach-O files (dSYM bundles are folders of those), indexed
by debug id; the request then runs through the same `service.native` code as
`POST /symbolicate`, with symcaches from the offline cache (`offline_cache.py`)
instead of the service's, so `--json` prints exactly what the endpoint answers
(`status: completed` included).

Input that is none of the four is refused with what it was taken for (exit 1):
echoing a text file back as if it were a symbolicated trace is a false OK. In text
output, frames left unresolved are listed on stderr with the reason (the module's
status: no debug file with that debug id in the folders, a malformed one, …; for
JS the answer's `errors`: missing source, missing map, …).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import posixpath
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from symbolicator.commands.offline_cache import OfflineCache, identity
from symbolicator.commands.symbolicate_wasm import has_wasm_frames, run_wasm_trace
from symbolicator.errors import FormatError, JsErrorKind, ObjectFileStatus, SymbolicatorError, UnreadableInput
from symbolicator.native import objects
from symbolicator.native.apple_crash import MalformedCrashReport
from symbolicator.native.symcache import SYMCACHE_VERSION, SymCache
from symbolicator.service import native
from symbolicator.service.js import mixed as js_mixed
from symbolicator.service.js.offline import offline_js_payload, symbolicate_js_request, symbolicate_trace
from symbolicator.service.native.apple import apple_crash_request, symbolicate_apple_crash
from symbolicator.service.native.modules import ResolvedModule, features_json
from symbolicator.sourcemaps.smcache import (
    SOURCEMAP_CACHE_VERSION,
    SmCache,
    build_from_sources,
)
from symbolicator.sourcemaps.stacktrace import TraceFrame, format_trace, parse_trace
from symbolicator.types import DebugId

_MAGICS = (b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xfe\xed\xfa\xce",
           b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf", b"MODU", b"\0asm")
_APPLE_MARKERS = ("Incident Identifier:", "Binary Images:", "Exception Type:", "Crashed Thread:")


_KINDS = ("an Apple crash report (.crash/.ips), a Symbolicator request (JSON with \"stacktraces\") "
          "or a JavaScript stack trace")


def detect(text: str, suffix: str = "") -> tuple[str, Any]:
    """`("request", body)`, `("js-request", body)`, `("apple", None)` or `("js", None)`.

    A `.crash`/`.ips` name decides alone; a JSON request is for `/symbolicate-js` when its frames
    carry `abs_path` without `instruction_addr` or it names `sourcemap` modules. JSON that is not
    a request raises `UnreadableInput`.
    """
    if suffix.lower() in (".crash", ".ips"):
        return "apple", None
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped[:1] in ("{", "["):
        try:
            body = json.loads(stripped)
        except ValueError:
            if stripped.startswith("["):
                return "js", None
            return "apple", None  # .ips: a JSON header line, then the JSON body
        if isinstance(body, dict) and "stacktraces" in body:
            return ("any-request" if _is_mixed_request(body) else "js-request" if _is_js_request(body)
                    else "request"), body
        if isinstance(body, dict) and any(k in body for k in ("bug_type", "app_name", "incident_id", "incident")):
            return "apple", None
        what = "an object without \"stacktraces\"" if isinstance(body, dict) else f"a JSON {type(body).__name__}"
        raise UnreadableInput(f"read as JSON, but it is {what}, not a Symbolicator request; expected {_KINDS}")
    if any(marker in text for marker in _APPLE_MARKERS):
        return "apple", None
    return "js", None


def _is_js_request(body: dict[str, Any]) -> bool:
    raw = body.get("modules")
    modules = raw if isinstance(raw, list) else []
    if any(isinstance(m, dict) and m.get("type") == "sourcemap" for m in modules):
        return True
    traces = body["stacktraces"] if isinstance(body["stacktraces"], list) else []
    frames = [f for t in traces if isinstance(t, dict) and isinstance(t.get("frames"), list)
              for f in t["frames"] if isinstance(f, dict)]
    return bool(frames) and all("abs_path" in f and "instruction_addr" not in f for f in frames)


def _is_mixed_request(body: dict[str, Any]) -> bool:
    """JS and native frames in one body: the `/symbolicate-any` shape (service/js/mixed.py)."""
    traces = body["stacktraces"] if isinstance(body["stacktraces"], list) else []
    frames = [f for t in traces if isinstance(t, dict) and isinstance(t.get("frames"), list)
              for f in t["frames"] if isinstance(f, dict)]
    return {js_mixed.is_js_frame(f) for f in frames} == {True, False}


def _js_frame(frame: dict[str, Any]) -> TraceFrame:
    return TraceFrame(frame.get("function"), frame.get("abs_path"), frame.get("lineno"), frame.get("colno"))


class SymbolFolders:
    """Debug files under some folders, by debug id; symcaches from the offline cache on first use."""

    def __init__(self, dirs: list[Path], cache: OfflineCache | None = None) -> None:
        self.by_id: dict[DebugId, list[tuple[Path, objects.ObjectInfo]]] = {}
        self.cache = cache
        for root in dirs:
            for folder, _subdirs, names in os.walk(root):
                for name in names:
                    self._add(Path(folder, name))

    def _add(self, path: Path) -> None:
        try:
            with open(path, "rb") as f:
                head = f.read(4)
                if head not in _MAGICS and head[:2] != objects.PE_MAGIC and head != objects.PDB_MAGIC[:4]:
                    return
            infos = objects.identify(path)
        except (OSError, FormatError):
            return
        for info in infos:
            if info.debug_id is not None:
                self.by_id.setdefault(info.debug_id, []).append((path, info))

    async def resolve(self, module: native.RawModule) -> ResolvedModule:
        result = ResolvedModule(ObjectFileStatus.MISSING)
        if module.debug_id is None:
            return result
        # Debug info first; a PDB before its image (a MinGW image carries the CRT's DWARF, not the program's).
        found = sorted(self.by_id.get(module.debug_id, []),
                       key=lambda e: (not e[1].features.has_debug_info, e[1].file_format == "pe"))
        for path, info in found:
            candidate: dict[str, Any] = {"source": "local", "location": path.resolve().as_uri()}
            result.candidates.append(candidate)
            try:
                symcache = self._symcache(path, info)
            except FormatError as exc:
                candidate.update(download={"status": "ok"}, debug={"status": "malformed", "details": str(exc)})
                result.status = ObjectFileStatus.MALFORMED
                continue
            result.status, result.symcache = ObjectFileStatus.FOUND, symcache
            result.image_vmaddr, result.arch, result.features = info.image_vmaddr, info.arch, features_json(info)
            candidate.update(download={"status": "ok", "features": dict(result.features)}, debug={"status": "ok"})
            return result
        if not found:
            result.candidates.append({"source": "local", "location": "No object files listed on this source",
                                      "download": {"status": "notfound"}})
        return result

    def _symcache(self, path: Path, info: objects.ObjectInfo) -> SymCache:
        arch = info.arch if info.fat else None

        def build() -> bytes:
            if info.file_format == "breakpad":
                from symbolicator.native.breakpad_symcache import build_symcache as build_breakpad

                return build_breakpad(path)
            if info.file_format == "pdb":
                from symbolicator.native.pdb import build_symcache as build_pdb_symcache

                return build_pdb_symcache(path)
            from symbolicator.native.symcache_build import build as build_symcache

            return build_symcache(path, arch)

        if self.cache is None:
            return SymCache.from_bytes(build())
        made = self.cache.converted("cli-symcache", SYMCACHE_VERSION, identity([path, None], str(arch or "any")), build)
        return SymCache.open(made) if isinstance(made, Path) else SymCache.from_bytes(bytes(made))


def map_opener(cache: OfflineCache) -> Callable[[Path | None, bytes | None, Path, str, str], SmCache]:
    """`service/js/offline.py`'s map hook: sourcemap caches kept in the offline cache."""

    def open_map(map_path: Path | None, embedded: bytes | None, js_path: Path, text: str, label: str) -> SmCache:
        def build() -> bytearray:
            data = embedded if embedded is not None else map_path.read_bytes()  # type: ignore[union-attr]
            return build_from_sources(data, text)

        made = cache.converted("cli-smcache", SOURCEMAP_CACHE_VERSION, identity([map_path, js_path], "scopes"), build)
        return SmCache.open(made, map_url=label) if isinstance(made, Path) else SmCache.from_bytes(made, map_url=label)

    return open_map


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    dirs = [Path(d) for d in args.symbols]
    for d in dirs:
        if not d.is_dir():
            raise SymbolicatorError(f"--symbols {d}: {'not a folder' if d.exists() else 'no such folder'}")
    from symbolicator.commands.symbolicate_minidump import is_minidump, run_minidump

    if is_minidump(path):
        cache = OfflineCache.from_args(args)
        try:
            folders = SymbolFolders(dirs, cache if cache.store is not None else None)
            return run_minidump(path, folders, bool(args.json), format_report)
        finally:
            cache.close()
    text = path.read_bytes().decode("utf-8", errors="replace")
    try:
        kind, body = detect(text, path.suffix)
    except UnreadableInput as exc:
        raise UnreadableInput(f"{args.file}: {exc}") from None
    cache = OfflineCache.from_args(args)
    try:
        return _symbolicate(args, text, kind, body, dirs, cache)
    finally:
        cache.close()


def _symbolicate(args: argparse.Namespace, text: str, kind: str, body: Any, dirs: list[Path],
                 cache: OfflineCache) -> int:
    opener = map_opener(cache)
    if kind == "js" and has_wasm_frames(text):
        return run_wasm_trace(text, SymbolFolders(dirs, cache if cache.store is not None else None), bool(args.json))
    if kind == "js":
        if not any(f.abs_path and f.lineno is not None for f in parse_trace(text).frames):
            from symbolicator.commands.symbolicate_jvm import is_java_trace

            if is_java_trace(text):
                raise UnreadableInput(f"{args.file}: a Java stack trace: give its ProGuard mapping with --mapping FILE "
                                      "or --mapping-uuid UUID")
            raise UnreadableInput(
                f"{args.file}: read as a JavaScript stack trace (it is not JSON and has no crash-report header), "
                f"but no line is a stack frame with a file and a line; expected {_KINDS}")
        errors: list[dict[str, Any]] = []
        sys.stdout.write(symbolicate_trace(text, dirs, bool(args.json), trace_paths=args.allow_trace_paths,
                                           open_map=opener, unresolved=errors))
        _explain_js(errors, bool(args.json))
        return 0
    if kind == "any-request":
        folders = SymbolFolders(dirs, cache if cache.store is not None else None)
        mixed = js_mixed.MixedRequest.from_json(body)
        payload = asyncio.run(js_mixed.symbolicate_mixed(
            mixed,
            lambda js: offline_js_payload(js, dirs, trace_paths=args.allow_trace_paths, open_map=opener),
            lambda req: native.symbolicate(req, folders.resolve)))
        result = {"status": "completed", **payload}
        sys.stdout.write(json.dumps(result, indent=2) + "\n" if args.json else format_report(result))
        if not args.json:
            _explain_js(result.get("errors") or [], False)
            _explain_native(result)
        return 0
    if kind == "js-request":
        result = symbolicate_js_request(body, dirs, trace_paths=args.allow_trace_paths, open_map=opener)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            for trace in result.get("stacktraces", []):
                sys.stdout.write(format_trace("", [_js_frame(f) for f in trace.get("frames", [])]) + "\n")
            _explain_js(result.get("errors") or [], False)
        return 0
    folders = SymbolFolders(dirs, cache if cache.store is not None else None)
    if kind == "apple":
        _check_ips_header(args.file, text)
        try:
            crash = apple_crash_request(text, {})
        except MalformedCrashReport as exc:
            raise UnreadableInput(f"{args.file}: read as an Apple crash report, but {exc}") from None
        payload = asyncio.run(symbolicate_apple_crash(crash, folders.resolve))
    else:
        payload = asyncio.run(native.symbolicate(native.NativeRequest.from_json(body), folders.resolve))
    result = {"status": "completed", **payload}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        sys.stdout.write(format_report(result))
        _explain_native(result)
    return 0


_IPS_HEADER_KEYS = ("bug_type", "app_name", "incident_id", "os_version", "timestamp", "name")


def _check_ips_header(name: str, text: str) -> None:
    """JSON whose first line has none of an .ips header's fields is not a truncated .ips: say what it is."""
    first = text.lstrip("\ufeff \t\r\n").split("\n", 1)[0]
    if not first.startswith("{"):
        return
    try:
        header = json.loads(first)
    except ValueError:
        return
    if isinstance(header, dict) and not any(k in header for k in _IPS_HEADER_KEYS):
        raise UnreadableInput(
            f"{name}: taken for an Apple .ips crash report (by its name or its JSON), but its first line has none "
            f"of an .ips header's fields ({', '.join(_IPS_HEADER_KEYS)}); expected {_KINDS}")


_JS_REASONS = {
    JsErrorKind.MISSING_SOURCE.value: "no minified file for it in the --symbols folders",
    JsErrorKind.MISSING_SOURCEMAP.value: "its minified file names no source map, and there is none beside it",
    JsErrorKind.MALFORMED_SOURCEMAP.value: "its source map cannot be read",
    JsErrorKind.INVALID_BASE64_SOURCEMAP.value: "its inline source map is not valid base64",
    JsErrorKind.INVALID_LOCATION.value: "the map has no mapping at that position",
}


def _explain_js(errors: list[dict[str, Any]], as_json: bool) -> None:
    """Why frames stayed unresolved, on stderr (the JSON answer carries it already)."""
    if as_json:
        return
    for e in errors:
        kind = str(getattr(e.get("type"), "value", e.get("type")))  # a JsErrorKind, or its wire string
        print(f"unresolved: {e.get('abs_path') or e.get('url') or '?'}: {_JS_REASONS.get(kind, kind)} ({kind})",
              file=sys.stderr)


_NATIVE_REASONS = {
    "missing": "no debug file with this debug id in the --symbols folders",
    "malformed": "its debug file cannot be read",
    "unsupported": "its debug file is of a kind this tool does not read",
    "unused": "no frame points into it",
}


def _explain_native(result: dict[str, Any]) -> None:
    """One stderr line per module that left frames unresolved, and for frames outside every module."""
    for m in result.get("modules", []):
        status = m.get("debug_status")
        if status in ("found", "unused"):
            continue
        details = next((c.get("debug", {}).get("details") for c in m.get("candidates", [])
                        if c.get("debug", {}).get("details")), None)
        name = m.get("code_file") or m.get("debug_file") or "?"
        print(f"unresolved: frames in {name} ({m.get('debug_id') or 'no debug id'}): "
              f"{_NATIVE_REASONS.get(status, status)} ({status}{': ' + details if details else ''})", file=sys.stderr)
    orphans = sum(1 for t in result.get("stacktraces", []) for f in t.get("frames", [])
                  if f.get("status") == "unknown_image")
    if orphans:
        print(f"unresolved: {orphans} frame(s) outside every listed module (unknown_image)", file=sys.stderr)


def format_report(result: dict[str, Any]) -> str:
    """A readable report: the crash, then each thread's frames, inlined calls indented."""
    lines = []
    info = result.get("system_info")
    if info:
        lines.append(f"OS: {info.get('os_name', '')} {info.get('os_version', '')} ({info.get('os_build', '')}), "
                     f"{info.get('cpu_arch', '')}, {info.get('device_model', '')}".rstrip(", "))
    if result.get("crash_reason"):
        lines.append(f"Crash: {result['crash_reason']}" + (f" — {result['crash_details']}"
                                                           if result.get("crash_details") else ""))
    if "signal" in result:
        lines.append(f"Signal: {result['signal']}")
    for n, thread in enumerate(result["stacktraces"]):
        name = thread.get("thread_name")
        tid = thread.get("thread_id", n)
        lines.append("")
        crashed = " crashed" if thread.get("is_requesting") else ""
        lines.append(f"Thread {tid}" + (f" ({name})" if name else "") + crashed)
        previous = None
        for frame in thread["frames"]:
            index = frame["original_index"]
            inlined = index == previous
            previous = index
            lines.append(_frame_line(frame, inlined))
    lines.append("")
    lines.append("Modules:")
    for m in result["modules"]:
        lines.append(f"  {m.get('image_addr', '')}  {m.get('debug_id', '-'):<36}  {m['debug_status']:<10}  "
                     f"{m.get('arch', '')}  {m.get('code_file') or m.get('debug_file') or ''}")
    return "\n".join(lines) + "\n"


def _frame_line(frame: dict[str, Any], inlined: bool) -> str:
    package = posixpath.basename(frame.get("package") or "") or "???"
    where = ""
    if frame.get("abs_path") or frame.get("filename"):
        where = f" ({frame.get('filename') or frame.get('abs_path')}" + (
            f":{frame['lineno']})" if frame.get("lineno") else ")")
    name = frame.get("function") or frame.get("symbol") or f"<{frame.get('status', 'unmapped')}>"
    if inlined:
        return f"    {'':<24} {'':<18} [inlined] {name}{where}"
    return f"{frame['original_index']:<3} {package:<24} {frame.get('instruction_addr', 'js'):<18} {name}{where}"
