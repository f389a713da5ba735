"""`symbolicator resolve-js`: offline source-map lookups (docs/cli.md).

The map is converted into a sourcemap cache, kept in the offline cache
(`commands/offline_cache.py`) so that the next run on the same files only opens
it, and every position is answered from it, exactly as the service does.
With `--minified`, the map is found through the file's last `sourceMappingURL`
comment (a `data:` URL or a path beside it), and the minified source also
gives original function names. With `--sourcemap` alone, the minified file is
looked for beside the map (`app.js` for `app.js.map`) for the same purpose.

Every input gets one answer, in order: a position that cannot be read answers
`invalid_position`, is reported on stderr, and makes the exit status 1.
Engines are imported in `run`, never at module level (see `symbolicator/cli.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from symbolicator.commands import offline_cache
from symbolicator.commands.messages import json_error
from symbolicator.errors import FormatError, JsErrorKind

if TYPE_CHECKING:
    from symbolicator.sourcemaps.smcache import SmCache

_POSITION = re.compile(r"^\s*(\d+)(?::(\d+))?\s*$")
_REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Position:
    """1-based line and 1-based UTF-16 column; column None when the input had none."""

    line: int
    column: int | None


@dataclass(frozen=True, slots=True)
class Inputs:
    """The files a lookup needs: the map (None when it is a `data:` URL inside `minified`),
    the location sources are joined against, and the minified file when there is one."""

    map_path: Path | None
    location: str
    minified: Path | None
    embedded: bytes | None = None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "resolve-js",
        help="look up minified JS positions in a source map",
        description="Resolve LINE:COL positions (1-based, columns in UTF-16 code units as browsers print them) "
        "of a minified file to original source positions. No positions: read one per line from stdin. "
        "Every input gets one answer, in order; one that is not LINE:COL answers invalid_position and "
        "makes the exit status 1. A column past the end of its line answers the line's last mapping.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--sourcemap", metavar="M", help="the source map file")
    which.add_argument("--minified", metavar="J", help="the minified file; its map is found through sourceMappingURL")
    parser.add_argument("--json", action="store_true", help="print one JSON object per position (NDJSON)")
    parser.add_argument("--no-scopes", action="store_true", help="skip original function names (faster on huge files)")
    offline_cache.add_arguments(parser)
    parser.add_argument("positions", nargs="*", metavar="LINE:COL")
    return parser


def parse_position(text: str) -> Position | None:
    m = _POSITION.match(text)
    if m is None:
        return None
    return Position(int(m[1]), int(m[2]) if m[2] is not None else None)


def _read_text(path: Path) -> str:
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def locate(sourcemap: str | None, minified: str | None) -> Inputs:
    """Which files answer: the map named, or the one the minified file points at."""
    from symbolicator.sourcemaps.urls import (
        decode_data_url,
        find_source_mapping_url,
        is_data_url,
        resolve_map_location,
    )

    if minified is not None:
        url = find_source_mapping_url(_read_text(Path(minified)))
        if url is None:
            raise FormatError(f"{minified}: no sourceMappingURL comment, so no source map (missing_sourcemap)")
        if is_data_url(url):
            try:
                embedded = decode_data_url(url)
            except FormatError as exc:
                raise FormatError(f"{minified}: its inline source map cannot be read: {exc}") from None
            return Inputs(None, minified, Path(minified), embedded)
        location = resolve_map_location(minified, url)
        if _REMOTE.match(location):
            raise FormatError(
                f"{minified}: the source map is at {location}; resolve-js reads only files and data: URLs"
            )
        location = re.split(r"[?#]", location, maxsplit=1)[0]
        return Inputs(Path(location), location, Path(minified))
    assert sourcemap is not None
    beside = sourcemap[:-4] if sourcemap.endswith(".map") else None
    return Inputs(Path(sourcemap), sourcemap, Path(beside) if beside and os.path.isfile(beside) else None)


def open_cache(inputs: Inputs, with_scopes: bool, cache: offline_cache.OfflineCache | None = None) -> SmCache:
    """The sourcemap cache of these inputs: from the offline cache, or converted now."""
    from symbolicator.sourcemaps.smcache import SOURCEMAP_CACHE_VERSION, SmCache

    def build() -> bytearray:
        from symbolicator.sourcemaps.smcache import build_from_sources

        data = inputs.embedded
        if data is None:
            assert inputs.map_path is not None
            data = inputs.map_path.read_bytes()
        source = _read_text(inputs.minified) if with_scopes and inputs.minified is not None else None
        try:
            return build_from_sources(data, source, with_scopes=with_scopes)
        except FormatError as exc:
            why = json_error(exc) or str(exc)
            raise FormatError(f"{inputs.map_path or inputs.minified}: not a valid source map: {why}") from None

    if cache is None:
        return SmCache.from_bytes(build(), map_url=inputs.location)
    ident = offline_cache.identity([inputs.map_path, inputs.minified], "scopes" if with_scopes else "no-scopes")
    made = cache.converted("cli-smcache", SOURCEMAP_CACHE_VERSION, ident, build)
    if isinstance(made, Path):
        return SmCache.open(made, map_url=inputs.location)
    return SmCache.from_bytes(made, map_url=inputs.location)


def answer(cache: SmCache, pos: Position | None) -> dict[str, object]:
    """The docs/cli.md object for one position (`invalid_position` for an input that is not one)."""
    token = None
    error: str | None = None
    if pos is None:
        error = "invalid_position"
    elif pos.column is None:
        error = JsErrorKind.NO_COLUMN.value
    else:
        token = cache.lookup(pos.line, pos.column)
        if token is None:
            error = JsErrorKind.INVALID_LOCATION.value
    return {
        "line": pos.line if pos else None,
        "column": pos.column if pos else None,
        "source": token.source if token else None,
        "original_line": token.original_line if token else None,
        "original_column": token.original_column if token else None,
        "name": token.name if token else None,
        "function": token.function if token else None,
        "error": error,
    }


def _human(text: str, result: dict[str, object]) -> str:
    if result["line"] is None:
        return f"{text} -> ?? ({result['error']})"
    where = f"{result['line']}:{result['column'] if result['column'] is not None else '?'}"
    if result["error"]:
        return f"{where} -> ?? ({result['error']})"
    line = f"{where} -> {result['source']}:{result['original_line']}:{result['original_column']}"
    if result["function"]:
        line += f" in {result['function']}"
    if result["name"]:
        line += f" (name: {result['name']})"
    return line


def run(args: argparse.Namespace) -> int:
    inputs = locate(args.sourcemap, args.minified)
    cache = offline_cache.OfflineCache.from_args(args)
    try:
        smcache = open_cache(inputs, not args.no_scopes, cache)
    finally:
        cache.close()
    texts = args.positions or (line for line in sys.stdin if line.strip())
    out = sys.stdout
    status = 0
    for text in texts:
        text = text.strip()
        pos = parse_position(text)
        if pos is None:
            print(f"symbolicator resolve-js: error: invalid position {text!r}: expected LINE:COL (1-based)",
                  file=sys.stderr)
            status = 1
        result = answer(smcache, pos)
        out.write(json.dumps(result, ensure_ascii=False) + "\n" if args.json else _human(text, result) + "\n")
        out.flush()
    return status
