"""`symbolicator resolve-js`: offline source-map lookups (API.md §4).

The map is converted into a sourcemap cache in memory and every position is
answered from it, so this command exercises exactly what the service does.
With `--minified`, the map is found through the file's last `sourceMappingURL`
comment (a `data:` URL or a path beside it), and the minified source also
gives original function names. With `--sourcemap` alone, the minified file is
looked for beside the map (`app.js` for `app.js.map`) for the same purpose.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass

import orjson

from symbolicator.errors import FormatError, SymbolicatorError
from symbolicator.sourcemaps.smcache import SmCache, build_from_sources
from symbolicator.sourcemaps.sourcemap import Token
from symbolicator.sourcemaps.urls import decode_data_url, find_source_mapping_url, is_data_url, resolve_map_location

_POSITION = re.compile(r"^\s*(\d+)(?::(\d+))?\s*$")


class UsageError(SymbolicatorError):
    """Bad command-line input (exit status 2)."""


@dataclass(frozen=True, slots=True)
class Position:
    """1-based line and 1-based UTF-16 column; column None when the input had none."""

    line: int
    column: int | None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "resolve-js",
        help="look up minified JS positions in a source map",
        description="Resolve LINE:COL positions (1-based, columns in UTF-16 code units as browsers print them) "
        "of a minified file to original source positions. No positions: read one per line from stdin.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--sourcemap", metavar="M", help="the source map file")
    which.add_argument("--minified", metavar="J", help="the minified file; its map is found through sourceMappingURL")
    parser.add_argument("--json", action="store_true", help="print one JSON object per position (NDJSON)")
    parser.add_argument("--no-scopes", action="store_true", help="skip original function names (faster on huge files)")
    parser.add_argument("positions", nargs="*", metavar="LINE:COL")
    return parser


def parse_position(text: str) -> Position:
    m = _POSITION.match(text)
    if m is None:
        raise UsageError(f"invalid position {text.strip()!r}: expected LINE:COL (1-based)")
    return Position(int(m[1]), int(m[2]) if m[2] is not None else None)


def _read_text(path: str) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def load(sourcemap: str | None, minified: str | None) -> tuple[bytes, str, str | None]:
    """(map bytes, map location for joining sources, minified source or None)."""
    if minified is not None:
        source = _read_text(minified)
        url = find_source_mapping_url(source)
        if url is None:
            raise FormatError(f"{minified}: no sourceMappingURL comment, so no source map (missing_sourcemap)")
        if is_data_url(url):
            return decode_data_url(url), minified, source
        location = resolve_map_location(minified, url)
        if re.match(r"^[a-z][a-z0-9+.-]*://", location, re.IGNORECASE):
            raise FormatError(
                f"{minified}: the source map is at {location}; resolve-js reads only files and data: URLs"
            )
        location = re.split(r"[?#]", location, maxsplit=1)[0]
        with open(location, "rb") as f:
            return f.read(), location, source
    assert sourcemap is not None
    with open(sourcemap, "rb") as f:
        data = f.read()
    beside = sourcemap[:-4] if sourcemap.endswith(".map") else None
    minified_source = _read_text(beside) if beside and os.path.isfile(beside) else None
    return data, sourcemap, minified_source


def answer(cache: SmCache, pos: Position) -> dict[str, object]:
    """The API.md §4 object for one position."""
    token: Token | None = None
    error: str | None = None
    if pos.column is None:
        error = "no_column"
    else:
        token = cache.lookup(pos.line, pos.column)
        if token is None:
            error = "invalid_location"
    return {
        "line": pos.line,
        "column": pos.column,
        "source": token.source if token else None,
        "original_line": token.original_line if token else None,
        "original_column": token.original_column if token else None,
        "name": token.name if token else None,
        "function": token.function if token else None,
        "error": error,
    }


def _human(result: dict[str, object]) -> str:
    where = f"{result['line']}:{result['column'] if result['column'] is not None else '?'}"
    if result["error"]:
        return f"{where} -> ?? ({result['error']})"
    text = f"{where} -> {result['source']}:{result['original_line']}:{result['original_column']}"
    if result["function"]:
        text += f" in {result['function']}"
    if result["name"]:
        text += f" (name: {result['name']})"
    return text


def run(args: argparse.Namespace) -> int:
    try:
        texts = args.positions or [line for line in sys.stdin if line.strip()]
        positions = [parse_position(t) for t in texts]
    except UsageError as exc:
        print(f"symbolicator resolve-js: error: {exc}", file=sys.stderr)
        return 2
    data, location, minified = load(args.sourcemap, args.minified)
    cache = SmCache.from_bytes(build_from_sources(data, minified, with_scopes=not args.no_scopes), map_url=location)
    out = sys.stdout
    for pos in positions:
        result = answer(cache, pos)
        out.write(orjson.dumps(result).decode() + "\n" if args.json else _human(result) + "\n")
    out.flush()
    return 0
