"""DWARF of one object → line rows, function ranges and the inline tree, ready for the symcache.

The container does not matter here: ELF (this module, through pyelftools'
section headers) and Mach-O (`macho_dwarf`) both hand over a dict of raw,
decompressed section bytes keyed by the DWARF name without prefix
(`debug_info`, `debug_line`, …). `read_dwarf` then decodes the line programs
(`dwarf_lines`) and walks the DIEs (`dwarf_units`), and resolves function
names across `abstract_origin` / `specification` chains with a cycle guard.
"""

from __future__ import annotations

import mmap
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import zstandard

from symbolicator.errors import MalformedObject, UnsupportedFormat
from symbolicator.native.dwarf_forms import Strings
from symbolicator.native.dwarf_lines import END_OF_SEQUENCE, decode_line_program
from symbolicator.native.dwarf_units import Collector, UnitWalker

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

    `rows_*` are numpy arrays sorted by address, one row per distinct address;
    `rows_file == -1` starts a gap. `files[i]` is a normalised path. Node `i`
    is a function (`node_parent[i] == -1`) or an inlined call; its name is
    `functions[node_function[i]] = (symbol, linkage)` where symbol is the raw
    name to show and `linkage` tells whether it is mangled.
    """

    files: list[str]
    rows_addr: Any
    rows_file: Any
    rows_line: Any
    rows_col: Any
    nodes: Collector
    node_function: list[int] = field(default_factory=list)
    functions: list[str | None] = field(default_factory=list)


def _decompress(name: str, raw: bytes, flags: int, is64: bool, little_endian: bool, max_bytes: int) -> bytes:
    """SHF_COMPRESSED (zlib/zstd, Elf_Chdr header) and legacy `.zdebug_*` (`ZLIB` + 8-byte BE size).

    Memory stays bounded by the size the header states, which must not exceed
    `max_bytes`: a claim over it is refused before anything is inflated, and
    no stream is inflated past claim + 1 byte. zstd goes through a stream
    reader because its one-shot `decompress` trusts the size in zstd's own
    frame header, which a crafted file sets to gigabytes.
    """
    bo: Literal["little", "big"] = "little" if little_endian else "big"
    try:
        if flags & _SHF_COMPRESSED:
            ch_type = int.from_bytes(raw[0:4], bo)
            size = int.from_bytes(raw[8:16] if is64 else raw[4:8], bo)
            body = raw[24 if is64 else 12:]
        elif name.startswith(".zdebug_"):
            if raw[:4] != b"ZLIB":
                raise MalformedObject(f"section {name}: missing ZLIB header")
            ch_type, size, body = _ELFCOMPRESS_ZLIB, int.from_bytes(raw[4:12], "big"), raw[12:]
        else:
            return raw
        if size > max_bytes:
            raise MalformedObject(f"section {name}: claims {size} bytes uncompressed, over the {max_bytes} byte limit")
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


def elf_dwarf_sections(elf: Any, data: bytes | memoryview | mmap.mmap,
                       max_section_bytes: int = MAX_SECTION_BYTES) -> dict[str, bytes]:
    """Raw bytes of the DWARF sections of a pyelftools `ELFFile`, decompressed, bounds-checked.

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
        raw = bytes(data[offset:offset + size])
        out[key] = _decompress(name, raw, section["sh_flags"], is64, elf.little_endian, max_section_bytes)
    return out


class _Lines:
    """Decodes each unit's line program once and interns file paths globally."""

    def __init__(self, sections: dict[str, bytes], little_endian: bool) -> None:
        self.line = sections.get("debug_line", b"")
        self.le = little_endian
        self.files: list[str] = []
        self.file_ids: dict[str, int] = {}
        self.chunks: list[tuple[Any, Any, Any, Any]] = []
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
        self.chunks.append((np.frombuffer(table.addrs, dtype=np.uint64), file_idx,
                            np.frombuffer(table.lines, dtype=np.int64), np.frombuffer(table.columns, dtype=np.int64)))
        self.done[offset] = mapping
        return mapping


def _merge_rows(chunks: list[tuple[Any, Any, Any, Any]]) -> tuple[Any, Any, Any, Any]:
    """All units' rows sorted by address; at equal addresses the last row wins, as in LLVM."""
    if not chunks:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    addr = np.concatenate([c[0] for c in chunks]).astype(np.uint64)
    file = np.concatenate([c[1] for c in chunks]).astype(np.int64)
    line = np.concatenate([c[2] for c in chunks]).astype(np.int64)
    col = np.concatenate([c[3] for c in chunks]).astype(np.int64)
    is_row = (file != END_OF_SEQUENCE).astype(np.int8)
    order = np.lexsort((is_row, addr))
    addr, file, line, col = addr[order], file[order], line[order], col[order]
    keep = np.ones(len(addr), dtype=bool)
    keep[:-1] = addr[:-1] != addr[1:]
    return addr[keep], file[keep], line[keep], col[keep]


def _resolve_names(nodes: Collector, debug_str: bytes) -> tuple[list[int], list[str | None]]:
    """Function name of each node: the linkage name anywhere on its origin chain, else the plain name."""
    names = nodes.names
    memo: dict[int, int] = {}
    table: list[str | None] = []
    index: dict[str | None, int] = {}
    strings = Strings(debug_str)

    def text(v: int | str | None) -> str | None:
        if v is None or isinstance(v, str):
            return v
        try:
            return strings.at(debug_str, v)
        except MalformedObject:
            return None

    out = []
    for origin in nodes.node_origin:
        fi = memo.get(origin)
        if fi is None:
            linkage = name = None
            seen: set[int] = set()
            off = origin
            while off >= 0 and off not in seen and len(seen) < MAX_ORIGIN_CHAIN:
                seen.add(off)
                entry = names.get(off)
                if entry is None:
                    break
                if name is None and entry[0] is not None:
                    name = text(entry[0])
                if entry[1] is not None:
                    linkage = text(entry[1])
                    break
                off = entry[2]
            chosen = linkage or name
            fi = index.get(chosen)
            if fi is None:
                fi = index[chosen] = len(table)
                table.append(chosen)
            memo[origin] = fi
        out.append(fi)
    return out, table


def read_dwarf(sections: dict[str, bytes], little_endian: bool = True) -> DwarfData:
    """Decode everything the symcache needs; malformed input raises `MalformedObject`."""
    lines = _Lines(sections, little_endian)
    try:
        collected = UnitWalker(sections, little_endian, lines.on_unit).walk()
    except (IndexError, ValueError, OverflowError) as exc:
        raise MalformedObject(f"malformed DWARF: {exc}") from exc
    addr, file, line, col = _merge_rows(lines.chunks)
    node_function, functions = _resolve_names(collected, sections.get("debug_str", b""))
    return DwarfData(lines.files, addr, file, line, col, collected, node_function, functions)
