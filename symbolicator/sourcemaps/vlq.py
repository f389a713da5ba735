"""Base64 VLQ decoding of a source map's `mappings`, one array operation at a time.

A 10 MB map holds millions of VLQ digits; a Python loop over them costs seconds,
so every step here works on whole NumPy arrays:

1. map each byte through a 256-entry table (digit value, separator, or invalid);
2. a digit without the continuation bit ends a value; most values are one digit,
   so values start as their last digit and only the multi-digit ones are widened,
   one digit per step (at most 7 steps: 32-bit values);
3. a value opens a segment when the byte before its first digit is a separator;
   the line of a segment is the number of `;` before it (`searchsorted`);
4. deltas become absolute numbers with `cumsum`: the generated column restarts
   on every line, while source, original line/column and name run across the
   whole string (Source Map v3 §"mappings").

The string is decoded in chunks of about 1 MB cut after a separator, carrying
the running values from chunk to chunk. That bounds the temporaries (a 4 MB
`mappings` would otherwise need ~150 MB of int64 scratch) and lets the allocator
reuse warm pages: on a fresh process, page faults cost more than the arithmetic.
Results are int32: positions and indices past 2^31 are refused as malformed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from symbolicator.errors import MalformedSourceMap

NONE = -1
"""Marks a missing field (a 1-field segment has no source, a 4-field one no name)."""

_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_COMMA, _SEMICOLON, _INVALID = 64, 65, 255
_TABLE = np.full(256, _INVALID, dtype=np.uint8)
_TABLE[np.frombuffer(_B64, dtype=np.uint8)] = np.arange(64, dtype=np.uint8)
_TABLE[ord(",")] = _COMMA
_TABLE[ord(";")] = _SEMICOLON

_MAX_DIGITS = 7
_MAX_MAGNITUDE = 2**31 - 1
_CHUNK = 1 << 17
_FIELDS = 6

I32 = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class Segments:
    """Decoded segments in string order; all arrays have one int32 entry per segment.

    `gen_line` and `gen_col` are 0-based (columns in UTF-16 code units, as the
    spec counts them); `src`, `src_line`, `src_col` and `name` are absolute
    (0-based) values or `NONE`.
    """

    gen_line: I32
    gen_col: I32
    src: I32
    src_line: I32
    src_col: I32
    name: I32

    def __len__(self) -> int:
        return int(self.gen_line.shape[0])


@dataclass(slots=True)
class _State:
    """What carries from one chunk to the next: the running absolute values."""

    line: int = 0
    col: int = 0
    src: int = 0
    src_line: int = 0
    src_col: int = 0
    name: int = 0


def decode_mappings(mappings: str | bytes) -> Segments:
    """Decode a whole `mappings` string; raise MalformedSourceMap on any defect.

    Defects: a character outside base64 and `,;`, a value cut off by a
    separator or the end, a value wider than 32 bits (VLQ overflow), a
    segment with 2, 3 or more than 5 fields, a negative or too large position.
    """
    raw = mappings.encode("utf-8") if isinstance(mappings, str) else mappings
    data = np.frombuffer(raw, dtype=np.uint8)
    capacity = raw.count(b",") + raw.count(b";") + 1
    out = np.empty((_FIELDS, capacity), dtype=np.int32)
    state = _State()
    count = 0
    start = 0
    while start < data.size:
        stop = _chunk_end(raw, start)
        codes = _TABLE[data[start:stop]]
        invalid = np.flatnonzero(codes == _INVALID)
        if invalid.size:
            pos = start + int(invalid[0])
            char = raw[pos : pos + 1].decode("latin-1")
            raise MalformedSourceMap(f"invalid base64 character {char!r} at offset {pos} of mappings")
        count = _decode_chunk(codes, start, state, out, count)
        start = stop
    return Segments(*(out[k, :count] for k in range(_FIELDS)))


def _chunk_end(raw: bytes, start: int) -> int:
    if start + _CHUNK >= len(raw):
        return len(raw)
    at = start + _CHUNK - 1
    found = [i for i in (raw.find(b",", at), raw.find(b";", at)) if i >= 0]
    return min(found) + 1 if found else len(raw)


def _decode_chunk(codes: npt.NDArray[np.uint8], base: int, state: _State, out: I32, count: int) -> int:
    cont = (codes >> 5) == 1
    cut = np.flatnonzero(cont[:-1] & (codes[1:] >= _COMMA))
    if cut.size or cont[-1]:
        offset = base + (int(cut[0]) if cut.size else codes.size - 1)
        raise MalformedSourceMap(
            f"VLQ value cut off at offset {offset} of mappings (continuation bit before a separator or the end)"
        )
    semicolons = np.flatnonzero(codes == _SEMICOLON)
    ends = np.flatnonzero(codes < 32)
    if ends.size == 0:
        state.line += semicolons.size
        state.col = 0 if semicolons.size else state.col
        return count

    values = codes[ends].astype(np.int64)
    starts = ends.copy()
    active = np.flatnonzero(cont[ends - 1])
    pos = ends[active] - 1
    for _ in range(_MAX_DIGITS - 1):
        if active.size == 0:
            break
        values[active] = (values[active] << 5) | (codes[pos] & 31)
        starts[active] = pos
        more = cont[pos - 1]
        active = active[more]
        pos = pos[more] - 1
    if active.size or int(values.max()) >> 1 > _MAX_MAGNITUDE:
        at = int(starts[active[0]]) if active.size else int(starts[np.argmax((values >> 1) > _MAX_MAGNITUDE)])
        raise MalformedSourceMap(f"VLQ overflow at offset {base + at} of mappings (value wider than 32 bits)")
    # Sign bit s, magnitude m: (m ^ -s) + s is m or -m, without a mask (a masked negate costs 3×).
    sign = values & 1
    values >>= 1
    values ^= -sign
    values += sign
    del sign

    opens = codes[starts - 1] >= _COMMA
    opens[starts == 0] = True
    first = np.flatnonzero(opens)
    nfields = np.diff(first, append=ends.size)
    bad = np.flatnonzero((nfields == 2) | (nfields == 3) | (nfields > 5))
    if bad.size:
        seg = int(bad[0])
        raise MalformedSourceMap(
            f"segment at offset {base + int(starts[first[seg]])} of mappings has {int(nfields[seg])} fields"
            " (expected 1, 4 or 5)"
        )
    n = first.size
    gen_line = np.searchsorted(semicolons, starts[first]) + state.line

    col_delta = values[first]
    running = np.cumsum(col_delta)
    new_line = np.ones(n, dtype=bool)
    new_line[1:] = gen_line[1:] != gen_line[:-1]
    line_start = np.maximum.accumulate(np.where(new_line, np.arange(n), 0))
    gen_col = running - (running - col_delta)[line_start]
    gen_col[gen_line == state.line] += state.col

    rows = out[:, count : count + n]
    rows[0] = gen_line
    _store(rows[1], gen_col, base, "generated column")
    rows[2:] = NONE
    has_src = nfields >= 4
    if has_src.any():
        every = bool(has_src.all())  # the usual case: a plain copy, not a masked one
        f = first if every else first[has_src]
        for row, field, what in (
            (2, "src", "source index"),
            (3, "src_line", "original line"),
            (4, "src_col", "original column"),
        ):
            absolute = np.cumsum(values[f + row - 1])
            absolute += getattr(state, field)
            setattr(state, field, int(absolute[-1]))
            _store(rows[row], absolute, base, what, None if every else has_src)
        has_name = nfields == 5
        if has_name.any():
            absolute = np.cumsum(values[first[has_name] + 4]) + state.name
            state.name = int(absolute[-1])
            _store(rows[5], absolute, base, "name index", has_name)

    state.line += semicolons.size
    state.col = int(gen_col[-1]) if int(gen_line[-1]) == state.line else 0
    return count + n


def _store(
    row: I32, absolute: npt.NDArray[np.int64], base: int, what: str, where: npt.NDArray[np.bool_] | None = None
) -> None:
    low, high = int(absolute.min()), int(absolute.max())
    if low < 0 or high > _MAX_MAGNITUDE:
        raise MalformedSourceMap(
            f"mappings near offset {base} hold a {what} of {low if low < 0 else high}, outside 0..2^31-1"
        )
    if where is None:
        row[:] = absolute
    else:
        row[where] = absolute
