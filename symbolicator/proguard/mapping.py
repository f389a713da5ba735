"""Reading a ProGuard / R8 mapping file into plain records (docs/formats.md, JVM / ProGuard).

Member lines are cut exactly where ProGuard 6.2.2's `MappingReader` cuts them (by the positions
of `:`, ` `, `(`, `)` and `->`), because retrace's answers depend on those cuts: the single
original line `…:81 -> main` means lines 81..81, a missing original range means "same as the
obfuscated one", and `a.b.C.m` names a method inlined from another class. Comment lines are
skipped by retrace; R8 puts JSON in some of them, which this reader also keeps: the class's
`sourceFile`, `com.android.tools.r8.synthesized`, `…outline`, `…outlineCallsite` and
`…rewriteFrame`. A line the reader cannot cut is skipped, as `symbolic` does (retrace would stop
with an exception); a file with no class line at all is not a mapping.

The mapping's UUID is Sentry's: uuid5 of the whole file in the namespace
uuid5(NAMESPACE_DNS, "guardsquare.com").
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from symbolicator.errors import MalformedMapping

PROGUARD_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "guardsquare.com")
R8_SYNTHESIZED = "com.android.tools.r8.synthesized"
R8_OUTLINE = "com.android.tools.r8.outline"
R8_OUTLINE_CALLSITE = "com.android.tools.r8.outlineCallsite"
R8_REWRITE_FRAME = "com.android.tools.r8.rewriteFrame"
R8_SOURCE_FILE = "sourceFile"
HEAD_BYTES = 32  # what upload identification reads of a file's start (`objects.check_magic`)


# The first line of a mapping: an R8 header comment (not any `#` line: a shell script is no
# mapping), or a class line `pkg.Cls -> a.b:`; `_CUT` is the start of such a line when the bytes
# end inside it.
_R8_HEADER = rb"# ?(?:compiler|min_api|pg_map_|common_typos_disable|\{).*"
_FIRST = re.compile(rb"\s*(?:" + _R8_HEADER + rb"|[A-Za-z_$][A-Za-z0-9_$.]* -> [A-Za-z_$][A-Za-z0-9_$.]*:)\s*")
_CUT = re.compile(_R8_HEADER + rb"|[A-Za-z_$][A-Za-z0-9_$.]*(?:$| (?:$|-(?:$|>(?:$| (?:$|[A-Za-z0-9_$.]*:?$)))))")


LINE_BREAK = re.compile("\r\n|\r|\n")  # where Java's readLine ends a line
_TRIMMED = "".join(map(chr, range(0x21)))


def _trim(text: str) -> str:
    """Java's `String.trim()`: every character up to U+0020 off both ends (and no other)."""
    return text.strip(_TRIMMED)


def mapping_uuid(data: bytes | Iterable[bytes]) -> uuid.UUID:
    """Sentry's debug id of a ProGuard mapping: uuid5 of the file's bytes (as sentry-cli and symbolic
    compute it), from the whole file or its pieces in order."""
    digest = hashlib.sha1(PROGUARD_NAMESPACE.bytes)
    for piece in [data] if isinstance(data, bytes) else data:
        digest.update(piece)
    return uuid.UUID(bytes=digest.digest()[:16], version=5)


def looks_like_mapping(head: bytes) -> bool:
    """Whether a file's first `HEAD_BYTES` bytes can start a mapping: a whole first line must be a
    comment or a class line; a first line cut by the end of `head` must start like one. A
    shorter `head` is the whole file."""
    first, newline, _ = head.partition(b"\n")
    if newline or len(head) < HEAD_BYTES:
        return _FIRST.fullmatch(first) is not None
    return _CUT.fullmatch(first) is not None if first else False


@dataclass(frozen=True)
class MappingSummary:
    """What identifying an uploaded mapping needs, read in one pass without keeping the file."""

    uuid: uuid.UUID
    classes: int
    has_line_info: bool


def scan(lines: Iterable[bytes]) -> MappingSummary:
    """The UUID and line-info flag of a mapping read line by line (bytes with their line ends).

    Raises `MalformedMapping` when no line maps a class, as `parse` does.
    """
    digest = hashlib.sha1(PROGUARD_NAMESPACE.bytes)
    classes = 0
    has_line_info = False
    owner: ClassMapping | None = None
    for raw in lines:
        digest.update(raw)
        for part in LINE_BREAK.split(raw.decode("utf-8", errors="replace")):
            line = _trim(part)
            if not line or line.startswith("#"):
                continue
            if line.endswith(":"):
                owner = _class_line(line)
                classes += owner is not None
            elif owner is not None and not has_line_info:
                member = _member_line(line, owner)
                has_line_info = isinstance(member, Member) and member.obf_last != 0
    if not classes:
        raise MalformedMapping("not a ProGuard mapping: no line maps a class")
    return MappingSummary(uuid.UUID(bytes=digest.digest()[:16], version=5), classes, has_line_info)


@dataclass
class RewriteRule:
    """An R8 `rewriteFrame`: when every condition holds, apply the actions to the frames."""

    conditions: list[str]
    actions: list[str]


@dataclass
class Member:
    """One method line. Line numbers are 1-based, 0 when absent.

    `obf_first..obf_last` is the range in the obfuscated code; `orig_first..orig_last` the
    original range (both equal to the obfuscated range when the line gives none, as retrace
    reads it). `original_class` is the class the method comes from (another one when inlined).
    """

    obf_name: str
    original_class: str
    name: str
    return_type: str
    arguments: str
    obf_first: int
    obf_last: int
    orig_first: int
    orig_last: int
    synthesized: bool = False
    outline: bool = False
    outline_positions: dict[int, int] | None = None  # outlineCallsite: outline position -> line here
    rewrite_rules: list[RewriteRule] = field(default_factory=list)


@dataclass
class FieldMember:
    obf_name: str
    type: str
    name: str


@dataclass
class ClassMapping:
    """`original -> obfuscated:` and what follows it, in file order."""

    original: str
    obfuscated: str
    source_file: str | None = None
    synthesized: bool = False
    members: list[Member] = field(default_factory=list)
    fields: list[FieldMember] = field(default_factory=list)


@dataclass
class Mapping:
    classes: list[ClassMapping]
    has_line_info: bool


def parse(data: bytes) -> Mapping:
    """Read a mapping file. Raises `MalformedMapping` if no line of it maps a class."""
    text = data.decode("utf-8", errors="replace")
    classes: list[ClassMapping] = []
    current: ClassMapping | None = None
    last_member: Member | None = None
    has_line_info = False
    for raw in LINE_BREAK.split(text):
        line = _trim(raw)
        if not line:
            continue
        if line.startswith("#"):
            _apply_comment(_trim(line[1:]), current, last_member)
            continue
        if line.endswith(":"):
            current = _class_line(line)
            last_member = None
            if current is not None:
                classes.append(current)
            continue
        if current is None:
            continue
        member = _member_line(line, current)
        if isinstance(member, Member):
            current.members.append(member)
            last_member = member
            has_line_info = has_line_info or member.obf_last != 0
        elif isinstance(member, FieldMember):
            current.fields.append(member)
            last_member = None
    if not classes:
        raise MalformedMapping("not a ProGuard mapping: no line maps a class")
    return Mapping(classes, has_line_info)


def _class_line(line: str) -> ClassMapping | None:
    arrow = line.find("->")
    if arrow < 0:
        return None
    colon = line.find(":", arrow + 2)
    if colon < 0:
        return None
    original, obfuscated = _trim(line[:arrow]), _trim(line[arrow + 2 : colon])
    if not original or not obfuscated:
        return None
    return ClassMapping(original, obfuscated)


def _find(line: str, char: str, start: int) -> int:
    return -1 if start < 0 else line.find(char, start)


# The common shape of a method line with lines: where it matches, it cuts exactly where
# `_cut_member_line` does (types and names hold no character that Java's trim removes, no colon
# or parenthesis; numbers are plain digits), and is about three times faster. Anything else takes the general path.
_NUMBER = r"([0-9]{1,10})"
_RANGED = re.compile(rf"{_NUMBER}:{_NUMBER}:([^\x00-\x20:()]+) ([^\x00-\x20:()]+)\(([^():]*)\)"
                     rf"(?::{_NUMBER}(?::{_NUMBER})?)? -> ([^\x00-\x20:]+)")


def _member_line(line: str, owner: ClassMapping) -> Member | FieldMember | None:
    m = _RANGED.fullmatch(line)
    if m is None:
        return _cut_member_line(line, owner)
    a, b, type_, name, arguments, c, d, new_name = m.groups()
    obf_first, obf_last = int(a), int(b)
    orig_first = int(c) if c is not None else obf_first
    orig_last = int(d) if d is not None else orig_first if c is not None else obf_last
    if max(obf_first, obf_last, orig_first, orig_last) >= 2**31:
        return None
    member_class = owner.original
    dot = name.rfind(".")
    if dot >= 0:
        member_class, name = name[:dot], name[dot + 1 :]
        if not name:
            return None
    return Member(new_name, member_class, name, type_, _trim(arguments), obf_first, obf_last, orig_first, orig_last)


def _cut_member_line(line: str, owner: ClassMapping) -> Member | FieldMember | None:
    """Cut a member line at the same positions as ProGuard 6.2.2's MappingReader."""
    c1 = line.find(":")
    c2 = _find(line, ":", c1 + 1) if c1 >= 0 else -1
    space = line.find(" ", c2 + 2)
    arg_open = line.find("(", space + 1)
    arg_close = _find(line, ")", arg_open + 1) if arg_open >= 0 else -1
    c3 = _find(line, ":", arg_close + 1) if arg_close >= 0 else -1
    c4 = _find(line, ":", c3 + 1) if c3 >= 0 else -1
    after = c4 if c4 >= 0 else c3 if c3 >= 0 else arg_close if arg_close >= 0 else space
    arrow = line.find("->", after + 1)
    if space < 0 or arrow < 0:
        return None
    type_ = _trim(line[c2 + 1 : space])
    name = _trim(line[space + 1 : arg_open if arg_open >= 0 else arrow])
    new_name = _trim(line[arrow + 2 :])
    member_class = owner.original
    dot = name.rfind(".")
    if dot >= 0:
        member_class, name = name[:dot], name[dot + 1 :]
    if not type_ or not name or not new_name:
        return None
    if arg_close < 0:
        return FieldMember(new_name, type_, name)
    try:
        obf_first = obf_last = 0
        if c2 >= 0:
            obf_first, obf_last = _java_int(line[:c1]), _java_int(line[c1 + 1 : c2])
        orig_first, orig_last = obf_first, obf_last
        if c3 >= 0:
            orig_first = _java_int(line[c3 + 1 : c4 if c4 > 0 else arrow])
            orig_last = orig_first if c4 < 0 else _java_int(line[c4 + 1 : arrow])
    except ValueError:
        return None
    arguments = _trim(line[arg_open + 1 : arg_close])
    return Member(new_name, member_class, name, type_, arguments, obf_first, obf_last, orig_first, orig_last)


_INT = re.compile(r"[+-]?[0-9]+")


def _java_int(text: str) -> int:
    """`Integer.parseInt` of the trimmed text (ASCII digits); ValueError where it throws."""
    text = _trim(text)
    if not _INT.fullmatch(text):
        raise ValueError(text)
    value = int(text)
    if not -(2**31) <= value < 2**31:
        raise ValueError(text)
    return value


def _apply_comment(text: str, current: ClassMapping | None, member: Member | None) -> None:
    """Keep what R8's JSON comments say about the class or member just above them."""
    if not text.startswith("{"):
        return
    try:
        info = json.loads(text)
    except ValueError:
        return
    if not isinstance(info, dict):
        return
    kind = info.get("id")
    if member is not None:
        if kind == R8_SYNTHESIZED:
            member.synthesized = True
        elif kind == R8_OUTLINE:
            member.outline = True
        elif kind == R8_OUTLINE_CALLSITE:
            member.outline_positions = _positions(info.get("positions"))
        elif kind == R8_REWRITE_FRAME:
            conditions, actions = _strings(info.get("conditions")), _strings(info.get("actions"))
            if conditions is not None and actions is not None:
                member.rewrite_rules.append(RewriteRule(conditions, actions))
        return
    if current is None:
        return
    if kind == R8_SOURCE_FILE and isinstance(info.get("fileName"), str):
        current.source_file = info["fileName"]
    elif kind == R8_SYNTHESIZED:
        current.synthesized = True


def _strings(value: object) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    return None


def _positions(value: object) -> dict[int, int] | None:
    if not isinstance(value, dict):
        return None
    out: dict[int, int] = {}
    for key, line in value.items():
        if isinstance(line, int) and str(key).isdigit():
            out[int(key)] = line
    return out
