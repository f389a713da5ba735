"""Stack-trace text parsing (symbolicator/sourcemaps/stacktrace.py).

V8 traces are real (node, recorded with V8's CallSite data by
tests/fixtures/js_traces/record_v8.js); Firefox and Safari samples follow the engines'
documented formats, with hand-written expectations (see the fixture README).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from symbolicator.sourcemaps.stacktrace import (
    TraceFormat,
    TraceFrame,
    format_trace,
    parse_frame,
    parse_trace,
)

TRACES = Path(__file__).resolve().parent / "fixtures" / "js_traces"
V8 = sorted((TRACES / "v8").glob("*.txt"))
HANDWRITTEN = sorted([*(TRACES / "firefox").glob("*.json"), *(TRACES / "safari").glob("*.json")])
EVAL_SITE = re.compile(r"\(([^()]*):(\d+):(\d+)\)")


@pytest.mark.parametrize("path", V8, ids=lambda p: p.stem)
def test_v8_frames_match_what_v8_reported(path: Path) -> None:
    sites: list[dict[str, Any]] = json.loads(path.with_suffix(".json").read_text())
    trace = parse_trace(path.read_text())
    assert trace.format is TraceFormat.V8
    assert len(trace.frames) == len(sites)
    for frame, site in zip(trace.frames, sites):
        assert frame.is_async == site["async"], site["text"]
        assert frame.is_eval == site["eval"], site["text"]
        if site["eval"]:
            path_, line, col = EVAL_SITE.findall(site["eval_origin"])[-1]
            assert (frame.abs_path, frame.lineno, frame.colno) == (path_, int(line), int(col))
        elif site["file"] is None or site["native"]:
            assert frame.abs_path is None and frame.is_native, site["text"]
        else:
            assert (frame.abs_path, frame.lineno, frame.colno) == (site["file"], site["line"], site["column"])
        if site["function"]:
            assert frame.function is not None and site["function"] in frame.function
        if site["constructor"]:
            assert frame.function is not None and frame.function.startswith("new ")


def test_v8_message_keeps_nodes_source_line_header() -> None:
    trace = parse_trace((TRACES / "v8" / "anonymous_and_native.txt").read_text())
    assert trace.message.splitlines()[0] == "http://127.0.0.1:3000/bundle.js:1"
    assert trace.message.splitlines()[-1] == "RangeError: no sort"


@pytest.mark.parametrize("path", HANDWRITTEN, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_firefox_and_safari_formats(path: Path) -> None:
    expected = json.loads(path.read_text())
    trace = parse_trace(path.with_suffix(".txt").read_text())
    got = [
        {"function": f.function, "abs_path": f.abs_path, "lineno": f.lineno, "colno": f.colno, "is_async": f.is_async}
        for f in trace.frames
    ]
    assert got == expected
    assert trace.format is (TraceFormat.GECKO if path.parent.name == "firefox" else TraceFormat.JSC)
    assert trace.message and "@" not in trace.message.split(":")[0]


def test_bundle_traces_of_the_scope_fixtures_parse_completely() -> None:
    text = (TRACES.parent / "js_scopes" / "out" / "esbuild" / "app.min.js.traces.txt").read_text()
    for block in text.split("\n\n# "):
        frame_lines = [line for line in block.splitlines() if line.startswith("    at ")]
        trace = parse_trace("\n".join(block.splitlines()[1:]))
        assert len(trace.frames) == len(frame_lines) > 0
        assert any(f.abs_path == "app.min.js" and f.colno for f in trace.frames)


@pytest.mark.parametrize(
    ("line", "frame"),
    [
        ("    at foo (http://x.com/a.js:10)", TraceFrame("foo", "http://x.com/a.js", 10, None)),
        ("    at http://localhost:8080/a.js?x=1:2:3", TraceFrame(None, "http://localhost:8080/a.js?x=1", 2, 3)),
        ("    at Function.executeUserEntryPoint [as runMain] (node:internal/modules/run_main:164:12)",
         TraceFrame("Function.executeUserEntryPoint [as runMain]", "node:internal/modules/run_main", 164, 12)),
        ("    at f (C:\\Program Files\\app\\main.js:1:2)", TraceFrame("f", "C:\\Program Files\\app\\main.js", 1, 2)),
        ("    at f (C:\\Program Files (x86)\\app\\main.js:1:2)", TraceFrame("f", "C:\\Program Files (x86)\\app\\main.js", 1, 2)),
        ("    at Foo.(anonymous function) (http://a/b.js:3:4)", TraceFrame("Foo.(anonymous function)", "http://a/b.js", 3, 4)),
        ("    at http://a/b.js:3", TraceFrame(None, "http://a/b.js", 3, None)),
        ("    at new Promise (<anonymous>)", TraceFrame("new Promise", None, None, None, is_native=True)),
        ("    at Array.forEach (native)", TraceFrame("Array.forEach", None, None, None, is_native=True)),
        ("    at <anonymous>", TraceFrame(None, None, None, None, is_native=True)),
        ("    at async Promise.all (index 0)", TraceFrame("Promise.all", None, None, None, is_async=True, is_native=True)),
        ("    at webpack-internal:///./src/a.js:5:1", TraceFrame(None, "webpack-internal:///./src/a.js", 5, 1)),
        ("fn@webpack:///src/app.js:1:2", TraceFrame("fn", "webpack:///src/app.js", 1, 2)),
        ("  at eval (eval at <anonymous> (http://a/x.js:3:4), <anonymous>:1:1)",
         TraceFrame("eval", "http://a/x.js", 3, 4, is_eval=True)),
    ],
)
def test_frame_line_edge_cases(line: str, frame: TraceFrame) -> None:
    parsed = parse_frame(line)
    assert parsed is not None and parsed[0] == frame


@pytest.mark.parametrize(
    "line",
    ["Error: at least 3 items required", "Contact support@example.com", "TypeError: x is undefined", "", "    at"],
)
def test_message_lines_are_not_frames(line: str) -> None:
    assert parse_frame(line) is None


def test_message_only_and_crlf() -> None:
    trace = parse_trace("Error: first\r\nsecond line\r\n    at f (http://a/b.js:1:2)\r\n")
    assert trace.message == "Error: first\nsecond line"
    assert trace.frames == (TraceFrame("f", "http://a/b.js", 1, 2),)
    empty = parse_trace("just a message\n")
    assert (empty.message, empty.frames, empty.format) == ("just a message", (), TraceFormat.UNKNOWN)


@pytest.mark.parametrize("path", [p for p in V8 if "eval" not in p.stem and "function" not in p.stem], ids=lambda p: p.stem)
def test_format_trace_reprints_v8_frames_exactly(path: Path) -> None:
    text = path.read_text()
    trace = parse_trace(text)
    printed = format_trace(trace.message, trace.frames).splitlines()
    original = re.sub(r"\(index \d+\)", "(<anonymous>)", text).splitlines()
    assert printed[-len(trace.frames):] == [line for line in original if line.startswith("    at ")]


def test_format_trace_prints_other_engines_v8_style() -> None:
    trace = parse_trace((TRACES / "safari" / "basic.txt").read_text())
    assert format_trace(trace.message, trace.frames).splitlines() == [
        "TypeError: undefined is not an object (evaluating 'cart.items.length')",
        "    at total (https://shop.example.com/assets/app.min.js:2:10452)",
        "    at render (https://shop.example.com/assets/app.min.js:2:9876)",
        "    at forEach (<anonymous>)",
        "    at https://shop.example.com/assets/app.min.js:1:330",
        "    at global code (https://shop.example.com/assets/app.min.js:3:15)",
    ]
