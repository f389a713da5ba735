"""Remapping obfuscated JVM names and lines with a ProGuard cache, as ProGuard's retrace does.

`transform` is retrace's (ProGuard 6.2.2 `FrameRemapper`): the frame's class is remapped (or
kept when the mapping does not rename it); every method line of that class renamed to the
frame's method whose obfuscated range holds the line (any, when either the frame or the
mapping line has no line number) gives one frame, in file order. Inlined methods are such
consecutive lines with the same range, innermost first, so one obfuscated frame becomes the
whole inline chain, and an ambiguous one becomes every candidate. The line moves by the offset
between the ranges when the original range has more than one line, else it is the original
first line. When nothing matches, the class alone is remapped.

`remap_stacktrace` adds what R8 mappings carry for whole traces (outlines and `rewriteFrame`
rules), which ProGuard 6.2.2 never writes; `symbolic`'s `ProguardMapper` is the oracle there.
"""

from __future__ import annotations

from dataclasses import dataclass

from symbolicator.proguard.cache import MemberRow, ProguardCache

R8_SYNTHETIC_SOURCE = "R8$$SyntheticClass"


@dataclass(frozen=True)
class RemappedFrame:
    """One original frame. `line` is 1-based, 0 when unknown.

    `source_file` is what retrace prints (the outer class's simple name + `.java`);
    `r8_source_file` the R8 `sourceFile` of the class when the mapping names one.
    `method` is None for a frame that named no method (a class alone); `member` is the
    mapping line it came from, None when only the class was remapped.
    """

    class_name: str
    method: str | None
    line: int
    source_file: str
    r8_source_file: str | None = None
    member: MemberRow | None = None


def retrace_source_file(class_name: str) -> str:
    """What retrace prints as the file: the simple name of the outermost class + `.java`."""
    start = class_name.rfind(".") + 1
    dollar = class_name.find("$", start)
    return (class_name[start:dollar] if dollar > 0 else class_name[start:]) + ".java"


def matches(member: MemberRow, line: int) -> bool:
    return line == 0 or member.obf_last == 0 or member.obf_first <= line <= member.obf_last


def original_line(member: MemberRow, line: int) -> int:
    """The original line of obfuscated `line` in `member` (retrace's arithmetic, Java ints)."""
    if member.orig_first == member.obf_first:
        return line
    if member.orig_last != 0 and member.orig_last != member.orig_first and member.obf_first != 0 and line != 0:
        return _int32(member.orig_first - member.obf_first + line)
    return member.orig_first


def _int32(value: int) -> int:
    return (value + 2**31) % 2**32 - 2**31


class Remapper:
    """Remaps class names, frames and stack traces through one cache."""

    def __init__(self, cache: ProguardCache) -> None:
        self.cache = cache

    def original_class(self, class_name: str) -> str:
        return self.cache.remap_class(class_name) or class_name

    def r8_source_file(self, original_class: str) -> str | None:
        """The R8 `sourceFile` of a class; R8's placeholder for synthetic classes becomes the
        class's simple name, as `symbolic` answers."""
        source_file = self.cache.source_file(original_class)
        if source_file == R8_SYNTHETIC_SOURCE:
            return original_class[original_class.rfind(".") + 1 :]
        return source_file

    def _frame(self, member: MemberRow, line: int) -> RemappedFrame:
        return RemappedFrame(
            member.original_class, member.name, original_line(member, line),
            retrace_source_file(member.original_class), self.r8_source_file(member.original_class), member,
        )

    def candidates(self, class_name: str, method: str, line: int, zero_is_a_line: bool = False) -> list[RemappedFrame]:
        """The frames of every matching method line; empty when none matches.

        `zero_is_a_line`: Symbolicator's (and `symbolic`'s) reading, for `/symbolicate-jvm`: line 0
        is looked up like any line (R8 writes ranges from 0) instead of matching every method line
        as in retrace, and a method line without a range answers line 0.
        """
        original = self.original_class(class_name)
        if not zero_is_a_line:
            return [self._frame(m, line) for m in self.cache.members(original, method) if matches(m, line)]
        return [self._frame(m, 0 if m.obf_last == 0 and m.orig_first == 0 else line)
                for m in self.cache.members(original, method)
                if m.obf_last == 0 or m.obf_first <= line <= m.obf_last]

    def transform(self, class_name: str, method: str | None, line: int) -> list[RemappedFrame]:
        """Retrace's answer for one frame: the candidates, or the frame with its class remapped."""
        frames = self.candidates(class_name, method, line) if method is not None else []
        if frames:
            return frames
        original = self.original_class(class_name)
        return [RemappedFrame(original, method, line, retrace_source_file(original), self.r8_source_file(original))]

    def remap_method(self, class_name: str, method: str) -> tuple[str, str] | None:
        """Class and method when every mapping line of the obfuscated method names one method."""
        original = self.original_class(class_name)
        names = {(m.original_class, m.name) for m in self.cache.members(original, method)}
        return names.pop() if len(names) == 1 else None

    def remap_stacktrace(
        self, frames: list[tuple[str, str, int]], exception: str | None = None, zero_is_a_line: bool = False
    ) -> list[list[RemappedFrame]]:
        """Remap (class, method, line) frames, innermost first: one list of frames per input frame.

        R8 outlines: a frame in an outline method is dropped (an empty list), and the next
        frame's line is taken from its `outlineCallsite` positions at the outline's line.
        R8 `rewriteFrame`: on the innermost frame, when every `throws(Lpkg/Exc;)` condition
        names `exception` (an original class name), `removeInnerFrames(n)` drops the n
        innermost frames of its expansion.
        """
        out: list[list[RemappedFrame]] = []
        outline_position: int | None = None
        for index, (class_name, method, line) in enumerate(frames):
            if outline_position is not None:
                line = self._outline_line(class_name, method, line, outline_position)
                outline_position = None
            expanded = self.candidates(class_name, method, line, zero_is_a_line)
            if expanded and any(f.member is not None and f.member.outline for f in expanded):
                outline_position = line
                out.append([])
                continue
            if index == 0 and exception is not None and expanded:
                expanded = _rewrite(expanded, exception)
            out.append(expanded)
        return out

    def _outline_line(self, class_name: str, method: str, line: int, position: int) -> int:
        original = self.original_class(class_name)
        for member in self.cache.members(original, method):
            if matches(member, line) and member.outline_positions is not None:
                return member.outline_positions.get(position, line)
        return line


def _rewrite(frames: list[RemappedFrame], exception: str) -> list[RemappedFrame]:
    descriptor = "L" + exception.replace(".", "/") + ";"
    for frame in frames:
        assert frame.member is not None
        for rule in frame.member.rewrite_rules:
            if not rule.conditions or any(c != f"throws({descriptor})" for c in rule.conditions):
                continue
            for action in rule.actions:
                if action.startswith("removeInnerFrames(") and action.endswith(")"):
                    count = action[len("removeInnerFrames(") : -1]
                    if count.isdigit():
                        frames = frames[int(count) :]
            return frames
    return frames
