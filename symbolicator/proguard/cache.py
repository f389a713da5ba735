"""The ProGuard cache: a mapping file converted once into sorted tables, read by binary search.

A mapping is text that must be read whole before any lookup; the cache is what the derived
cache keeps instead, so a request maps it (or reads it from memory) and looks classes and
members up without parsing anything. Layout (little-endian, u32 fields)::

    header   magic b"PGUARDC\\0", u32 version, u32 flags (1: has line info), 16 bytes mapping UUID,
             u32 n_classes, n_groups, n_members, n_fields, n_strings, u32 blob_size, u32 crc32
    classes  (obfuscated, original)[n_classes]             sorted by obfuscated name
    groups   (original, source_file, flags, first_member, n_members, first_field, n_fields)
             [n_groups]                                     sorted by original name
    members  (obf_name, original_class, name, return_type, arguments, i32 obf_first, i32 obf_last,
              i32 orig_first, i32 orig_last, flags, extra)[n_members]
                                                            per group, sorted by obf_name, file order kept
    fields   (obf_name, type, name)[n_fields]              per group, sorted by obf_name
    strings  u32 offset[n_strings + 1], then the UTF-8 blob

Names are string indices (NONE when absent); strings sort by their UTF-8 bytes. `extra` is the
index of a JSON string with a member's outline positions and rewrite rules. The CRC covers
everything after the header, so a cut or altered cache is refused (`CacheFormatError`) and
rebuilt rather than read wrong.

Groups are keyed by original class name because that is how retrace looks members up: the
frame's class is first remapped (or kept, when the mapping does not rename it), then its
members are found under that name, all class lines of the same original name together.
"""

from __future__ import annotations

import json
import mmap
import struct
import uuid
import zlib
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar, cast

from symbolicator.errors import CacheFormatError
from symbolicator.proguard.mapping import FieldMember, Mapping, Member, RewriteRule

PROGUARD_CACHE_VERSION = 1  # v1: classes, members with line ranges, R8 metadata
MAGIC = b"PGUARDC\0"
NONE = 0xFFFFFFFF
HEADER = struct.Struct("<8sII16sIIIIIII")
CLASS = struct.Struct("<II")
GROUP = struct.Struct("<IIIIIII")
MEMBER = struct.Struct("<IIIIIiiiiII")  # line numbers are Java ints
FIELD = struct.Struct("<III")
FLAG_LINE_INFO = 1
FLAG_SYNTHESIZED = 1
FLAG_OUTLINE = 2
MEMO_ENTRIES = 1 << 16
T = TypeVar("T")


@dataclass(frozen=True)
class MemberRow:
    """A method line as the cache keeps it (see `mapping.Member`); lines 1-based, 0 when absent."""

    obf_name: str
    original_class: str
    name: str
    return_type: str
    arguments: str
    obf_first: int
    obf_last: int
    orig_first: int
    orig_last: int
    synthesized: bool
    outline: bool
    outline_positions: dict[int, int] | None
    rewrite_rules: tuple[RewriteRule, ...]


class _Strings:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.items: list[bytes] = []

    def add(self, text: str | None) -> int:
        if text is None:
            return NONE
        found = self.index.get(text)
        if found is None:
            found = self.index[text] = len(self.items)
            self.items.append(text.encode("utf-8"))
        return found


def _extra(member: Member) -> str | None:
    if member.outline_positions is None and not member.rewrite_rules:
        return None
    return json.dumps({
        "positions": {str(k): v for k, v in (member.outline_positions or {}).items()},
        "has_positions": member.outline_positions is not None,
        "rules": [[r.conditions, r.actions] for r in member.rewrite_rules],
    })


@dataclass
class _Group:
    source_file: str | None = None
    flags: int = 0
    members: list[Member] = field(default_factory=list)
    fields: list[FieldMember] = field(default_factory=list)


def build(mapping: Mapping, mapping_id: uuid.UUID) -> bytes:
    """Convert a parsed mapping into cache bytes."""
    strings = _Strings()
    by_obf: dict[bytes, tuple[str, str]] = {}
    groups: dict[str, _Group] = {}
    for cls in mapping.classes:
        by_obf[cls.obfuscated.encode("utf-8")] = (cls.obfuscated, cls.original)  # the last line wins, as in retrace
        group = groups.setdefault(cls.original, _Group())
        if cls.source_file is not None:
            group.source_file = cls.source_file
        if cls.synthesized:
            group.flags = FLAG_SYNTHESIZED
        group.members.extend(cls.members)
        group.fields.extend(cls.fields)
    class_rows = [CLASS.pack(strings.add(obf), strings.add(orig)) for _, (obf, orig) in sorted(by_obf.items())]
    group_rows: list[bytes] = []
    member_rows: list[bytes] = []
    field_rows: list[bytes] = []
    for original in sorted(groups, key=lambda name: name.encode("utf-8")):
        group = groups[original]
        first_member, first_field = len(member_rows), len(field_rows)
        for m in sorted(group.members, key=lambda m: m.obf_name.encode("utf-8")):
            member_flags = (FLAG_SYNTHESIZED if m.synthesized else 0) | (FLAG_OUTLINE if m.outline else 0)
            member_rows.append(MEMBER.pack(
                strings.add(m.obf_name), strings.add(m.original_class), strings.add(m.name),
                strings.add(m.return_type), strings.add(m.arguments), m.obf_first, m.obf_last,
                m.orig_first, m.orig_last, member_flags, strings.add(_extra(m)),
            ))
        for f in sorted(group.fields, key=lambda f: f.obf_name.encode("utf-8")):
            field_rows.append(FIELD.pack(strings.add(f.obf_name), strings.add(f.type), strings.add(f.name)))
        group_rows.append(GROUP.pack(
            strings.add(original), strings.add(group.source_file), group.flags,
            first_member, len(member_rows) - first_member, first_field, len(field_rows) - first_field,
        ))
    offsets = [0]
    for item in strings.items:
        offsets.append(offsets[-1] + len(item))
    body = b"".join([
        *class_rows, *group_rows, *member_rows, *field_rows,
        struct.pack(f"<{len(offsets)}I", *offsets), *strings.items,
    ])
    header = HEADER.pack(
        MAGIC, PROGUARD_CACHE_VERSION, FLAG_LINE_INFO if mapping.has_line_info else 0, mapping_id.bytes,
        len(class_rows), len(group_rows), len(member_rows), len(field_rows), len(strings.items),
        offsets[-1], zlib.crc32(body),
    )
    return header + body


class ProguardCache:
    """Reads cache bytes (a `bytes`, or an `mmap` of the cache file) without copying tables."""

    def __init__(self, data: bytes | memoryview | mmap.mmap) -> None:
        view = memoryview(data)
        if len(view) < HEADER.size:
            raise CacheFormatError("ProGuard cache: shorter than its header")
        (magic, version, flags, raw_uuid, self._n_classes, self._n_groups, self._n_members,
         self._n_fields, n_strings, blob_size, crc) = HEADER.unpack_from(view, 0)
        if magic != MAGIC:
            raise CacheFormatError("not a ProGuard cache")
        if version != PROGUARD_CACHE_VERSION:
            raise CacheFormatError(f"ProGuard cache version {version}, expected {PROGUARD_CACHE_VERSION}")
        self._classes = HEADER.size
        self._groups = self._classes + self._n_classes * CLASS.size
        self._members = self._groups + self._n_groups * GROUP.size
        self._fields = self._members + self._n_members * MEMBER.size
        self._offsets = self._fields + self._n_fields * FIELD.size
        self._blob = self._offsets + (n_strings + 1) * 4
        if len(view) != self._blob + blob_size:
            raise CacheFormatError("ProGuard cache: size does not match its header")
        if zlib.crc32(view[HEADER.size :]) != crc:
            raise CacheFormatError("ProGuard cache: checksum mismatch")
        self._view = view
        self._n_strings = n_strings
        self.uuid = uuid.UUID(bytes=bytes(raw_uuid))
        self.has_line_info = bool(flags & FLAG_LINE_INFO)
        self._string_offsets = view[self._offsets : self._blob].cast("B").cast("I")
        self._memo: dict[tuple[str, str, str], object] = {}
        offsets = self._string_offsets
        if offsets[0] != 0 or offsets[-1] != blob_size or any(
                offsets[i] > offsets[i + 1] for i in range(n_strings)):
            raise CacheFormatError("ProGuard cache: string table out of bounds")

    @classmethod
    def open(cls, path: str | Path) -> ProguardCache:
        """Memory-map a cache file; a cut, altered or outdated file raises `CacheFormatError`."""
        with open(path, "rb") as fh:
            try:
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError as exc:  # empty file
                raise CacheFormatError("ProGuard cache: empty file") from exc
        return cls(mm)

    def _bytes(self, index: int) -> bytes:
        if index == NONE:
            return b""
        if index >= self._n_strings:
            raise CacheFormatError("ProGuard cache: string index out of range")
        blob = self._blob  # offsets were checked to rise within the blob when the cache was opened
        return bytes(self._view[blob + self._string_offsets[index] : blob + self._string_offsets[index + 1]])

    def _str(self, index: int) -> str | None:
        return None if index == NONE else self._bytes(index).decode("utf-8")

    def _search(self, base: int, count: int, row: struct.Struct, key: bytes) -> int:
        """The first row from `base` whose first field (a string) is not below `key`."""
        keys = _Keys(lambda i: self._bytes(row.unpack_from(self._view, base + i * row.size)[0]), count)
        return bisect_left(keys, key)

    def _memoized(self, key: tuple[str, str, str], compute: Callable[[], T]) -> T:
        """Answers of this (immutable) cache, kept per process up to `MEMO_ENTRIES`: a trace names few
        classes many times, and a binary search over strings costs a few microseconds a probe."""
        if key in self._memo:
            return cast(T, self._memo[key])
        value = compute()
        if len(self._memo) >= MEMO_ENTRIES:
            self._memo.clear()
        self._memo[key] = value
        return value

    def remap_class(self, obfuscated: str) -> str | None:
        return self._memoized(("class", obfuscated, ""), lambda: self._remap_class(obfuscated))

    def _remap_class(self, obfuscated: str) -> str | None:
        key = obfuscated.encode("utf-8")
        i = self._search(self._classes, self._n_classes, CLASS, key)
        if i < self._n_classes:
            obf, orig = CLASS.unpack_from(self._view, self._classes + i * CLASS.size)
            if self._bytes(obf) == key:
                return self._str(orig)
        return None

    def _group(self, original: str) -> tuple[int, ...] | None:
        return self._memoized(("group", original, ""), lambda: self._find_group(original))

    def _find_group(self, original: str) -> tuple[int, ...] | None:
        key = original.encode("utf-8")
        i = self._search(self._groups, self._n_groups, GROUP, key)
        if i < self._n_groups:
            row: tuple[int, ...] = GROUP.unpack_from(self._view, self._groups + i * GROUP.size)
            if self._bytes(row[0]) == key:
                return row
        return None

    def source_file(self, original: str) -> str | None:
        """The R8 `sourceFile` of a class, by its original name."""
        group = self._group(original)
        return None if group is None else self._str(group[1])

    def class_synthesized(self, original: str) -> bool:
        group = self._group(original)
        return group is not None and bool(group[2] & FLAG_SYNTHESIZED)

    def members(self, original_class: str, obf_name: str) -> list[MemberRow]:
        """Every method line of the class renamed to `obf_name`, in file order."""
        return list(self._memoized(("members", original_class, obf_name),
                                   lambda: tuple(self._find_members(original_class, obf_name))))

    def _find_members(self, original_class: str, obf_name: str) -> list[MemberRow]:
        group = self._group(original_class)
        if group is None:
            return []
        first, count = group[3], group[4]
        base = self._members + first * MEMBER.size
        key = obf_name.encode("utf-8")
        i = self._search(base, count, MEMBER, key)
        out: list[MemberRow] = []
        while i < count:
            row = MEMBER.unpack_from(self._view, base + i * MEMBER.size)
            if self._bytes(row[0]) != key:
                break
            out.append(self._member(row))
            i += 1
        return out

    def _member(self, row: tuple[int, ...]) -> MemberRow:
        positions: dict[int, int] | None = None
        rules: tuple[RewriteRule, ...] = ()
        extra = self._str(row[10])
        if extra is not None:
            info = json.loads(extra)
            if info["has_positions"]:
                positions = {int(k): v for k, v in info["positions"].items()}
            rules = tuple(RewriteRule(c, a) for c, a in info["rules"])
        return MemberRow(
            obf_name=self._str(row[0]) or "", original_class=self._str(row[1]) or "",
            name=self._str(row[2]) or "", return_type=self._str(row[3]) or "",
            arguments=self._str(row[4]) or "", obf_first=row[5], obf_last=row[6],
            orig_first=row[7], orig_last=row[8], synthesized=bool(row[9] & FLAG_SYNTHESIZED),
            outline=bool(row[9] & FLAG_OUTLINE), outline_positions=positions, rewrite_rules=rules,
        )

    def field_names(self, original_class: str, obf_name: str) -> list[tuple[str, str]]:
        """(type, original name) of every field of the class renamed to `obf_name`."""
        group = self._group(original_class)
        if group is None:
            return []
        first, count = group[5], group[6]
        base = self._fields + first * FIELD.size
        key = obf_name.encode("utf-8")
        i = self._search(base, count, FIELD, key)
        out: list[tuple[str, str]] = []
        while i < count:
            obf, type_, name = FIELD.unpack_from(self._view, base + i * FIELD.size)
            if self._bytes(obf) != key:
                break
            out.append((self._str(type_) or "", self._str(name) or ""))
            i += 1
        return out


class _Keys:
    """A lazy sequence of row keys, so `bisect` reads only the rows it probes."""

    def __init__(self, key: Callable[[int], bytes], count: int) -> None:
        self._key = key
        self._count = count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: int) -> bytes:
        return self._key(i)
