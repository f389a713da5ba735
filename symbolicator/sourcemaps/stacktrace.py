"""Stack-trace text → frames, and frames → a readable V8-style trace.

Users paste what the console printed, so this reads the three text formats engines produce:

- V8 (Chrome, Edge, Node): `    at fn (url:line:col)`, `    at url:line:col`, `at async fn …`,
  `at new Foo …`, `at fn [as alias] …`, native frames `(<anonymous>)` / `(native)` /
  `(index 0)`, and eval frames `at fn (eval at outer (url:l:c), <anonymous>:l:c)`;
- Gecko (Firefox): `fn@url:line:col`, `@url:…` for anonymous functions, `async*fn@…`,
  `url line N > eval:l:c`;
- JavaScriptCore (Safari): `fn@url:line:col`, `global code@…`, `fn@[native code]`, and bare
  `url:line:col` lines for anonymous functions.

Eval frames are reported at the *eval call site* (its URL, line and column), as Sentry's SDK
does: the evaluated code has no file to map, the place that evaluated it does.

Lines before the first frame are the message (Node may prefix the source line and a caret).
A path is split from its `:line:col` suffix from the right, so ports, query strings,
`webpack://` URLs and Windows drive letters survive. lineno/colno are 1-based; colno counts
UTF-16 code units as engines do; either is None when the engine printed none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum


class TraceFormat(str, Enum):
    """The engine family a trace's frame lines came from."""

    V8 = "v8"
    GECKO = "gecko"
    JSC = "jsc"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TraceFrame:
    """One frame as printed. lineno/colno 1-based (colno in UTF-16 units), None when absent.

    `function` is the name as the engine printed it (`Foo.bar`, `new Foo`, `Object.<anonymous>`),
    None for anonymous frames; `abs_path` None for native frames.
    """

    function: str | None
    abs_path: str | None
    lineno: int | None
    colno: int | None
    is_async: bool = False
    is_native: bool = False
    is_eval: bool = False


@dataclass(frozen=True, slots=True)
class ParsedTrace:
    """A parsed trace: message lines joined with newlines, frames innermost first."""

    message: str
    frames: tuple[TraceFrame, ...]
    format: TraceFormat


_V8_FRAME = re.compile(r"^\s*at (?:(?P<async>async) )?(?P<rest>.*?)\s*$")
_V8_EVAL = re.compile(r"^eval at .*?\((?P<loc>[^()]*:\d+:\d+)\)(?:, .*)?$|^eval at [^(]*, (?P<anon>.*)$")
_AT_FRAME = re.compile(r"^\s*(?P<fn>(?:(?:global|eval|module) code)|[^\s@]*)@(?P<loc>\S.*?|(?<= code@))\s*$")
_BARE_URL = re.compile(r"^\s*(?P<loc>(?:[a-z][a-z0-9+.-]*://|/|[A-Za-z]:\\)\S*:\d+(?::\d+)?)\s*$")
_LINE_COL = re.compile(r"^(?P<path>.*?):(?P<line>\d+)(?::(?P<col>\d+))?$")
_GECKO_EVAL = re.compile(r"^(?P<path>.*?) line (?P<line>\d+) > (?:eval|Function)(?: line \d+ > (?:eval|Function))*")
_NATIVE = {"<anonymous>", "native", "[native code]"}


def _location(loc: str) -> tuple[str | None, int | None, int | None]:
    """`url:line:col` → parts, split from the right; native markers → no path."""
    loc = loc.strip()
    if not loc or loc in _NATIVE or loc.startswith("index "):
        return None, None, None
    m = _LINE_COL.match(loc)
    if m is None:
        return loc, None, None
    col = m.group("col")
    return m.group("path"), int(m.group("line")), int(col) if col else None


def _split_call(rest: str) -> tuple[str | None, str | None]:
    """`fn (location)` → parts, at the first ` (` whose remainder is balanced, so both
    `Foo.(anonymous function) (url:1:2)` (old Chrome) and `f (C:\\Program Files (x86)\\a.js:1:2)`
    split right; without parentheses the whole text is a location."""
    if not rest.endswith(")"):
        return None, None
    start = rest.find(" (")
    while start >= 0:
        loc = rest[start + 2 : -1]
        depth = 0
        for ch in loc:
            depth += 1 if ch == "(" else -1 if ch == ")" else 0
            if depth < 0:
                break
        if depth == 0:
            return rest[:start], loc
        start = rest.find(" (", start + 1)
    return None, None


def _v8(line: str) -> TraceFrame | None:
    m = _V8_FRAME.match(line)
    if m is None:
        return None
    is_async = m.group("async") is not None
    fn, loc = _split_call(m.group("rest"))
    if loc is None:
        path, lineno, colno = _location(m.group("rest"))
        if lineno is None and path is not None:
            return None
        return TraceFrame(None, path, lineno, colno, is_async, is_native=path is None)
    function = fn or None
    if loc.startswith("eval at "):
        ev = _V8_EVAL.match(loc)
        inner = ev.group("loc") if ev and ev.group("loc") else None
        path, lineno, colno = _location(inner) if inner else (None, None, None)
        return TraceFrame(function, path, lineno, colno, is_async, is_eval=True)
    path, lineno, colno = _location(loc)
    return TraceFrame(function, path, lineno, colno, is_async, is_native=path is None)


def _at_sign(line: str) -> tuple[TraceFrame, TraceFormat] | None:
    m = _AT_FRAME.match(line)
    if m is not None:
        fn, loc = m.group("fn"), m.group("loc")
        is_async = fn.startswith("async*")
        fn = fn.removeprefix("async*") or None
        ev = _GECKO_EVAL.match(loc)
        if ev is not None:
            frame = TraceFrame(fn, ev.group("path"), int(ev.group("line")), None, is_async, is_eval=True)
            return frame, TraceFormat.GECKO
        path, lineno, colno = _location(loc)
        if path is not None and lineno is None and "://" not in path and not path.startswith("/"):
            return None
        fmt = TraceFormat.JSC if loc == "[native code]" or (fn or "").endswith(" code") else TraceFormat.GECKO
        return TraceFrame(fn, path, lineno, colno, is_async, is_native=path is None), fmt
    m = _BARE_URL.match(line)
    if m is not None:
        path, lineno, colno = _location(m.group("loc"))
        return TraceFrame(None, path, lineno, colno), TraceFormat.JSC
    return None


def parse_frame(line: str) -> tuple[TraceFrame, TraceFormat] | None:
    """One frame line of any supported engine, or None when the line is not a frame."""
    frame = _v8(line)
    if frame is not None:
        return frame, TraceFormat.V8
    return _at_sign(line)


def parse_trace(text: str) -> ParsedTrace:
    """Reads a pasted trace. When any line is a V8 frame only V8 frames count, so Node's
    `file:line` + caret header stays in the message; lines after the frames that are not
    frames (Node's `{ code: … }` dumps) are ignored rather than misread."""
    lines = text.splitlines()
    v8 = any(_v8(line) is not None for line in lines)
    message: list[str] = []
    frames: list[TraceFrame] = []
    formats: list[TraceFormat] = []
    for line in lines:
        parsed = parse_frame(line) if line.strip() else None
        if parsed is not None and v8 and parsed[1] is not TraceFormat.V8:
            parsed = None
        if parsed is None:
            if not frames:
                message.append(line)
            continue
        frame, fmt = parsed
        frames.append(frame)
        formats.append(fmt)
    while message and not message[-1].strip():
        message.pop()
    while message and not message[0].strip():
        message.pop(0)
    return ParsedTrace("\n".join(message), tuple(frames), _majority(formats))


def _majority(formats: Iterable[TraceFormat]) -> TraceFormat:
    seen = list(formats)
    if not seen:
        return TraceFormat.UNKNOWN
    if TraceFormat.V8 in seen:
        return TraceFormat.V8
    return TraceFormat.JSC if TraceFormat.JSC in seen else TraceFormat.GECKO


def format_frame(frame: TraceFrame) -> str:
    """`at fn (path:line:col)` as V8 prints it; missing parts are left out."""
    location = frame.abs_path or ("<anonymous>" if frame.is_native or frame.function else "<unknown>")
    if frame.abs_path and frame.lineno is not None:
        location += f":{frame.lineno}"
        if frame.colno is not None:
            location += f":{frame.colno}"
    prefix = "async " if frame.is_async else ""
    if frame.function:
        return f"    at {prefix}{frame.function} ({location})"
    return f"    at {prefix}{location}"


def format_trace(message: str, frames: Sequence[TraceFrame]) -> str:
    """A readable V8-style trace: the message, then one `    at …` line per frame."""
    lines = [message] if message else []
    lines.extend(format_frame(frame) for frame in frames)
    return "\n".join(lines) + "\n"
