"""Source context: the lines around a frame, original or minified.

Lines are split on JavaScript's line terminators (`\\r\\n`, `\\n`, `\\r`, U+2028,
U+2029), the ones engines count when they report a line number; Python's
`str.splitlines` would also split on form feeds and other separators and shift
every line after them.

Columns are UTF-16 code units, as engines and source maps count them. A minified
line is usually one enormous line, so it is cut to a window around the column
the way Sentry does (`{snip}` marks a cut): about 140 units, the column 60 units
in. The window is computed in UTF-16 units, then mapped back to Python string
indices, so non-ASCII text and astral characters (emoji) land where the browser
said.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np

_LINE_BREAK = re.compile("\r\n|[\n\r\u2028\u2029]")
_MAX_LINE = 150
_WINDOW = 140
_LEAD = 60
_SNIP = "{snip}"


@dataclass(frozen=True, slots=True)
class Context:
    """`pre_context` and `post_context` hold up to n lines each, nearest last/first."""

    pre_context: list[str]
    context_line: str
    post_context: list[str]


def split_lines(text: str) -> list[str]:
    """Split on JavaScript line terminators; a trailing terminator adds no line."""
    if "\r" in text or "\u2028" in text or "\u2029" in text:
        lines = _LINE_BREAK.split(text)
    else:
        lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines


class LineIndex(Sequence[str]):
    """The lines of a text by offsets, not copies: `split_lines` semantics, a fraction of the memory.

    A 8 MB source split into 200,000 strings costs ~20 MB; two int arrays cost 3 MB,
    and a frame only ever needs eleven lines.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        if "\r" in text or "\u2028" in text or "\u2029" in text:
            spans = [(m.start(), m.end()) for m in _LINE_BREAK.finditer(text)]
            ends, starts = (
                np.array([a for a, _ in spans], dtype=np.int64),
                np.array([b for _, b in spans], dtype=np.int64),
            )
        else:
            if text.isascii():
                ends = np.flatnonzero(np.frombuffer(text.encode("ascii"), dtype=np.uint8) == 10)
            else:
                found, find, at = array("q"), text.find, text.find("\n")
                while at >= 0:
                    found.append(at)
                    at = find("\n", at + 1)
                ends = np.frombuffer(found, dtype=np.int64) if found else np.zeros(0, dtype=np.int64)
            starts = ends + 1
        starts = np.concatenate(([0], starts)).astype(np.int64)
        ends = np.concatenate((ends, [len(text)])).astype(np.int64)
        if starts.size > 1 and starts[-1] == len(text):
            starts, ends = starts[:-1], ends[:-1]
        self._starts, self._ends = array("q", starts.tobytes()), array("q", ends.tobytes())
        self._ascii = text.isascii()

    def trimmed(self, index: int, column16: int) -> str:
        """`trim_line(self[index], column16)` without copying the whole line first.

        A bundle's line can be megabytes and a frame shows eleven of them; in ASCII text a
        UTF-16 column is a character index, so the window is sliced straight from the text.
        """
        if not self._ascii:
            return trim_line(self[index], column16)
        begin, length = self._starts[index], self._ends[index] - self._starts[index]
        if length <= _MAX_LINE:
            return self._text[begin : begin + length]
        start, end = _window(length, column16)
        return _snipped(self._text[begin + start : begin + end], start, end, length)

    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self._text[self._starts[index] : self._ends[index]]


def context_from_lines(lines: Sequence[str], lineno: int, n: int = 5) -> Context | None:
    """Context of 1-based `lineno`, or None when the line does not exist."""
    if lineno < 1 or lineno > len(lines):
        return None
    i = lineno - 1
    return Context(list(lines[max(0, i - n) : i]), lines[i], list(lines[i + 1 : i + 1 + n]))


def utf16_length(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def utf16_to_index(text: str, col16: int) -> int:
    """Python index of the character at UTF-16 offset `col16` (clamped to the end).

    An offset inside a surrogate pair rounds up to the next character.
    """
    if text.isascii():
        return min(max(col16, 0), len(text))
    units = 0
    for i, ch in enumerate(text):
        if units >= col16:
            return i
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(text)


def trim_line(line: str, column16: int) -> str:
    """Cut a long line to a window around `column16` (UTF-16), Sentry's way."""
    length = utf16_length(line)
    if length <= _MAX_LINE:
        return line
    start, end = _window(length, column16)
    return _snipped(line[utf16_to_index(line, start) : utf16_to_index(line, end)], start, end, length)


def _window(length: int, column16: int) -> tuple[int, int]:
    """The [start, end) UTF-16 window `trim_line` keeps of a line longer than `_MAX_LINE`."""
    col = min(max(column16, 0), length)
    start = max(col - _LEAD, 0)
    if start < 5:
        start = 0
    end = min(start + _WINDOW, length)
    if end > length - 5:
        end = length
    if end == length:
        start = max(end - _WINDOW, 0)
    return start, end


def _snipped(text: str, start: int, end: int, length: int) -> str:
    if end < length:
        text = f"{text} {_SNIP}"
    if start > 0:
        text = f"{_SNIP} {text}"
    return text


def minified_context(source: str | Sequence[str], lineno: int, colno: int, n: int = 5) -> Context | None:
    """Context of a minified file at 1-based `lineno` / 1-based UTF-16 `colno`.

    Every line is trimmed around the same column, so that neighbouring lines of a
    one-line-per-module bundle stay readable.
    """
    lines = split_lines(source) if isinstance(source, str) else source
    if lineno < 1 or lineno > len(lines) or (len(lines) == 1 and not lines[0]):
        return None  # an empty file (Sentry stores Hermes bytecode so) has no line 1, as in Symbolicator
    i, col = lineno - 1, colno - 1
    trim = lines.trimmed if isinstance(lines, LineIndex) else lambda k, c: trim_line(lines[k], c)
    return Context(
        [trim(k, col) for k in range(max(0, i - n), i)],
        trim(i, col),
        [trim(k, col) for k in range(i + 1, min(len(lines), i + 1 + n))],
    )
