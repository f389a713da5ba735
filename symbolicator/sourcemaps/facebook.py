"""Metro's and Hermes' extensions of a source map: function maps and bytecode function offsets.

React Native maps carry what a minified file cannot tell us:

- `x_facebook_sources[i]` is `null` or `[function map, …]` for `sources[i]`; a function map is
  `{"names": [...], "mappings": "..."}` naming the function that encloses each range of the
  *original* source. It is decoded as `metro-symbolicate`'s `SourceMetadataMapConsumer` does:
  segments are VLQ `[column delta, name delta, line delta]`, the column restarting at 0 after
  every `;`, lines (1-based) only moving by their delta; the name at an original position is
  that of the last segment at or before it. Metro writes them for every module and they survive
  Hermes compilation (`composeSourceMaps` copies them), so a frame is named as Metro's own
  symbolicator names it (`CartStore#total`, `items.reduce$argument_0`), even in bytecode.
- `x_hermes_function_offsets` maps a bytecode segment (the frame's line − 1) to the offsets at
  which each compiled function starts; a Hermes frame's column is a bytecode offset (+ 1, as
  Sentry's React Native SDK sends it), which must fall inside one of those functions. `hermesc
  -commonjs` splits a program into segments (a `metadata.json` naming the modules of each; segment
  N is written to `<out>.N`, segment 0 to `<out>`) and writes one map for all of them: its line
  N + 1 holds segment N's mappings, its key "N" that segment's offsets. The bundle at hand is
  segment 0: only its offsets are checked against its size.

A field of the wrong shape makes the whole map malformed (`MalformedSourceMap`), which each frame
reports as `malformed_sourcemap`, as Symbolicator does for maps its decoder refuses.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from symbolicator.errors import MalformedSourceMap

HERMES_MAGIC = bytes.fromhex("c61fbc03c103191f")  # Hermes bytecode file magic (little-endian 0x1F1903C103BC1FC6)
_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class FunctionMap:
    """One source's function ranges: `keys[i]` = original (line1 << 32 | column0), `names[i]` its function."""

    keys: tuple[int, ...]
    names: tuple[str, ...]

    def name_at(self, line1: int, column0: int) -> str | None:
        """The function enclosing a 1-based original line and 0-based column (metro-symbolicate's rule)."""
        i = bisect_right(self.keys, (line1 << 32) | column0) - 1
        return self.names[i] if i >= 0 else None


def is_hermes_bytecode(data: bytes | None) -> bool:
    return data is not None and data[:8] == HERMES_MAGIC


def _vlq(segment: str, where: str) -> list[int]:
    values: list[int] = []
    value = shift = 0
    for ch in segment:
        digit = _B64.get(ch)
        if digit is None:
            raise MalformedSourceMap(f"{where}: invalid base64 VLQ character {ch!r}")
        value |= (digit & 31) << shift
        if digit & 32:
            shift += 5
            if shift > 30:
                raise MalformedSourceMap(f"{where}: VLQ value too large")
            continue
        values.append(-(value >> 1) if value & 1 else value >> 1)
        value = shift = 0
    if shift:
        raise MalformedSourceMap(f"{where}: VLQ value cut short")
    return values


def decode_function_map(raw: Any, where: str) -> FunctionMap:
    """A `{"names", "mappings"}` object, decoded; MalformedSourceMap for any other shape."""
    if not isinstance(raw, dict):
        raise MalformedSourceMap(f"{where} must be an object with `names` and `mappings`")
    names, mappings = raw.get("names"), raw.get("mappings")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not isinstance(mappings, str):
        raise MalformedSourceMap(f"{where} needs `names` (array of strings) and `mappings` (string)")
    keys: list[int] = []
    found: list[str] = []
    line, name = 1, 0
    for group in mappings.split(";"):
        column = 0
        for segment in group.split(","):
            if not segment:
                continue
            values = _vlq(segment, where)
            if len(values) not in (2, 3):
                raise MalformedSourceMap(f"{where}: a segment has {len(values)} fields, not 2 or 3")
            column += values[0]
            name += values[1]
            line += values[2] if len(values) == 3 else 0
            if not (0 <= column <= _MAX and 1 <= line <= _MAX and 0 <= name < len(names)):
                raise MalformedSourceMap(f"{where}: a segment points outside the source or the names")
            keys.append((line << 32) | column)
            found.append(names[name])
    if any(b < a for a, b in pairwise(keys)):
        order = sorted(range(len(keys)), key=keys.__getitem__)
        keys, found = [keys[i] for i in order], [found[i] for i in order]
    return FunctionMap(tuple(keys), tuple(found))


def function_maps(obj: dict[str, Any], n_sources: int) -> list[FunctionMap | None]:
    """`x_facebook_sources` of a regular map, aligned with its `sources` (None: no function map)."""
    value = obj.get("x_facebook_sources")
    if value is None:
        return [None] * n_sources
    if not isinstance(value, list):
        raise MalformedSourceMap("`x_facebook_sources` must be an array")
    out: list[FunctionMap | None] = []
    for i in range(n_sources):
        metadata = value[i] if i < len(value) else None
        if metadata is None:
            out.append(None)
        elif not isinstance(metadata, list):
            raise MalformedSourceMap(f"`x_facebook_sources[{i}]` must be null or an array")
        elif not metadata or metadata[0] is None:
            out.append(None)
        else:
            out.append(decode_function_map(metadata[0], f"`x_facebook_sources[{i}][0]`"))
    return out


def hermes_offsets(obj: dict[str, Any]) -> dict[int, tuple[int, ...]] | None:
    """`x_hermes_function_offsets` as {segment: ascending function start offsets}; None when absent."""
    value = obj.get("x_hermes_function_offsets")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MalformedSourceMap("`x_hermes_function_offsets` must be an object")
    out: dict[int, tuple[int, ...]] = {}
    for key, offsets in value.items():
        if not (isinstance(key, str) and key.isascii() and key.isdigit() and int(key) <= _MAX) or not isinstance(
                offsets, list):
            raise MalformedSourceMap("`x_hermes_function_offsets` maps segment numbers to arrays")
        if not all(type(o) is int and 0 <= o <= _MAX for o in offsets) or list(offsets) != sorted(offsets):
            raise MalformedSourceMap(f"`x_hermes_function_offsets[{key}]` must hold ascending bytecode offsets")
        out[int(key)] = tuple(offsets)
    return out


def check_bytecode(offsets: dict[int, tuple[int, ...]] | None, bytecode: bytes | None) -> None:
    """A bytecode bundle needs a map with function offsets, and they must lie inside it."""
    if not is_hermes_bytecode(bytecode):
        return
    assert bytecode is not None
    if not offsets:
        raise MalformedSourceMap("the bundle is Hermes bytecode, but its map has no `x_hermes_function_offsets`")
    # The bundle is segment 0; other segments are other files (`app.hbc.1`), their offsets their own.
    past = [o for o in offsets.get(0, ()) if o >= len(bytecode)]
    if past:
        raise MalformedSourceMap(
            f"`x_hermes_function_offsets` has offsets past the end of the {len(bytecode)}-byte bytecode ({past[0]})"
        )


def function_of(offsets: Sequence[int], offset: int) -> int:
    """Start of the compiled function holding bytecode `offset`, or -1 before the first one."""
    i = bisect_right(offsets, offset) - 1
    return offsets[i] if i >= 0 else -1
