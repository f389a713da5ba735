"""DWARF of one object → line rows, function ranges and the inline tree, ready for the symcache.

The container does not matter here: ELF (this module, through pyelftools'
section headers) and Mach-O (`macho.py`) both hand over a dict of raw,
decompressed section bytes keyed by the DWARF name without prefix
(`debug_info`, `debug_line`, …). `read_dwarf` then decodes the line programs
(`lines.py`) and walks the DIEs (`units.py`), and resolves function
names across `abstract_origin` / `specification` chains with a cycle guard.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zstandard

from symbolicator.errors import MalformedObject, UnsupportedFormat
from symbolicator.native.dwarf.forms import Strings
from symbolicator.native.dwarf.lines import END_OF_SEQUENCE, decode_line_program
from symbolicator.native.dwarf.units import NO_NAME, NODE_DTYPE, Collector, UnitWalker
from symbolicator.native.spill import DEFAULT_MEMORY_BYTES, Budget, ChunkStore, RunStore, open_spill_file

DWARF_SECTIONS = ("debug_info", "debug_abbrev", "debug_line", "debug_str", "debug_line_str", "debug_str_offsets",
                  "debug_addr", "debug_ranges", "debug_rnglists")
MAX_ORIGIN_CHAIN = 32
MAX_SECTION_BYTES = 4 << 30  # default cap on one decompressed DWARF section: more is a bomb, not a binary
_SHF_COMPRESSED = 0x800
_ELFCOMPRESS_ZLIB = 1
_ELFCOMPRESS_ZSTD = 2


@dataclass(slots=True)
class DwarfData:
    """What the symcache needs from DWARF.

    `lines` holds `LINE_DTYPE` rows and `steps` the `STEP_DTYPE` inline steps, both as sorted
    runs (in memory or spilled) for `spill.merge_windows`; `files[i]` is a normalised path.
    Node `i` of `nodes` (`NODE_DTYPE` records, in chunks) is a function (parent -1) or an
    inlined call; its name is `functions[f]` where `f` is its entry in `node_function` (int32
    chunks matching the node chunks), the raw (possibly mangled) name to show. `close()`
    frees the spill files.
    """

    files: list[str]
    lines: RunStore
    steps: RunStore
    nodes: ChunkStore
    node_function: ChunkStore
    functions: list[str | None]
    budget: Budget

    def close(self) -> None:
        for store in (self.lines, self.steps, self.nodes, self.node_function):
            store.close()


INFLATE_STEP = 4 << 20


class InflateToFile:
    """Inflates compressed sections bigger than `over` bytes into unnamed files in `spill_dir`, mapped.

    A GB debug file with compressed DWARF would otherwise hold every inflated section in
    memory. `maps` are the mappings made; the owner releases their pages and closes them.
    """

    def __init__(self, over: int, spill_dir: str | Path | None) -> None:
        self.over = over
        self.spill_dir = spill_dir
        self.maps: list[mmap.mmap] = []

    def inflate(self, name: str, ch_type: int, body: memoryview, size: int) -> bytes:
        with open_spill_file(self.spill_dir) as f:
            total = 0
            for piece in _inflated_pieces(ch_type, body, size):
                total += len(piece)
                if total > size:
                    break
                f.write(piece)
            if total != size:
                raise MalformedObject(f"section {name}: decompressed size differs from its header ({size} bytes)")
            f.flush()
            if not size:
                return b""
            mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
        self.maps.append(mm)
        return memoryview(mm)  # type: ignore[return-value]  # reads like bytes


def _inflated_pieces(ch_type: int, body: memoryview, size: int) -> Iterator[bytes]:
    """The inflated stream in pieces of at most `INFLATE_STEP` bytes, stopping past `size`."""
    if ch_type == _ELFCOMPRESS_ZSTD:
        reader = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True)
        total = 0
        while total <= size:
            piece = reader.read(INFLATE_STEP)
            if not piece:
                return
            total += len(piece)
            yield piece
        return
    d = zlib.decompressobj()
    pos = 0
    total = 0
    while total <= size and not d.eof:
        if d.unconsumed_tail:
            data: bytes | memoryview = d.unconsumed_tail
        elif pos < len(body):
            data = body[pos:pos + INFLATE_STEP]
            pos += INFLATE_STEP
        else:
            return
        piece = d.decompress(data, INFLATE_STEP)
        total += len(piece)
        yield piece


def _decompress(name: str, raw: memoryview, flags: int, is64: bool, little_endian: bool, max_bytes: int,
                to_file: InflateToFile | None = None) -> bytes:
    """SHF_COMPRESSED (zlib/zstd, Elf_Chdr header) and legacy `.zdebug_*` (`ZLIB` + 8-byte BE size).

    Memory stays bounded by the size the header states, which must not exceed
    `max_bytes`: a claim over it is refused before anything is inflated, and
    no stream is inflated past claim + 1 byte. zstd goes through a stream
    reader because its one-shot `decompress` trusts the size in zstd's own
    frame header, which a crafted file sets to gigabytes. With `to_file`, a
    section claiming more than `to_file.over` bytes is inflated into a mapped
    spill file instead of memory.
    """
    bo: Literal["little", "big"] = "little" if little_endian else "big"
    try:
        if flags & _SHF_COMPRESSED:
            ch_type = int.from_bytes(raw[0:4], bo)
            size = int.from_bytes(raw[8:16] if is64 else raw[4:8], bo)
            body = raw[24 if is64 else 12:]
        elif name.startswith(".zdebug_"):
            if bytes(raw[:4]) != b"ZLIB":
                raise MalformedObject(f"section {name}: missing ZLIB header")
            ch_type, size, body = _ELFCOMPRESS_ZLIB, int.from_bytes(raw[4:12], "big"), raw[12:]
        else:
            return raw  # type: ignore[return-value]  # a view of the mapping reads like bytes
        if size > max_bytes:
            raise MalformedObject(f"section {name}: claims {size} bytes uncompressed, over the {max_bytes} byte limit")
        if ch_type in (_ELFCOMPRESS_ZLIB, _ELFCOMPRESS_ZSTD) and to_file is not None and size > to_file.over:
            return to_file.inflate(name, ch_type, body, size)
        if ch_type == _ELFCOMPRESS_ZLIB:
            out = zlib.decompressobj().decompress(body, size + 1)
        elif ch_type == _ELFCOMPRESS_ZSTD:
            out = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True).read(size + 1)
        else:
            raise UnsupportedFormat(f"section {name}: unknown compression type {ch_type}")
        if len(out) != size:
            raise MalformedObject(f"section {name}: decompressed size differs from its header ({size} bytes)")
        return out
    except (zlib.error, zstandard.ZstdError, ValueError, MemoryError) as exc:
        raise MalformedObject(f"section {name}: cannot decompress ({exc})") from exc


def elf_dwarf_sections(elf: Any, data: bytes | memoryview | mmap.mmap, max_section_bytes: int = MAX_SECTION_BYTES,
                       to_file: InflateToFile | None = None) -> dict[str, bytes]:
    """The DWARF sections of a pyelftools `ELFFile`, decompressed, bounds-checked.

    A section stored as is comes back as a view of `data` (valid while `data` is); a
    compressed one as the inflated bytes, or a view of a mapped spill file (`to_file`).

    `max_section_bytes` caps each decompressed section (the service passes
    `limits.max_decompressed_section_bytes`); more is a decompression bomb.
    """
    out: dict[str, bytes] = {}
    is64 = elf.elfclass == 64
    for section in elf.iter_sections():
        name = section.name
        if name.startswith(".debug_"):
            key = name[1:]
        elif name.startswith(".zdebug_"):
            key = "debug_" + name[8:]
        else:
            continue
        if key not in DWARF_SECTIONS or section["sh_type"] == "SHT_NOBITS":
            continue
        offset, size = section["sh_offset"], section["sh_size"]
        if offset + size > len(data):
            raise MalformedObject(f"section {name} points past the end of the file")
        raw = memoryview(data)[offset:offset + size]  # a view of the mapping: no copy of the file
        out[key] = _decompress(name, raw, section["sh_flags"], is64, elf.little_endian, max_section_bytes, to_file)
    return out


LINE_DTYPE = np.dtype([("a", "<u8"), ("p", "u1"), ("f", "<i4"), ("l", "<u4"), ("c", "<u4")])
"""A line row: address, priority (1 for a row, 0 for an end of sequence, which a row at the same
address beats), global file id (-1 ends a sequence, -2 is an unknown file), line, column."""
STEP_DTYPE = np.dtype([("a", "<u8"), ("p", "u1"), ("n", "<i4")])
"""An inline step: from address `a` on, the innermost node is `n` (-1: none) until the next step."""


class _Lines:
    """Decodes each unit's line program once, interns file paths globally, stores the rows."""

    def __init__(self, sections: dict[str, bytes], little_endian: bool, store: RunStore) -> None:
        self.line = sections.get("debug_line", b"")
        self.le = little_endian
        self.files: list[str] = []
        self.file_ids: dict[str, int] = {}
        self.store = store
        self.done: dict[int, list[int]] = {}

    def on_unit(self, offset: int, comp_dir: str, cu_name: str, strings: Strings, addr_size: int) -> list[int]:
        if offset in self.done:
            return self.done[offset]
        if offset >= len(self.line):
            raise MalformedObject(f"DW_AT_stmt_list {offset:#x} past .debug_line")
        table = decode_line_program(self.line, offset, comp_dir, cu_name, strings, addr_size, self.le)
        ids = self.file_ids
        mapping = []
        for path in table.files:
            fid = ids.get(path)
            if fid is None:
                fid = ids[path] = len(self.files)
                self.files.append(path)
            mapping.append(fid)
        local = np.frombuffer(table.file_idx, dtype=np.int64)
        lut = np.array(mapping + [-2], dtype=np.int64)
        valid = (local >= 0) & (local < len(mapping))
        file_idx = np.where(valid, lut[np.where(valid, local, len(mapping))],
                            np.where(local == END_OF_SEQUENCE, END_OF_SEQUENCE, -2))
        rows = np.empty(len(local), dtype=LINE_DTYPE)
        rows["a"] = np.frombuffer(table.addrs, dtype=np.uint64)
        rows["p"] = file_idx != END_OF_SEQUENCE
        rows["f"] = file_idx
        rows["l"] = np.frombuffer(table.lines, dtype=np.int64).astype("<u4")
        rows["c"] = np.frombuffer(table.columns, dtype=np.int64).astype("<u4")
        self.store.append(rows)
        self.done[offset] = mapping
        return mapping


def unit_steps(c: Collector) -> Any:
    """The innermost node of the current unit per address, as step rows (last one at an address wins)."""
    if not c.unit_low:
        return np.zeros(0, dtype=STEP_DTYPE)
    first = c.unit_first_node
    lows, highs, nodes, depths = c.unit_low, c.unit_high, c.unit_node, c.unit_depth
    key_depth = np.array(depths, dtype=np.int64)[np.array(nodes, dtype=np.int64) - first]
    order = np.lexsort((key_depth, np.array(lows, dtype=np.uint64))).tolist()
    out_a: list[int] = []
    out_n: list[int] = []
    stack: list[tuple[int, int]] = []
    for i in order:
        lo, hi, n = lows[i], highs[i], nodes[i]
        while stack and stack[-1][0] <= lo:
            h = stack.pop()[0]
            out_a.append(h)
            out_n.append(stack[-1][1] if stack else -1)
        if stack and hi > stack[-1][0]:
            hi = stack[-1][0]
        stack.append((hi, n))
        out_a.append(lo)
        out_n.append(n)
    while stack:
        h = stack.pop()[0]
        out_a.append(h)
        out_n.append(stack[-1][1] if stack else -1)
    a = np.array(out_a, dtype=np.uint64)
    n_arr = np.array(out_n, dtype=np.int64)
    order2 = np.argsort(a, kind="stable")
    a, n_arr = a[order2], n_arr[order2]
    keep = np.ones(len(a), dtype=bool)
    keep[:-1] = a[:-1] != a[1:]
    steps = np.empty(int(keep.sum()), dtype=STEP_DTYPE)
    steps["a"] = a[keep]
    steps["n"] = n_arr[keep]
    steps["p"] = steps["n"] >= 0
    return steps


class _NameResolver:
    """Function name of each node: the linkage name anywhere on its origin chain, else the plain name.

    Vectorised per chunk of nodes: each round follows every unresolved chain one reference
    further (a binary search in the DIE offsets); `MAX_ORIGIN_CHAIN` rounds bound cycles.
    Names stay numbers (`.debug_str` offsets or inline-string codes) until a pair is new, so
    each distinct function is decoded once. Functions are numbered in the order nodes first
    name them.
    """

    def __init__(self, c: Collector, debug_str: bytes) -> None:
        die = np.frombuffer(c.name_die, dtype=np.int64)
        cols = [np.frombuffer(col, dtype=np.int64) for col in (c.name_name, c.name_linkage, c.name_ref)]
        if len(die) > 1 and not bool(np.all(die[1:] > die[:-1])):
            order = np.argsort(die, kind="stable")
            die, cols = die[order], [col[order] for col in cols]
        self.die, (self.e_name, self.e_link, self.e_ref) = die, cols
        self.debug_str = debug_str
        self.strings = Strings(debug_str)
        self.inline = c.inline_names
        self.table: list[str | None] = []
        self.index: dict[str | None, int] = {}
        self.decoded: dict[tuple[int, int], int] = {}

    def _text(self, code: int) -> str | None:
        if code == NO_NAME:
            return None
        if code < 0:
            return self.inline[-2 - code]
        try:
            return self.strings.at(self.debug_str, code)
        except MalformedObject:
            return None

    def _chains(self, origins: Any) -> tuple[Any, Any]:
        """(linkage code, name code) found along each origin's chain."""
        die, e_name, e_link, e_ref = self.die, self.e_name, self.e_link, self.e_ref
        cur = origins.copy()
        name = np.full(len(cur), NO_NAME, dtype=np.int64)
        link = np.full(len(cur), NO_NAME, dtype=np.int64)
        active = cur >= 0
        for _ in range(MAX_ORIGIN_CHAIN):
            idx = np.flatnonzero(active)
            if not len(idx) or not len(die):
                break
            pos = np.searchsorted(die, cur[idx])
            pos_c = np.minimum(pos, len(die) - 1)
            found = (pos < len(die)) & (die[pos_c] == cur[idx])
            idx, pos_c = idx[found], pos_c[found]
            active[:] = False
            fill = (name[idx] == NO_NAME) & (e_name[pos_c] != NO_NAME)
            name[idx[fill]] = e_name[pos_c[fill]]
            has_link = e_link[pos_c] != NO_NAME
            link[idx[has_link]] = e_link[pos_c[has_link]]
            go = ~has_link & (e_ref[pos_c] >= 0)
            cur[idx[go]] = e_ref[pos_c[go]]
            active[idx[go]] = True
        return link, name

    def functions_of(self, origin_column: Any) -> Any:
        """Function index (into `table`) of each node of one chunk, as int32."""
        origins, per_node = np.unique(origin_column.astype(np.int64), return_inverse=True)
        per_node = per_node.reshape(-1)
        link, name = self._chains(origins)
        first = np.full(len(origins), len(per_node), dtype=np.int64)
        np.minimum.at(first, per_node, np.arange(len(per_node), dtype=np.int64))
        origin_fi = np.zeros(len(origins), dtype=np.int32)
        links, names = link.tolist(), name.tolist()
        for k in np.argsort(first, kind="stable").tolist():
            pair = (links[k], names[k])
            fi = self.decoded.get(pair)
            if fi is None:
                chosen = self._text(pair[0]) or self._text(pair[1])
                fi = self.index.get(chosen)
                if fi is None:
                    fi = self.index[chosen] = len(self.table)
                    self.table.append(chosen)
                self.decoded[pair] = fi
            origin_fi[k] = fi
        return origin_fi[per_node]


def read_dwarf(sections: dict[str, bytes], little_endian: bool = True, budget: Budget | None = None,
               on_progress: Callable[[], None] | None = None) -> DwarfData:
    """Decode everything the symcache needs; malformed input raises `MalformedObject`.

    Rows go into run stores under `budget` (an in-memory default when None); `on_progress`
    runs after each unit (the builder releases mapped pages there).
    """
    budget = budget if budget is not None else Budget(DEFAULT_MEMORY_BYTES)
    lines = _Lines(sections, little_endian, RunStore(LINE_DTYPE, budget))
    steps = RunStore(STEP_DTYPE, budget)
    nodes = ChunkStore(NODE_DTYPE, budget)
    stores: list[RunStore | ChunkStore] = [lines.store, steps, nodes]

    def unit_end(c: Collector) -> None:
        steps.append(unit_steps(c))
        nodes.append(c.take_nodes())
        budget.check()
        if on_progress is not None:
            on_progress()

    try:
        collected = UnitWalker(sections, little_endian, lines.on_unit, unit_end).walk()
        lines.store.finish()
        steps.finish()
        resolver = _NameResolver(collected, sections.get("debug_str", b""))
        functions = ChunkStore(np.int32, budget)
        stores.append(functions)
        for chunk in nodes.chunks():
            functions.append(resolver.functions_of(chunk["origin"]))
            budget.check()
    except (IndexError, ValueError, OverflowError, struct.error) as exc:
        for store in stores:
            store.close()
        raise MalformedObject(f"malformed DWARF: {exc}") from exc
    except BaseException:
        for store in stores:
            store.close()
        raise
    return DwarfData(lines.files, lines.store, steps, nodes, functions, resolver.table, budget)
