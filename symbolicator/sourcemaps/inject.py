"""Debug-ID injection into JS bundles and their maps, byte-compatible with `sentry-cli
sourcemaps inject` 3.x (observed on 3.8.0; see tests/test_inject.py, which runs the real tool).

What 3.x writes, and so what we write:
- **JS with a regular map** (file, `data:application/json;base64,` URL — re-encoded in place —
  or `X.js.map` beside): `"\\n" + SNIPPET + "\\n"`
  is inserted where `PRE_INJECT` stops matching (after a `#!` line, leading comments and
  whitespace, and one `"…";` / `'…';` directive), and `"\\n//# debugId=<id>\\n"` is appended.
  The map gets the inserted lines: mappings at or after the insertion point move two lines down
  (a mid-line insertion splits that line); where no mapping starts exactly at the insertion
  point, the mapping covering it is repeated at the start of the moved text (what rust-sourcemap's
  `adjust_mappings` produces). The map is re-serialized compactly in rust-sourcemap's key
  order (version, file, sources, sourceRoot, sourcesContent, names, mappings, ignoreList,
  debugId); other keys are dropped, as 3.8.0 drops them.
- **JS with an index map**: one line `<"use …" directive of the first code line, repeated> +
  SNIPPET` goes first (after a `#!` line), and every section offset moves one line down.
- **JS without a usable map**: the snippet is appended at the end, before the last
  `sourceMappingURL` comment, then the debugId comment (lines re-written with `\\n`).
- Files already holding a `//# debugId=` comment are skipped.

The ID: 3.x's hashing input could not be reproduced, so we use 2.x's documented rule, which is
deterministic: the first 16 bytes of SHA-1 of the map file's bytes (of the JS file when there
is no map), with the UUIDv5 version and variant bits set. For bundles without a map this is
byte-for-byte 3.8.0's ID too. A map that already has a `debugId` (or 2.x's `debug_id`) keeps
it, and is still shifted and re-serialized, as 3.8.0 does.

One deliberate difference from 3.8.0: it drops `x_google_ignoreList` (rollup's and Chrome's
ignore list) when re-serializing; we keep it, written as `ignoreList`, so frames from
`node_modules` stay out of the app after injection.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson

SNIPPET = (
    '!function(){try{var e="undefined"!=typeof window?window:"undefined"!=typeof global?global:'
    '"undefined"!=typeof globalThis?globalThis:"undefined"!=typeof self?self:{},n=(new e.Error).stack;'
    'n&&(e._sentryDebugIds=e._sentryDebugIds||{},e._sentryDebugIds[n]="__SENTRY_DEBUG_ID__")}catch(e){}}();'
)
PRE_INJECT = re.compile(r"""^(#!.*[\n\r])?(?:\s+|/\*(?:.|\r|\n)*?\*/|//.*[\n\r])*(?:"[^"]*";|'[^']*';[\n\r]?)?""")
_USE_PRAGMA = re.compile(r"""^"use \w+";|^'use \w+';""")
_SHEBANG = re.compile(r"#!.*[\n\r]")
_DEBUG_ID_COMMENT = "//# debugId="
_MAP_COMMENTS = ("//# sourceMappingURL=", "//@ sourceMappingURL=")
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {c: i for i, c in enumerate(_B64)}


def debug_id_from_bytes(data: bytes) -> str:
    """SHA-1 of `data`, first 16 bytes, UUIDv5 version/variant bits: sentry-cli 2.x's rule."""
    raw = bytearray(hashlib.sha1(data).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


def snippet(debug_id: str) -> str:
    return SNIPPET.replace("__SENTRY_DEBUG_ID__", debug_id)


def existing_debug_id(js: str) -> str | None:
    """The ID of a `//# debugId=` comment line, if the file has one."""
    for line in reversed(js.splitlines()):
        if line.startswith(_DEBUG_ID_COMMENT):
            return line[len(_DEBUG_ID_COMMENT) :].strip() or None
    return None


def source_mapping_url(js: str) -> str | None:
    """The last `sourceMappingURL` comment's URL, as sentry-cli picks it."""
    for line in reversed(js.splitlines()):
        if line.startswith(_MAP_COMMENTS):
            return line[len(_MAP_COMMENTS[0]) :].strip() or None
    return None


def map_debug_id(sourcemap: dict[str, Any]) -> str | None:
    value = sourcemap.get("debugId") or sourcemap.get("debug_id")
    return value if isinstance(value, str) and value else None


def _utf16_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def inject_top(js: str, debug_id: str) -> tuple[str, int, int]:
    """JS for a regular map; also the insertion point (0-based line, UTF-16 column)."""
    end = PRE_INJECT.match(js).end()  # type: ignore[union-attr]  # everything is optional
    line = js.count("\n", 0, end)
    col = _utf16_len(js[js.rfind("\n", 0, end) + 1 : end])
    new = f"{js[:end]}\n{snippet(debug_id)}\n{js[end:]}\n{_DEBUG_ID_COMMENT}{debug_id}\n"
    return new, line, col


def inject_index(js: str, debug_id: str) -> str:
    """JS for an index map: one snippet line first, after a `#!` line."""
    shebang = _SHEBANG.match(js)
    at = shebang.end() if shebang else 0
    prefix = ""
    for line in js[at:].split("\n"):
        stripped = line.strip()
        if stripped and not stripped.startswith("//"):
            pragma = _USE_PRAGMA.match(line)
            prefix = pragma.group() if pragma else ""
            break
    return f"{js[:at]}{prefix}{snippet(debug_id)}\n{js[at:]}\n{_DEBUG_ID_COMMENT}{debug_id}\n"


def inject_end(js: str, debug_id: str) -> str:
    """JS without a usable map: snippet at the end, positions untouched."""
    lines = js.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    url_at = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith(_MAP_COMMENTS)), None)
    url_line = lines.pop(url_at) if url_at is not None else None
    out = [*lines, snippet(debug_id)]
    if url_line is not None:
        out.append(url_line)
    out.append(f"{_DEBUG_ID_COMMENT}{debug_id}")
    return "".join(f"{line}\n" for line in out)


def _vlq_values(segment: str) -> list[int]:
    values: list[int] = []
    shift = value = 0
    for char in segment:
        digit = _B64_VALUE[char]
        value += (digit & 31) << shift
        if digit & 32:
            shift += 5
            continue
        values.append(-(value >> 1) if value & 1 else value >> 1)
        shift = value = 0
    return values


def _vlq(values: list[int]) -> str:
    out: list[str] = []
    for number in values:
        value = (-number << 1) | 1 if number < 0 else number << 1
        while True:
            digit = value & 31
            value >>= 5
            out.append(_B64[digit | (32 if value else 0)])
            if not value:
                break
    return "".join(out)


def shift_mappings(mappings: str, line: int, col: int) -> str:
    """`mappings` after inserting `\\n<snippet>\\n` at (line, UTF-16 col) of the generated file.

    VLQ fields other than the generated column are relative to the previous segment across
    lines, so only the first moved segment is re-encoded; a repeated covering segment has
    all-zero deltas. Trailing empty lines are dropped, as rust-sourcemap's encoder does.
    """
    lines = mappings.split(";")
    lines.extend([""] * (line + 1 - len(lines)))
    segments = [s for s in lines[line].split(",") if s]
    before: list[str] = []
    after: list[str] = []
    gen_col = 0
    covering: list[int] | None = None
    for segment in segments:
        values = _vlq_values(segment)
        gen_col += values[0]
        if gen_col < col:
            before.append(segment)
            covering = values
        else:
            after.append(_vlq([gen_col - col, *values[1:]]) if not after else segment)
    if covering is None and any(lines[:line]):
        last = next(s for s in reversed(";".join(lines[:line]).replace(";", ",").split(",")) if s)
        covering = _vlq_values(last)
    starts_at_point = bool(after) and _vlq_values(after[0])[0] == 0
    if covering is not None and not starts_at_point:
        after.insert(0, _vlq([0] * len(covering)))
    shifted = ";".join([*lines[:line], ",".join(before), "", ",".join(after), *lines[line + 1 :]])
    return shifted.rstrip(";")


_REGULAR_KEYS = ("version", "file", "sources", "sourceRoot", "sourcesContent", "names", "mappings")


def _regular(obj: dict[str, Any], mappings: str, debug_id: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _REGULAR_KEYS:
        if key == "mappings":
            out[key] = mappings
        elif key == "names":
            out[key] = obj.get("names") or []
        elif key == "version":
            out[key] = 3
        elif obj.get(key) is not None:
            out[key] = obj[key]
    ignore = obj.get("ignoreList") or obj.get("x_google_ignoreList")
    if ignore:
        out["ignoreList"] = ignore
    if debug_id is not None:
        out["debugId"] = debug_id
    return out


def rewrite_regular_map(obj: dict[str, Any], line: int, col: int, debug_id: str) -> bytes:
    """The map as 3.x re-serializes it after a top insertion at (line, col)."""
    mappings = shift_mappings(str(obj.get("mappings", "")), line, col)
    return orjson.dumps(_regular(obj, mappings, debug_id))


def rewrite_index_map(obj: dict[str, Any], debug_id: str) -> bytes:
    """An index map with every section one line down (the snippet line)."""
    out: dict[str, Any] = {"version": 3}
    if obj.get("file") is not None:
        out["file"] = obj["file"]
    out["sources"] = None
    sections = []
    for section in obj.get("sections") or []:
        offset = section.get("offset") or {}
        entry: dict[str, Any] = {
            "offset": {"line": int(offset.get("line", 0)) + 1, "column": int(offset.get("column", 0))},
            "url": section.get("url"),
        }
        inner = section.get("map")
        if isinstance(inner, dict):
            entry["map"] = _regular(inner, str(inner.get("mappings", "")), None)
        sections.append(entry)
    out["sections"] = sections
    out["debugId"] = debug_id
    return orjson.dumps(out)


def data_url_map(url: str) -> tuple[str, bytes] | None:
    """(`data:…,` prefix, decoded map bytes) of an inline map. Like 3.8.0, only the exact
    `data:application/json;base64,` form counts; others (`;charset=utf-8`) get the no-map path."""
    head, sep, payload = url.partition(",")
    if not sep or head != "data:application/json;base64":
        return None
    try:
        return head + ",", base64.b64decode(payload, validate=False)
    except ValueError:
        return None


def replace_data_url(js: str, new_url: str) -> str:
    """Replaces the last sourceMappingURL comment's URL in place."""
    lines = js.split("\n")
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(_MAP_COMMENTS):
            lines[i] = lines[i][: len(_MAP_COMMENTS[0])] + new_url + ("\r" if lines[i].endswith("\r") else "")
            break
    return "\n".join(lines)


# --- files: finding bundles and their maps, planning, writing --------------------------------

JS_SUFFIXES = (".js", ".cjs", ".mjs")


@dataclass(frozen=True, slots=True)
class Injection:
    """One bundle to rewrite. `new_map` is None when no map file changes (none, inline, kept)."""

    js_path: Path
    debug_id: str
    new_js: bytes
    map_path: Path | None
    new_map: bytes | None
    placement: str
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A bundle left alone: it already has a debug ID, or could not be read."""

    js_path: Path
    debug_id: str | None
    reason: str


def find_bundles(paths: Sequence[Path]) -> list[Path]:
    """The .js/.cjs/.mjs files named or found (recursively, sorted) under `paths`."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in JS_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or directory: {path}")
    return list(dict.fromkeys(found))


def _local_map(js_path: Path, js: str) -> Path | None:
    url = source_mapping_url(js)
    if url is None:
        beside = js_path.with_name(js_path.name + ".map")
        return beside if beside.is_file() else None
    if "://" in url or url.startswith("data:"):
        return None
    candidate = js_path.parent / unquote(url.split("?", 1)[0].split("#", 1)[0])
    return candidate if candidate.is_file() else None


def plan_one(js_path: Path) -> Injection | Ignored:
    """What injecting `js_path` would write (nothing is written)."""
    raw = js_path.read_bytes()
    try:
        js = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Ignored(js_path, None, "not UTF-8 text")
    existing = existing_debug_id(js)
    if existing is not None:
        return Ignored(js_path, existing, "already has a debug id")
    url = source_mapping_url(js)
    inline = data_url_map(url) if url else None
    map_path = None if inline else _local_map(js_path, js)
    map_bytes = inline[1] if inline else (map_path.read_bytes() if map_path else None)
    sourcemap: Any = None
    if map_bytes is not None:
        try:
            sourcemap = orjson.loads(map_bytes)
        except orjson.JSONDecodeError:
            sourcemap = None
    if not isinstance(sourcemap, dict):
        debug_id = debug_id_from_bytes(raw)
        why = "could not find a source map" if map_bytes is None else "source map is not JSON"
        return Injection(js_path, debug_id, inject_end(js, debug_id).encode(), None, None, "end", why)
    kept = map_debug_id(sourcemap)
    debug_id = kept or debug_id_from_bytes(map_bytes or b"")
    warning = "source map already had this debug id" if kept else None
    if "sections" in sourcemap:
        new_js, new_map = inject_index(js, debug_id), rewrite_index_map(sourcemap, debug_id)
    else:
        new_js, line, col = inject_top(js, debug_id)
        new_map = rewrite_regular_map(sourcemap, line, col, debug_id)
    if inline:
        new_js = replace_data_url(new_js, inline[0] + base64.b64encode(new_map).decode("ascii"))
        return Injection(js_path, debug_id, new_js.encode(), None, None, "top", warning)
    return Injection(js_path, debug_id, new_js.encode(), map_path, new_map, "top", warning)


def plan(paths: Sequence[Path]) -> list[Injection | Ignored]:
    return [plan_one(path) for path in find_bundles(paths)]


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.inject-tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def apply(injection: Injection) -> None:
    """Writes the map, then the bundle, each atomically (temporary file + rename), so no
    reader ever sees half a file."""
    if injection.map_path is not None and injection.new_map is not None:
        _write_atomically(injection.map_path, injection.new_map)
    _write_atomically(injection.js_path, injection.new_js)
