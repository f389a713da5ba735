"""DWARF line programs (versions 2–5) decoded straight from the section bytes.

pyelftools builds one Python object per row and runs a generic state machine;
on a C++ binary that is most of the conversion time. This module decodes the
header once, then runs a tight opcode loop that appends plain ints to four
lists. Rows keep the raw file index of the unit; `LineTable.files` maps it to
a path (already joined with the directories and the compilation directory).

Sequences starting at address 0 are dropped: linkers resolve code that was
garbage-collected to 0 (or to a -1/-2 tombstone, read here as 0), and such
rows would shadow nothing real but confuse lookups of low addresses.
"""

from __future__ import annotations

import posixpath
import struct
from array import array
from dataclasses import dataclass, field
from typing import Literal

from symbolicator.errors import MalformedObject
from symbolicator.native.dwarf.forms import Reader, Strings

END_OF_SEQUENCE = -1

# DW_LNCT_* content types of DWARF 5 entry formats.
_LNCT_PATH = 1
_LNCT_DIRECTORY_INDEX = 2


@dataclass(slots=True)
class LineTable:
    """Rows of one unit: parallel typed arrays (8 bytes a value, not a Python int each),
    `file == END_OF_SEQUENCE` ends a sequence.

    Addresses are file virtual addresses
    `line`/`column` 0 mean unknown.
    """

    files: list[str]
    addrs: array[int] = field(default_factory=lambda: array("Q"))
    file_idx: array[int] = field(default_factory=lambda: array("q"))
    lines: array[int] = field(default_factory=lambda: array("q"))
    columns: array[int] = field(default_factory=lambda: array("q"))


def join_path(comp_dir: str, directory: str, name: str) -> str:
    """The path llvm-symbolizer prints, with `..` and `.` resolved (docs/cli.md)."""
    if not name.startswith("/"):
        if directory and not directory.startswith("/") and comp_dir:
            directory = comp_dir + "/" + directory
        elif not directory:
            directory = comp_dir
        name = directory + "/" + name if directory else name
    return posixpath.normpath(name) if name else name


def _read_v5_entries(r: Reader, strings: Strings, addr_size: int) -> list[tuple[str, int]]:
    """Directory or file entries of a DWARF 5 header: (path, directory index)."""
    format_count = r.u8()
    formats = [(r.uleb(), r.uleb()) for _ in range(format_count)]
    count = r.uleb()
    if count > 10_000_000:
        raise MalformedObject("DWARF line header claims too many entries")
    out: list[tuple[str, int]] = []
    for _ in range(count):
        path = ""
        dir_index = 0
        for content, form in formats:
            value = r.form_value(form, addr_size)
            if content == _LNCT_PATH:
                path = strings.resolve(form, value)
            elif content == _LNCT_DIRECTORY_INDEX:
                dir_index = value if isinstance(value, int) else 0
        out.append((path, dir_index))
    return out


def decode_line_program(data: bytes, offset: int, comp_dir: str, cu_name: str, strings: Strings,
                        addr_size: int, little_endian: bool = True) -> LineTable:
    """Decode the line program at `offset` of `.debug_line` into a `LineTable`."""
    r = Reader(data, offset, little_endian)
    unit_length = r.u32()
    offset_size = 4
    if unit_length == 0xFFFFFFFF:
        unit_length = r.u64()
        offset_size = 8
    end = r.pos + unit_length
    if end > len(data):
        raise MalformedObject(f"DWARF line program at {offset:#x} runs past the section end")
    r.offset_size = offset_size
    version = r.u16()
    if not 2 <= version <= 5:
        raise MalformedObject(f"unsupported DWARF line table version {version}")
    if version >= 5:
        addr_size = r.u8()
        r.u8()
    header_length = r.offset()
    program_start = r.pos + header_length
    min_inst = r.u8()
    if version >= 4:
        r.u8()
    r.u8()  # default_is_stmt: every row counts for lookups, as in LLVM
    line_base = r.s8()
    line_range = r.u8()
    opcode_base = r.u8()
    if line_range == 0:
        raise MalformedObject("DWARF line header with line_range 0")
    std_lengths = [0] + [r.u8() for _ in range(max(opcode_base - 1, 0))]

    if version >= 5:
        dirs = [d for d, _ in _read_v5_entries(r, strings, addr_size)]
        entries = _read_v5_entries(r, strings, addr_size)
    else:
        dirs = [comp_dir]
        while True:
            s = r.cstr()
            if not s:
                break
            dirs.append(s)
        entries = [(cu_name, 0)]
        while True:
            s = r.cstr()
            if not s:
                break
            d = r.uleb()
            r.uleb()
            r.uleb()
            entries.append((s, d))
    if dirs and version >= 5 and not dirs[0].startswith("/") and comp_dir:
        dirs[0] = join_path(comp_dir, "", dirs[0])
    files = []
    for name, d in entries:
        directory = dirs[d] if 0 <= d < len(dirs) else ""
        files.append(join_path(comp_dir, directory, name))
    table = LineTable(files)
    _run_program(data, program_start, end, table, addr_size, min_inst, line_base, line_range,
                 opcode_base, std_lengths, little_endian)
    return table


def _run_program(d: bytes, pos: int, end: int, t: LineTable, addr_size: int, min_inst: int,
                 line_base: int, line_range: int, opcode_base: int, std_lengths: list[int],
                 little_endian: bool) -> None:
    """The state machine
    written flat because it runs once per row."""
    addrs, files, lines, cols = t.addrs, t.file_idx, t.lines, t.columns
    a_app, f_app, l_app, c_app = addrs.append, files.append, lines.append, cols.append
    byteorder: Literal["little", "big"] = "little" if little_endian else "big"
    u16 = struct.Struct("<H" if little_endian else ">H").unpack_from
    const_add = ((255 - opcode_base) // line_range) * min_inst
    addr = 0
    file = 1
    line = 1
    col = 0
    seq_start = len(addrs)
    while pos < end:
        op = d[pos]
        pos += 1
        if op >= opcode_base:
            adj = op - opcode_base
            addr += (adj // line_range) * min_inst
            line += line_base + adj % line_range
            a_app(addr)
            f_app(file)
            l_app(line)
            c_app(col)
        elif op == 0:
            length = 0
            shift = 0
            while True:
                b = d[pos]
                pos += 1
                length |= (b & 0x7F) << shift
                if b < 0x80:
                    break
                shift += 7
            if length == 0 or pos + length > end:
                raise MalformedObject("DWARF extended line opcode runs past the program")
            sub = d[pos]
            nxt = pos + length
            if sub == 1:
                while len(addrs) > seq_start and addrs[-1] >= addr:
                    addrs.pop()  # empty rows
                    files.pop()
                    lines.pop()
                    cols.pop()
                a_app(addr)
                f_app(END_OF_SEQUENCE)
                l_app(0)
                c_app(0)
                if addrs[seq_start] == 0:
                    del addrs[seq_start:], files[seq_start:], lines[seq_start:], cols[seq_start:]
                seq_start = len(addrs)
                addr = 0
                file = 1
                line = 1
                col = 0
            elif sub == 2:
                addr = int.from_bytes(d[pos + 1:nxt], byteorder)
                if addr >= (1 << (8 * (length - 1))) - 2:
                    addr = 0  # a linker's tombstone (-1/-2) for dropped code: dropped with the sequence
            pos = nxt
        elif op == 1:
            a_app(addr)
            f_app(file)
            l_app(line)
            c_app(col)
        elif op == 2 or op == 4 or op == 5 or op == 12:
            v = 0
            shift = 0
            while True:
                b = d[pos]
                pos += 1
                v |= (b & 0x7F) << shift
                if b < 0x80:
                    break
                shift += 7
            if op == 2:
                addr += v * min_inst
            elif op == 4:
                file = v
            elif op == 5:
                col = v
        elif op == 3:
            v = 0
            shift = 0
            while True:
                b = d[pos]
                pos += 1
                v |= (b & 0x7F) << shift
                shift += 7
                if b < 0x80:
                    break
            if b & 0x40:
                v -= 1 << shift
            line += v
        elif op == 8:
            addr += const_add
        elif op == 9:
            addr += u16(d, pos)[0]
            pos += 2
        elif op in (6, 7, 10, 11):
            pass
        else:
            for _ in range(std_lengths[op] if op < len(std_lengths) else 0):
                while d[pos] >= 0x80:
                    pos += 1
                pos += 1
    if seq_start < len(addrs):
        # A program without a final end_sequence: keep nothing half-open.
        del addrs[seq_start:], files[seq_start:], lines[seq_start:], cols[seq_start:]
