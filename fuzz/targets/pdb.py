"""`pdb`: a PDB through identification, the PDB → symcache conversion and lookups.

An input is the file's bytes, written to a scratch file: `objects.identify` (what an upload
does), `pdb.identity`, `pdb.build_symcache`, then `SymCache` lookups across the code and the
frames' JSON. The seeds are the two fixture PDBs (`tests/fixtures/pe`: clang MSVC-ABI and
MinGW with libstdc++ inlines).

Hypothesis edits them where the reader trusts the file: the superblock fields, the words of
the stream directory (stream sizes and block numbers), u32s inside a chosen stream (the DBI
header and module infos, a module's symbol records and line subsections, the type streams),
then byte flips and truncation; atheris mutates the same seeds bytewise.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from fuzz.scratch import scratch_dir
from symbolicator.native import pdb
from symbolicator.native.objects import identify
from symbolicator.native.symcache import SymCache

if TYPE_CHECKING:
    from hypothesis import strategies as st

LOOKUPS = 256
_PE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "pe"


def run(data: bytes) -> None:
    src = scratch_dir() / "input.pdb"
    src.write_bytes(data)
    identify(src)
    pdb.identity(src)
    cache = SymCache.from_bytes(pdb.build_symcache(src))
    try:
        addrs = [0, 2**64 - 1] + [0x1000 + k * 7 for k in range(LOOKUPS)]
        orjson.dumps([[f.to_json() for f in cache.lookup(a)] for a in addrs])
    finally:
        cache.close()


def seeds() -> dict[str, bytes]:
    return {name: (_PE / name).read_bytes() for name in ("app.pdb", "mg.pdb")}


def _stream_spans(data: bytes) -> list[tuple[int, int]]:
    """(file offset, length) of each block of each stream, and of the directory; [] when unreadable."""
    try:
        bs, _fpm, n_blocks, dir_bytes, _u, map_addr = struct.unpack_from("<IIIIII", data, 32)
        dir_blocks = struct.unpack_from(f"<{-(-dir_bytes // bs)}I", data, map_addr * bs)
        directory = b"".join(data[b * bs:(b + 1) * bs] for b in dir_blocks)
        (n,) = struct.unpack_from("<I", directory, 0)
        sizes = struct.unpack_from(f"<{n}I", directory, 4)
        spans = [(b * bs, bs) for b in dir_blocks]
        pos = 4 + 4 * n
        for size in sizes:
            count = 0 if size == 0xFFFFFFFF else -(-size // bs)
            spans.extend((b * bs, bs) for b in struct.unpack_from(f"<{count}I", directory, pos))
            pos += 4 * count
        return [s for s in spans if s[0] + s[1] <= len(data)] or [(0, len(data))]
    except (struct.error, ZeroDivisionError, ValueError):
        return []


def _edit(data: bytes, edits: list[tuple[int, int, int, int]]) -> bytes:
    """Each edit (kind, where, which, value): 0 a superblock u32, 1 a u32 in a stream block (or the
    directory), 2 a byte past the magic, 3 a cut."""
    out = bytearray(data)
    spans = _stream_spans(data)
    for kind, where, which, value in edits:
        if len(out) < 64:
            break
        if kind == 0:
            struct.pack_into("<I", out, 32 + 4 * (where % 6), value & 0xFFFFFFFF)
        elif kind == 1 and spans:
            start, length = spans[which % len(spans)]
            at = start + (where % max(length - 3, 1)) // 4 * 4
            if at + 4 <= len(out):
                struct.pack_into("<I", out, at, value & 0xFFFFFFFF)
        elif kind == 2:
            out[32 + where % (len(out) - 32)] = value & 0xFF
        else:
            del out[where % (len(out) + 1):]
    return bytes(out)


def inputs() -> st.SearchStrategy[bytes]:
    from hypothesis import strategies as st

    from fuzz.edges import EDGE_INTS

    corpus = seeds()
    value = st.one_of(st.sampled_from(EDGE_INTS).map(lambda v: v & 0xFFFFFFFF), st.integers(0, 2**32 - 1),
                      st.integers(0, 64))
    edit = st.tuples(st.sampled_from([0, 1, 1, 1, 1, 2, 2, 3]), st.integers(0, 2**20), st.integers(0, 2**10), value)
    return st.tuples(st.sampled_from(sorted(corpus)), st.lists(edit, min_size=1, max_size=8)).map(
        lambda c: _edit(corpus[c[0]], c[1]))
