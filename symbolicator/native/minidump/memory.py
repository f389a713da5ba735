"""The process memory a minidump captured: thread stacks and the memory lists.

Regions are kept sorted by start address as views into the dump, so a read is one bisect and
one slice, never a copy of the dump. Reads outside captured memory answer None: a walker treats
that as the end of what it can know, never as an error.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterable


class MemoryMap:
    """Captured memory: `read_u64(addr)` gives the little-endian word at `addr` or None."""

    def __init__(self, data: memoryview, regions: Iterable[tuple[int, int, int]]) -> None:
        """`regions` are (start address, size, file offset); overlaps keep the first one given."""
        spans: list[tuple[int, int, int]] = []
        for start, size, offset in sorted(regions, key=lambda r: r[0]):
            if size <= 0 or offset < 0 or offset + size > len(data):
                continue
            if spans and start < spans[-1][0] + spans[-1][1]:
                continue
            spans.append((start, size, offset))
        self._data = data
        self._starts = [s[0] for s in spans]
        self._spans = spans

    def __len__(self) -> int:
        return len(self._spans)

    def region(self, addr: int) -> tuple[int, int] | None:
        """(start, size) of the captured region holding `addr`."""
        i = bisect.bisect_right(self._starts, addr) - 1
        if i < 0:
            return None
        start, size, _ = self._spans[i]
        return (start, size) if addr < start + size else None

    def read(self, addr: int, length: int) -> bytes | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i < 0:
            return None
        start, size, offset = self._spans[i]
        if addr + length > start + size:
            return None
        at = offset + addr - start
        return bytes(self._data[at:at + length])

    def read_u64(self, addr: int) -> int | None:
        raw = self.read(addr, 8)
        return None if raw is None else struct.unpack("<Q", raw)[0]
