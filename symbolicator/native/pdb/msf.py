"""The MSF container ("Microsoft C/C++ MSF 7.00", the "big" MSF every current PDB uses).

A PDB is a little file system: fixed-size blocks, a superblock, a stream directory listing each
stream's size and blocks. Everything else in a PDB is a stream read through this layer.

Design: the file is memory-mapped and streams are read lazily, block by block (`Stream.read`),
so a multi-GB PDB never sits in Python objects at once; the converter reads one module stream at
a time. The directory is validated up front, each failure a `MalformedObject` naming the
problem: a superblock or directory past the end of the file, a block index outside the file, a
block repeated within one stream (a loop), a stream larger than its blocks. So a lying header
costs a bounded amount of work and never an `IndexError` deep inside a parser.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
from array import array
from collections.abc import Iterator
from pathlib import Path

from symbolicator.errors import MalformedObject

MSF_MAGIC = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0"
_SUPERBLOCK = struct.Struct("<32sIIIIII")
_BLOCK_SIZES = (512, 1024, 2048, 4096, 8192, 16384, 32768)
NIL_STREAM = 0xFFFFFFFF


class Stream:
    """One MSF stream: `size` bytes spread over `blocks` of the mapped file."""

    __slots__ = ("_data", "_bs", "blocks", "size", "index")

    def __init__(self, data: mmap.mmap | bytes, block_size: int, blocks: array[int], size: int, index: int) -> None:
        self._data = data
        self._bs = block_size
        self.blocks = blocks
        self.size = size
        self.index = index

    def read(self, offset: int, n: int) -> bytes:
        """`n` bytes from `offset`; `MalformedObject` when they run past the stream's end."""
        if offset < 0 or n < 0 or offset + n > self.size:
            raise MalformedObject(f"PDB stream {self.index}: read of {n} bytes at {offset} past its {self.size} bytes")
        bs = self._bs
        parts = []
        while n:
            block, within = divmod(offset, bs)
            take = min(n, bs - within)
            start = self.blocks[block] * bs + within
            parts.append(self._data[start:start + take])
            offset += take
            n -= take
        return b"".join(parts)

    def read_all(self) -> bytes:
        """The whole stream (callers use it for module-sized streams only)."""
        return self.read(0, self.size)


class Msf:
    """The stream directory of a mapped MSF file; `stream(i)` opens stream `i` (None for a nil stream)."""

    def __init__(self, data: mmap.mmap | bytes) -> None:
        self._data = data
        size = len(data)
        if size < _SUPERBLOCK.size or bytes(data[:32]) != MSF_MAGIC:
            raise MalformedObject("not an MSF 7.00 (PDB) file")
        _magic, bs, _fpm, n_blocks, dir_bytes, _unknown, map_addr = _SUPERBLOCK.unpack_from(data, 0)
        if bs not in _BLOCK_SIZES:
            raise MalformedObject(f"PDB block size {bs} is not a power of two from 512 to 32768")
        file_blocks = size // bs
        if n_blocks > file_blocks + 1 or n_blocks == 0:
            raise MalformedObject(f"PDB claims {n_blocks} blocks of {bs} bytes; the file holds {file_blocks}")
        self.block_size = bs
        self.n_blocks = min(n_blocks, -(-size // bs))
        n_dir_blocks = -(-dir_bytes // bs)
        if dir_bytes < 4 or n_dir_blocks * 4 > bs:
            raise MalformedObject(f"PDB stream directory of {dir_bytes} bytes does not fit its block map")
        dir_blocks = self._blocks_at(map_addr * bs, n_dir_blocks, "block map")
        directory = Stream(data, bs, dir_blocks, dir_bytes, -1)
        (n_streams,) = struct.unpack("<I", directory.read(0, 4))
        if 4 + 4 * n_streams > dir_bytes:
            raise MalformedObject(f"PDB directory lists {n_streams} streams in {dir_bytes} bytes")
        sizes = array("I", directory.read(4, 4 * n_streams))
        if array("I").itemsize != 4 or not _little_endian():
            raise MalformedObject("PDB reading needs a little-endian host")  # pragma: no cover
        self._sizes = sizes
        self._starts = array("q")
        pos = 4 + 4 * n_streams
        total = 0
        for s in sizes:
            self._starts.append(pos)
            count = 0 if s == NIL_STREAM else -(-s // bs)
            pos += 4 * count
            total += count
        if pos > dir_bytes:
            raise MalformedObject(f"PDB directory of {dir_bytes} bytes is shorter than its {n_streams} block lists")
        if total > self.n_blocks:
            raise MalformedObject(f"PDB streams claim {total} blocks; the file has {self.n_blocks}")
        self._directory = directory

    def _blocks_at(self, offset: int, count: int, what: str) -> array[int]:
        if offset < 0 or offset + 4 * count > len(self._data):
            raise MalformedObject(f"PDB {what} at {offset} is past the end of the file")
        blocks = array("I", bytes(self._data[offset:offset + 4 * count]))
        self._check(blocks, what)
        return blocks

    def _check(self, blocks: array[int], what: str) -> None:
        if blocks and max(blocks) >= self.n_blocks:
            raise MalformedObject(f"PDB {what}: block {max(blocks)} is outside the file's {self.n_blocks} blocks")
        if len(set(blocks)) != len(blocks):
            raise MalformedObject(f"PDB {what}: a block repeats (a loop in the block list)")

    @property
    def stream_count(self) -> int:
        return len(self._sizes)

    def stream(self, index: int) -> Stream | None:
        """Stream `index`, or None when it is nil or absent (0xFFFF in a header means "none")."""
        if index < 0 or index >= len(self._sizes) or self._sizes[index] == NIL_STREAM:
            return None
        size = self._sizes[index]
        count = -(-size // self.block_size)
        blocks = array("I", self._directory.read(self._starts[index], 4 * count))
        self._check(blocks, f"stream {index}")
        return Stream(self._data, self.block_size, blocks, size, index)

    def require(self, index: int, what: str) -> Stream:
        s = self.stream(index)
        if s is None:
            raise MalformedObject(f"PDB has no {what} stream (stream {index})")
        return s


def _little_endian() -> bool:
    return array("I", b"\1\0\0\0")[0] == 1


def open_mapping(path: str | Path) -> mmap.mmap:
    """The file mapped read-only; `MalformedObject` for an empty file."""
    with open(path, "rb") as fh:
        try:
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:
            raise MalformedObject(f"{path}: empty file") from exc


_BROKEN = (struct.error, IndexError, ValueError, OverflowError, RecursionError)


@contextlib.contextmanager
def opened_msf(path: str | Path) -> Iterator[Msf]:
    """The PDB at `path` mapped and its container read, for the `with` block; what a broken file
    makes the readers raise (out-of-range records, truncated structs) becomes `MalformedObject`.
    The mapping is closed afterwards unless a view of it is still alive (then the GC closes it)."""
    mapping = open_mapping(path)
    try:
        yield Msf(mapping)
    except _BROKEN as exc:
        raise MalformedObject(f"{path}: malformed PDB ({type(exc).__name__}: {exc})") from exc
    finally:
        try:
            mapping.close()
        except BufferError:
            pass
