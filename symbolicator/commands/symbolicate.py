"""`symbolicator symbolicate FILE --symbols DIR… [--json]`: a whole crash, offline.

FILE is a minidump (`symbolicate_minidump.py`), an Apple crash report (`.crash` text or `.ips` JSON), a Symbolicator
`/symbolicate` JSON request, or a JavaScript stack trace (handed to
`symbolicator.service.js_offline`). For native input every DIR is searched
recursively for ELF and Mach-O files (dSYM bundles are folders of those), indexed
by debug id; the request then runs through the same `service.native` code as
`POST /symbolicate`, with symcaches built in memory instead of the caches, so
`--json` prints exactly what the endpoint answers (`status: completed` included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import posixpath
import sys
from pathlib import Path
from typing import Any

from symbolicator.errors import FormatError, ObjectFileStatus, SymbolicatorError
from symbolicator.native import objects
from symbolicator.native.apple_crash import (
    parse_apple_crash_report,
    response_fields,
    to_symbolicate_request,
)
from symbolicator.native.symcache import SymCache
from symbolicator.service import native
from symbolicator.service.js_offline import symbolicate_js_request, symbolicate_trace
from symbolicator.service.native_modules import ResolvedModule, features_json
from symbolicator.sourcemaps.stacktrace import TraceFrame, format_trace
from symbolicator.types import DebugId

_MAGICS = (b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xfe\xed\xfa\xce",
           b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf", b"MODU")
_APPLE_MARKERS = ("Incident Identifier:", "Binary Images:", "Exception Type:", "Crashed Thread:")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "symbolicate",
        help="symbolicate a minidump, a crash report, a Symbolicator request or a JS stack trace (offline)",
        description="Symbolicate an Apple crash report (.crash/.ips), a Symbolicator /symbolicate JSON "
        "request or a JavaScript stack trace, with debug files (and JS + source maps) found in DIRs.",
    )
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("--symbols", metavar="DIR", nargs="+", action="extend", required=True,
                        help="folders searched recursively for debug files (dSYM bundles included)")
    parser.add_argument("--json", action="store_true", help="print the JSON the HTTP endpoint would answer")
    return parser


def detect(text: str, suffix: str = "") -> tuple[str, Any]:
    """`("request", body)`, `("js-request", body)`, `("apple", None)` or `("js", None)`.

    A `.crash`/`.ips` name decides alone; a JSON request is for `/symbolicate-js` when its frames
    carry `abs_path` without `instruction_addr` or it names `sourcemap` modules.
    """
    if suffix.lower() in (".crash", ".ips"):
        return "apple", None
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("{"):
        try:
            body = json.loads(stripped)
        except ValueError:
            return "apple", None  # .ips: a JSON header line, then the JSON body
        if isinstance(body, dict) and "stacktraces" in body:
            return ("js-request" if _is_js_request(body) else "request"), body
        return "apple", None
    if any(marker in text for marker in _APPLE_MARKERS):
        return "apple", None
    return "js", None


def _is_js_request(body: dict[str, Any]) -> bool:
    modules = body.get("modules") if isinstance(body.get("modules"), list) else []
    if any(isinstance(m, dict) and m.get("type") == "sourcemap" for m in modules):
        return True
    traces = body["stacktraces"] if isinstance(body["stacktraces"], list) else []
    frames = [f for t in traces if isinstance(t, dict) and isinstance(t.get("frames"), list)
              for f in t["frames"] if isinstance(f, dict)]
    return bool(frames) and all("abs_path" in f and "instruction_addr" not in f for f in frames)


def _js_frame(frame: dict[str, Any]) -> TraceFrame:
    return TraceFrame(frame.get("function"), frame.get("abs_path"), frame.get("lineno"), frame.get("colno"))


class SymbolFolders:
    """Debug files under some folders, by debug id; symcaches built in memory on first use."""

    def __init__(self, dirs: list[Path]) -> None:
        self.by_id: dict[DebugId, list[tuple[Path, objects.ObjectInfo]]] = {}
        for root in dirs:
            if not root.is_dir():
                raise SymbolicatorError(f"--symbols {root}: not a folder")
            for folder, _subdirs, names in os.walk(root):
                for name in names:
                    self._add(Path(folder, name))

    def _add(self, path: Path) -> None:
        try:
            with open(path, "rb") as f:
                if f.read(4) not in _MAGICS:
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
        found = sorted(self.by_id.get(module.debug_id, []), key=lambda e: not e[1].features.has_debug_info)
        for path, info in found:
            candidate: dict[str, Any] = {"source": "local", "location": path.resolve().as_uri()}
            result.candidates.append(candidate)
            try:
                symcache = SymCache.from_bytes(_build(path, info))
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


def _build(path: Path, info: objects.ObjectInfo) -> bytes:
    from symbolicator.native.symcache_build import build

    if info.file_format == "breakpad":
        from symbolicator.native.breakpad_symcache import build_symcache

        return build_symcache(path)
    return build(path, info.arch if info.fat else None)


def run(args: argparse.Namespace) -> int:
    from symbolicator.commands.symbolicate_minidump import is_minidump, run_minidump

    if is_minidump(Path(args.file)):
        return run_minidump(Path(args.file), SymbolFolders([Path(d) for d in args.symbols]), bool(args.json),
                            format_report)
    text = Path(args.file).read_bytes().decode("utf-8", errors="replace")
    kind, body = detect(text, Path(args.file).suffix)
    dirs = [Path(d) for d in args.symbols]
    if kind == "js":
        sys.stdout.write(symbolicate_trace(text, dirs, bool(args.json)))
        return 0
    if kind == "js-request":
        result = symbolicate_js_request(body, dirs)
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            for trace in result.get("stacktraces", []):
                sys.stdout.write(format_trace("", [_js_frame(f) for f in trace.get("frames", [])]) + "\n")
        return 0
    extra: dict[str, Any] = {}
    if kind == "apple":
        report = parse_apple_crash_report(text)
        body = to_symbolicate_request(report)
        extra = response_fields(report)
    req = native.NativeRequest.from_json(body)
    folders = SymbolFolders(dirs)
    payload = asyncio.run(native.symbolicate(req, folders.resolve))
    result = {"status": "completed", **extra, **payload}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        sys.stdout.write(format_report(result))
    return 0


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
        lines.append(f"Thread {tid}" + (f" ({name})" if name else "") + (" crashed" if thread.get("is_requesting") else ""))
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
    name = frame.get("function") or frame.get("symbol") or f"<{frame['status']}>"
    if inlined:
        return f"    {'':<24} {'':<18} [inlined] {name}{where}"
    return f"{frame['original_index']:<3} {package:<24} {frame['instruction_addr']:<18} {name}{where}"
