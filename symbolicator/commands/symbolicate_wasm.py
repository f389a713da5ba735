"""`symbolicator symbolicate trace.txt` for a V8 trace with WebAssembly frames (docs/cli.md).

The wasm frames (`native/wasm/trace.py`) become a `/symbolicate` request as Sentry's JS SDK
sends one: a `type: "wasm"` module per `wasm://wasm/<hash>` URL, at image address 0, and
frames with `instruction_addr` = the module offset and `addr_mode: rel:<module>`, so no
caller adjustment runs. Each URL's module is the one wasm build in the `--symbols` folders
that every frame of that URL fits (`frames_fit`); none or several leave it without a debug id
(its frames say `missing`, and stderr says why). The request then runs through the same
`service.native` code as `POST /symbolicate`. Text output is the trace with each wasm frame
replaced by its frames (inlined calls first), every other line as it was; `--json` prints the
endpoint's answer.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from symbolicator.errors import FormatError
from symbolicator.native.wasm.module import WasmModule, read_module
from symbolicator.native.wasm.trace import WasmFrame, frames_fit, parse_wasm_frames
from symbolicator.service import native
from symbolicator.types import DebugId


def has_wasm_frames(text: str) -> bool:
    return bool(parse_wasm_frames(text))


def _modules(by_id: dict[DebugId, list[tuple[Path, Any]]]) -> dict[DebugId, WasmModule]:
    """One module with a code section per wasm debug id in the folders (the one to check frames against)."""
    out: dict[DebugId, WasmModule] = {}
    for debug_id, entries in by_id.items():
        for path, info in entries:
            if info.file_format != "wasm" or debug_id in out:
                continue
            try:
                module = read_module(path.read_bytes(), bodies=True, names=True)
            except (OSError, FormatError):
                continue
            if module.has_code:
                out[debug_id] = module
    return out


def wasm_request(frames: list[WasmFrame], by_id: dict[DebugId, list[tuple[Path, Any]]],
                 notes: list[str]) -> dict[str, Any]:
    """The `/symbolicate` body for `frames`; why a module was not matched goes to `notes`."""
    candidates = _modules(by_id)
    urls = list(dict.fromkeys(f.module_url for f in frames))
    modules = []
    for url in urls:
        group = [f for f in frames if f.module_url == url]
        fits = [d for d, m in candidates.items() if frames_fit(m, group)]
        module: dict[str, Any] = {"type": "wasm", "code_file": url}
        if len(fits) == 1:
            build_id = candidates[fits[0]].build_id
            module["debug_id"] = str(fits[0])
            if build_id:
                module["code_id"] = build_id.hex()
        elif fits:
            notes.append(f"{url}: {len(fits)} wasm builds in the folders fit its frames "
                         f"({', '.join(str(d) for d in fits)}); pass a folder with only one")
        else:
            notes.append(f"{url}: no wasm module in the folders has these functions at these offsets"
                         if candidates else f"{url}: no wasm module with a build_id in the folders")
        modules.append(module)
    return {
        "stacktraces": [{"frames": [{"instruction_addr": hex(f.offset), "addr_mode": f"rel:{urls.index(f.module_url)}",
                                     **({"function": f.name} if f.name else {})} for f in frames]}],
        "modules": modules,
    }


def _v8_line(frame: dict[str, Any]) -> str:
    name = frame.get("function") or "<unknown>"
    if frame.get("abs_path"):
        where = frame["abs_path"] + (f":{frame['lineno']}" if frame.get("lineno") else "")
        return f"    at {name} ({where})"
    return f"    at {name}"


def format_trace(text: str, frames: list[WasmFrame], result: dict[str, Any]) -> str:
    """The trace with each wasm frame replaced by its symbolicated frames; other lines unchanged."""
    answered: dict[int, list[dict[str, Any]]] = {}
    for f in result["stacktraces"][0]["frames"]:
        answered.setdefault(f["original_index"], []).append(f)
    by_line = {f.line: i for i, f in enumerate(frames)}
    out: list[str] = []
    for n, line in enumerate(text.splitlines()):
        group = answered.get(by_line[n], []) if n in by_line else []
        if group and all(f["status"] == "symbolicated" for f in group):
            out.extend(_v8_line(f) for f in group)
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def run_wasm_trace(text: str, folders: Any, as_json: bool) -> int:
    """Symbolicate the V8 trace `text` with the modules of `folders` (a `SymbolFolders`)."""
    frames = parse_wasm_frames(text)
    notes: list[str] = []
    req = native.NativeRequest.from_json(wasm_request(frames, folders.by_id, notes))
    result = {"status": "completed", **asyncio.run(native.symbolicate(req, folders.resolve))}
    sys.stdout.write(json.dumps(result, indent=2) + "\n" if as_json else format_trace(text, frames, result))
    for note in notes:
        print(f"symbolicator symbolicate: {note}", file=sys.stderr)
    return 0
