"""A plain, one-character-at-a-time VLQ codec: the oracle the array decoder is checked against.

`symbolicator.sourcemaps.vlq` decodes whole NumPy arrays at once (chunks, carried state,
backward digit walks), which is fast and easy to get subtly wrong. This module reads the
Source Map v3 rules the obvious way, so the `vlq` target can compare the two on every input:
both must reject the same strings and agree on every segment of the others. It is far too
slow for real maps, which is why it lives here and not in the package.

The rules, as the engine documents them: characters are base64 digits or `,`/`;`; a digit
with bit 5 set continues its value; at most 7 digits and a magnitude below 2^31 per value;
a segment holds 1, 4 or 5 values (empty segments are skipped); the generated column restarts
on every line, the other fields run across the whole string, and every absolute value must
stay within 0..2^31-1.
"""

from __future__ import annotations

from collections.abc import Sequence

B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_DIGIT = {c: i for i, c in enumerate(B64)}
MAX_DIGITS = 7
MAX = 2**31 - 1
NONE = -1

Row = tuple[int, int, int, int, int, int]
"""(gen_line, gen_col, src, src_line, src_col, name), 0-based, NONE for a missing field."""


def encode_value(value: int) -> str:
    """One signed value as base64 VLQ (any size: over-long values are how overflow is tested)."""
    rest = (-value << 1) | 1 if value < 0 else value << 1
    out = []
    while True:
        digit = rest & 31
        rest >>= 5
        out.append(B64[digit | (32 if rest else 0)])
        if not rest:
            return bytes(out).decode("ascii")


def encode(lines: Sequence[Sequence[Sequence[int]]]) -> str:
    """Lines of segments of deltas (exactly as written in `mappings`) → the mappings string."""
    return ";".join(",".join("".join(encode_value(v) for v in seg) for seg in line) for line in lines)


def decode(raw: bytes) -> list[Row] | None:
    """Every segment in string order, or None when the engine must reject the string."""
    rows: list[Row] = []
    line = col = src = src_line = src_col = name = 0
    values: list[int] = []
    value = shift = digits = 0
    for i in range(len(raw) + 1):
        c = raw[i] if i < len(raw) else None
        if c is None or c in b",;":
            if digits:
                return None  # a value cut off by a separator or the end
            if values:
                if len(values) not in (1, 4, 5):
                    return None
                col += values[0]
                present = [col]
                row_src = row_line = row_col = row_name = NONE
                if len(values) >= 4:
                    src, src_line, src_col = src + values[1], src_line + values[2], src_col + values[3]
                    row_src, row_line, row_col = src, src_line, src_col
                    present += [src, src_line, src_col]
                if len(values) == 5:
                    name += values[4]
                    row_name = name
                    present.append(name)
                if any(not 0 <= v <= MAX for v in present):
                    return None
                rows.append((line, col, row_src, row_line, row_col, row_name))
                values = []
            if c == ord(";"):
                line, col = line + 1, 0
            continue
        digit = _DIGIT.get(c)
        if digit is None:
            return None
        digits += 1
        if digits > MAX_DIGITS:
            return None
        value |= (digit & 31) << shift
        shift += 5
        if not digit & 32:
            magnitude = value >> 1
            if magnitude > MAX:
                return None
            values.append(-magnitude if value & 1 else magnitude)
            value = shift = digits = 0
    return rows
