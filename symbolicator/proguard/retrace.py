"""Retracing an obfuscated Java stack trace as text, character for character as ProGuard's retrace.

ProGuard 6.2.2's `ReTrace` matches each whole line against one expression: a frame
(`at pkg.Cls.method(Source:line)`) or a line that names a class (`Caused by: pkg.Cls: message`,
`Exception in thread "main" pkg.Cls`). A frame becomes one line per original frame (an
inlined chain, or every candidate of an ambiguous one); the matched pieces are replaced
and the rest of the line is kept. Without a line number, each further candidate is printed
with the part it shares with the line above blanked out (up to the identifier where they
differ), and a candidate identical to the line above is dropped. Lines that match nothing
are printed as they are.

The expressions are ProGuard's, made to behave like `java.util.regex` here: ASCII `\\s`,
and `.` that stops at every Java line terminator. Lines are split where Java's `readLine`
splits them (`\\n`, `\\r`, `\\r\\n`).
"""

from __future__ import annotations

import re
import unicodedata

from symbolicator.proguard.mapping import LINE_BREAK
from symbolicator.proguard.remap import RemappedFrame, Remapper

_ANY = "[^\\n\\r\\u0085\\u2028\\u2029]"  # Java's `.`
_CLASS = r'(?:[^\s":./()]+\.)*[^\s":./()]+'
_SOURCE = r"[^:()]*"
_LINE = r"-?\b\d+\b"
_MEMBER = r'<?[^\s":./()]+>?'
FRAME_PATTERN = re.compile(
    rf"(?:{_ANY}*?\bat\s+({_CLASS})\.({_MEMBER})\s*\(({_SOURCE})(?::({_LINE}))?\)\s*(?:~\[{_ANY}*\])?)"
    rf'|(?:(?:{_ANY}*?[:"]\s+)?({_CLASS})(?::{_ANY}*)?)',
    re.ASCII,
)
_JAVA_INT = 2**31


def split_lines(text: str) -> list[str]:
    """Lines as Java's `readLine` reads them (no empty last line after a final terminator)."""
    lines = LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def retrace_text(remapper: Remapper, text: str) -> str:
    """The whole trace retraced, each line ending in `\\n` as retrace prints it."""
    out: list[str] = []
    for line in split_lines(text):
        out.extend(retrace_line(remapper, line))
    return "".join(f"{line}\n" for line in out)


def retrace_line(remapper: Remapper, line: str) -> list[str]:
    match = FRAME_PATTERN.fullmatch(line)
    if match is None:
        return [line]
    method = match.group(2)
    class_name = match.group(1) if match.group(1) is not None else match.group(5)
    number = _line_number(match.group(4))
    if number is None:
        return [line]
    frames = remapper.transform(class_name, method, number)
    out: list[str] = []
    previous: str | None = None
    for frame in frames:
        formatted = _format(line, match, frame)
        shown = _trim(formatted, previous) if previous is not None and number == 0 else formatted
        if shown is not None:
            out.append(shown)
        previous = formatted
    return out


def _line_number(text: str | None) -> int | None:
    """The frame's line, 0 when absent; None for one that `Integer.parseInt` refuses (too big)."""
    if text is None:
        return 0
    value = int(text)
    return value if -_JAVA_INT <= value < _JAVA_INT else None


def _format(line: str, match: re.Match[str], frame: RemappedFrame) -> str:
    pieces: list[str] = []
    index = 0
    for group in range(1, 6):
        start = match.start(group)
        if start < 0:
            continue
        pieces.append(line[index:start])
        if group in (1, 5):
            pieces.append(frame.class_name)
        elif group == 2:
            pieces.append(frame.method or "")
        elif group == 3:
            pieces.append(frame.source_file)
        else:
            pieces.append(str(frame.line))
        index = match.end(group)
    pieces.append(line[index:])
    return "".join(pieces)


def _trim(line: str, previous: str) -> str | None:
    common = 0
    while common < len(line) and common < len(previous) and line[common] == previous[common]:
        common += 1
    if common == len(line):
        return None
    end = common
    while end >= 0 and _identifier_part(line[end]):
        end -= 1
    return "".join(" " if i <= end and not _java_whitespace(c) else c for i, c in enumerate(line))


def _identifier_part(char: str) -> bool:
    """Java's `Character.isJavaIdentifierPart`."""
    code = ord(char)
    if code <= 8 or 0x0E <= code <= 0x1B or 0x7F <= code <= 0x9F:
        return True
    return unicodedata.category(char) in {"Lu", "Ll", "Lt", "Lm", "Lo", "Nd", "Nl", "Mn", "Mc", "Pc", "Sc", "Cf"}


def _java_whitespace(char: str) -> bool:
    """Java's `Character.isWhitespace`: Unicode space separators but the no-break ones, and controls."""
    if char in "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f":
        return True
    return unicodedata.category(char) in {"Zs", "Zl", "Zp"} and char not in "\u00a0\u2007\u202f"
