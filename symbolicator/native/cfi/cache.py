"""The CFI cache: one module's unwind rows in a compact file the walker maps and bisects.

Layout (little-endian), version `CFICACHE_VERSION`::

    header   magic "SCFI", u32 version, u16 arch index, u16 flags (`SPARSE`), u32 n_rows, u32 n_sets,
             u32 blob bytes, u64 image_vmaddr
    addrs    u64[n_rows]   sorted start addresses (the module's virtual addresses)
    sets     u32[n_rows]   rule-set index of each row; NO_RULES where no FDE covers the address
    offsets  u32[n_sets+1] where each encoded `RuleSet` starts in the blob
    blob     the encoded rule sets, each once
    code     with flag `CODE_MAP` only, 8-byte aligned: u64 n, then u64[n] flattened `[start, end)`
             intervals the stack scanner takes for code (`code_map.py`, from a PDB's symbols)

Rows repeat few distinct rule sets (a libc of 3,000 functions has a few hundred), so a row is
12 bytes. A lookup is one bisect over the mapped `addrs` and one decode, memoized per set.
"""

from __future__ import annotations

import bisect
import mmap
import struct
import sys
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path

from symbolicator.errors import MalformedObject
from symbolicator.native.cfi.dwarf_cfi import Fde, RuleKey, rule_set
from symbolicator.native.cfi.rules import RuleSet
from symbolicator.types import Arch

CFICACHE_VERSION = 3  # v1: DWARF .eh_frame / .debug_frame and Breakpad STACK CFI rows; v2: Mach-O compact unwind;
# v3: x64 PE unwind tables (v2 refused PE images)
MAGIC = b"SCFI"
NO_RULES = 0xFFFFFFFF
SPARSE = 0x1
"""Flag: the rows leave out functions that have code (a PE's leaf functions have no unwind entry),
so scanning takes any address from the first row on as code, not only addresses with rules."""
CODE_MAP = 0x2
"""Flag: a code table follows the blob; scanning asks it, not the rows."""
_HEADER = struct.Struct("<4sIHHIIIQ")
assert sys.byteorder == "little", "the CFI cache is written and mapped in native little-endian order"
_ARCHES = (Arch.UNKNOWN, Arch.X86_64, Arch.ARM64, Arch.X86, Arch.ARM)


class CacheBuilder:
    """Collects FDEs as they are decoded, each row reduced at once to (address, rule-set index),
    so a library of a million rows costs 12 bytes a row here, not a tuple each; `build` merges
    them in address order (an FDE overlapping an earlier one is dropped: the first section given
    wins; a gap between FDEs is a NO_RULES row) and writes the cache."""

    def __init__(self) -> None:
        self.sets: dict[RuleKey, int] = {}
        self.fdes: list[tuple[int, int, array[int], array[int]]] = []

    def add(self, fde: Fde) -> None:
        if fde.end <= fde.start:
            return
        addrs: array[int] = array("Q")
        indexes: array[int] = array("I")
        sets = self.sets
        for addr, rules in fde.rows:
            if fde.start <= addr < fde.end:
                addrs.append(addr)
                indexes.append(sets.setdefault(rules, len(sets)))
        self.fdes.append((fde.start, fde.end, addrs, indexes))

    def add_all(self, fdes: Iterable[Fde]) -> CacheBuilder:
        for fde in fdes:
            self.add(fde)
        return self

    def build(self, arch: Arch, image_vmaddr: int, flags: int = 0,
              code: Sequence[int] | None = None) -> tuple[bytes, int]:
        """The cache file's bytes and its number of rows; each distinct rule set encoded once.
        `code`: flattened code intervals (`code_map.intervals`), stored with flag `CODE_MAP`."""
        out_addrs: array[int] = array("Q")
        out_sets: array[int] = array("I")
        covered_to = 0
        for start, end, addrs, indexes in sorted(self.fdes, key=lambda f: f[0]):
            if start < covered_to:
                continue
            if out_addrs and out_sets[-1] == NO_RULES and out_addrs[-1] == start:
                out_addrs.pop(), out_sets.pop()
            for addr, index in zip(addrs, indexes, strict=False):
                if out_addrs and out_addrs[-1] == addr:
                    out_addrs.pop(), out_sets.pop()
                if not out_sets or out_sets[-1] != index:
                    out_addrs.append(addr)
                    out_sets.append(index)
            out_addrs.append(end)
            out_sets.append(NO_RULES)
            covered_to = end
        offsets, blob, at = [], [], 0
        for key in self.sets:
            encoded = rule_set(key).encode()
            offsets.append(at)
            blob.append(encoded)
            at += len(encoded)
        offsets.append(at)
        arch_index = _ARCHES.index(arch) if arch in _ARCHES else 0
        tail = b""
        if code is not None:
            flags |= CODE_MAP
            tail = b"\0" * (-(_HEADER.size + 12 * len(out_addrs) + 4 * len(offsets) + at) % 8) + \
                array("Q", [len(code), *code]).tobytes()
        header = _HEADER.pack(MAGIC, CFICACHE_VERSION, arch_index, flags, len(out_addrs), len(self.sets), at,
                              image_vmaddr)
        data = b"".join([header, out_addrs.tobytes(), out_sets.tobytes(), array("I", offsets).tobytes(), *blob, tail])
        return data, len(out_addrs)


class CfiCache:
    """An open CFI cache (mapped file or bytes). `lookup(addr)` takes a module virtual address."""

    def __init__(self, data: bytes | mmap.mmap, closer: mmap.mmap | None = None) -> None:
        if len(data) < _HEADER.size:
            raise MalformedObject("CFI cache too short")
        magic, version, arch_index, flags, n_rows, n_sets, blob_size, vmaddr = _HEADER.unpack_from(data, 0)
        if magic != MAGIC or version != CFICACHE_VERSION or arch_index >= len(_ARCHES):
            raise MalformedObject("not a CFI cache of this version")
        at = _HEADER.size
        need = at + 12 * n_rows + 4 * (n_sets + 1) + blob_size
        if len(data) < need:
            raise MalformedObject("CFI cache truncated")
        view = memoryview(data)
        self._view = view
        self.arch = _ARCHES[arch_index]
        self.image_vmaddr = vmaddr
        self.rows = n_rows
        self.sparse = bool(flags & SPARSE)
        self._addrs = view[at:at + 8 * n_rows].cast("Q")
        self._sets = view[at + 8 * n_rows:at + 12 * n_rows].cast("I")
        off_at = at + 12 * n_rows
        self._offsets = view[off_at:off_at + 4 * (n_sets + 1)].cast("I")
        self._blob = view[off_at + 4 * (n_sets + 1):need]
        self._decoded: dict[int, RuleSet] = {}
        self._closer = closer
        self._code: memoryview | None = None
        if flags & CODE_MAP:
            at = need + (-need % 8)
            if len(data) < at + 8:
                raise MalformedObject("CFI cache truncated")
            (n_code,) = struct.unpack_from("<Q", data, at)
            if n_code % 2 or len(data) < at + 8 + 8 * n_code:
                raise MalformedObject("CFI cache truncated")
            self._code = view[at + 8:at + 8 + 8 * n_code].cast("Q")

    @classmethod
    def open(cls, path: Path) -> CfiCache:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if size == 0:
                return cls(b"")
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return cls(mapped, mapped)

    @property
    def has_code_map(self) -> bool:
        return self._code is not None

    def covers(self, addr: int) -> bool:
        """Whether `addr` seems to be code: inside the code table's intervals when it has one,
        else where a row with rules holds (any address from the first row on in a `SPARSE` cache)."""
        if self._code is not None:
            return bisect.bisect_right(self._code, addr) % 2 == 1
        if self.sparse:
            return self.rows > 0 and addr >= self._addrs[0]
        i = bisect.bisect_right(self._addrs, addr) - 1
        return i >= 0 and self._sets[i] != NO_RULES

    def lookup(self, addr: int) -> RuleSet | None:
        i = bisect.bisect_right(self._addrs, addr) - 1
        if i < 0:
            return None
        index = self._sets[i]
        if index == NO_RULES:
            return None
        rules = self._decoded.get(index)
        if rules is None:
            rules = RuleSet.decode(self._blob[self._offsets[index]:self._offsets[index + 1]])
            self._decoded[index] = rules
        return rules

    def close(self) -> None:
        for view in (self._addrs, self._sets, self._offsets, self._blob, *([self._code] if self._code else []),
                     self._view):
            view.release()
        if self._closer is not None:
            self._closer.close()
