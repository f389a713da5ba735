"""Helpers of the WebAssembly tests: the fixture's files, its recorded truth, comparable frames.

`tests/fixtures/wasm/` is rebuilt by its `build.sh`; `expected*.json` hold llvm-symbolizer's
answers per module offset, `trace.txt` node's V8 trace (both from `record.py`). Frames are
compared as (function, path, line) after API.md §4's normalisation, the one the native tests use.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from tests.support.native_service import norm_function, _norm_path

WASM = Path(__file__).resolve().parents[1] / "fixtures" / "wasm"
OUT = WASM / "out"
VARIANTS = ["expected.json", "expected-dwarf5.json", "expected-gc.json"]
Key = tuple[str | None, str | None, int | None]


@cache
def expected(name: str = "expected.json") -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((WASM / name).read_text())
    return doc


def key(function: str | None, path: str | None, line: int | None) -> Key:
    """One frame, comparable: normalised function and path, line 0 as unknown."""
    func = norm_function(function) if function and function != "??" else None
    return func or None, _norm_path(path) if path and path != "??" else None, line or None


def llvm_at(offset: int, name: str = "expected.json") -> list[Key]:
    """llvm-symbolizer's recorded chain at a module offset, innermost first."""
    entry = next(a for a in expected(name)["addresses"] if a["offset"] == offset)
    return [key(f["function"], f["file"], f["line"]) for f in entry["frames"]]


def trace_text() -> str:
    return (WASM / "trace.txt").read_text()


def trace_offset(function_index: int) -> int:
    """The module offset V8 printed for `wasm-function[function_index]` in the committed trace."""
    return int(trace_text().split(f"wasm-function[{function_index}]:")[1].split(")")[0], 16)
