"""Inlinee names from the IPI stream (LF_FUNC_ID, LF_MFUNC_ID), qualified as llvm-symbolizer prints them.

An S_INLINESITE names its function by an item id: an LF_FUNC_ID (name plus an optional parent
scope, an LF_STRING_ID such as `demo`) or an LF_MFUNC_ID (name plus the class type, whose name
is in the TPI stream). llvm-symbolizer prints `scope::name` / `Class::name` without parameters
(`demo::leaf`); so do we.

Both type streams can be hundreds of MB. A stream is indexed once (one u32 offset per record,
`array`), when the first name is asked of it, and each record is read on demand from the mapped
file; names are cached per id, so a PDB costs one read per distinct inlinee.
"""

from __future__ import annotations

import struct
from array import array

from symbolicator.errors import MalformedObject
from symbolicator.native.pdb.msf import Msf, Stream
from symbolicator.native.pdb.streams import IPI_STREAM, TPI_STREAM

LF_FUNC_ID, LF_MFUNC_ID, LF_STRING_ID = 0x1601, 0x1602, 0x1605
LF_CLASS, LF_STRUCTURE, LF_UNION, LF_ENUM, LF_INTERFACE = 0x1504, 0x1505, 0x1506, 0x1507, 0x1519
_NUMERIC_SIZES = {0x8000: 1, 0x8001: 2, 0x8002: 2, 0x8003: 4, 0x8004: 4, 0x8009: 8, 0x800A: 8}
_HEADER = struct.Struct("<IIIII")  # version, header size, first index, end index, record bytes
_READ = 64 << 10


class TypeStream:
    """Records of the TPI or IPI stream by type index (first index 0x1000)."""

    def __init__(self, stream: Stream | None) -> None:
        self._s = stream
        self._offsets: array[int] | None = None
        self._first = 0x1000

    def _index(self) -> array[int]:
        if self._offsets is not None:
            return self._offsets
        offsets = array("I")
        s = self._s
        if s is not None and s.size >= _HEADER.size:
            _ver, header_size, first, end, record_bytes = _HEADER.unpack(s.read(0, _HEADER.size))
            self._first = first
            pos = header_size
            stop = min(s.size, header_size + record_bytes)
            limit = max(0, end - first)
            while pos + 4 <= stop and len(offsets) < limit:
                block = s.read(pos, min(_READ, stop - pos))
                at = 0
                while at + 4 <= len(block) and len(offsets) < limit:
                    (length,) = struct.unpack_from("<H", block, at)
                    if length < 2:
                        raise MalformedObject(f"PDB type record of length {length} in stream {s.index}")
                    offsets.append(pos + at)
                    at += 2 + length
                pos += at
        self._offsets = offsets
        return offsets

    def record(self, index: int) -> tuple[int, bytes] | None:
        """(kind, body) of type `index`, or None when it is not in the stream."""
        offsets = self._index()
        i = index - self._first
        if self._s is None or not 0 <= i < len(offsets):
            return None
        length, kind = struct.unpack("<HH", self._s.read(offsets[i], 4))
        return kind, self._s.read(offsets[i] + 4, length - 2)


def _name_at(body: bytes, pos: int) -> str:
    end = body.find(b"\0", pos)
    return body[pos:end if end >= 0 else len(body)].decode("utf-8", "replace")


def _skip_numeric(body: bytes, pos: int) -> int:
    (leaf,) = struct.unpack_from("<H", body, pos)
    if leaf < 0x8000:
        return pos + 2
    return pos + 2 + _NUMERIC_SIZES.get(leaf, 0)


class InlineeNames:
    """`name(item_id)`: the qualified name of an inlined function."""

    def __init__(self, msf: Msf) -> None:
        self._ipi = TypeStream(msf.stream(IPI_STREAM))
        self._tpi = TypeStream(msf.stream(TPI_STREAM))
        self._cache: dict[int, str] = {}

    def name(self, item: int) -> str:
        name = self._cache.get(item)
        if name is None:
            try:
                name = self._compute(item)
            except struct.error:
                name = ""
            self._cache[item] = name
        return name

    def _compute(self, item: int) -> str:
        rec = self._ipi.record(item)
        if rec is None:
            return ""
        kind, body = rec
        if kind == LF_FUNC_ID:
            scope, _type = struct.unpack_from("<II", body, 0)
            prefix = self._string_id(scope) if scope else ""
            return f"{prefix}::{_name_at(body, 8)}" if prefix else _name_at(body, 8)
        if kind == LF_MFUNC_ID:
            parent, _type = struct.unpack_from("<II", body, 0)
            prefix = self._type_name(parent)
            return f"{prefix}::{_name_at(body, 8)}" if prefix else _name_at(body, 8)
        return ""

    def _string_id(self, item: int) -> str:
        rec = self._ipi.record(item)
        if rec is None or rec[0] != LF_STRING_ID:
            return ""
        return _name_at(rec[1], 4)

    def _type_name(self, index: int) -> str:
        rec = self._tpi.record(index)
        if rec is None:
            return ""
        kind, body = rec
        if kind in (LF_CLASS, LF_STRUCTURE, LF_INTERFACE):
            return _name_at(body, _skip_numeric(body, 16))
        if kind == LF_UNION:
            return _name_at(body, _skip_numeric(body, 8))
        if kind == LF_ENUM:
            return _name_at(body, 12)
        return ""
