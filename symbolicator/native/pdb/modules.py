"""One module's symbol stream: procedures, inline sites and the C13 line subsections.

A module stream is `u32 signature (4)`, the symbol records, the C11 lines (ignored: no current
compiler writes them) and the C13 subsections. We read:

- S_GPROC32 / S_LPROC32 and their `_ID` and `_DPC` forms: a function's segment:offset, length and
  name; every S_INLINESITE / S_INLINESITE2 between it and its S_END, nested by the
  S_INLINESITE_END records to any depth (a stack, no recursion).
- The binary annotations of each inline site, decoded into code ranges with file and line
  (`decode_annotations`), the way the compiler wrote them (MCCodeView's `encodeInlineLineTable`):
  a row starts at each code-offset change, a `ChangeCodeLength` closes the open row.
- DEBUG_S_LINES (the top-level line table), DEBUG_S_FILECHKSMS (checksum offset → `/names`
  offset) and DEBUG_S_INLINEELINES (an inlinee's file and first line, which its annotations'
  line deltas start from).

Everything is bounded by the module stream, which the caller reads whole (one object file's
symbols, not the PDB's); a record that points outside it is a `MalformedObject`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from symbolicator.errors import MalformedObject

S_END, S_PROC_ID_END, S_INLINESITE_END = 0x0006, 0x114F, 0x114E
S_GPROC32, S_LPROC32, S_GPROC32_ID, S_LPROC32_ID = 0x1110, 0x110F, 0x1147, 0x1146
S_LPROC32_DPC, S_LPROC32_DPC_ID = 0x1155, 0x1156
S_BLOCK32, S_THUNK32, S_SEPCODE, S_WITH32 = 0x1103, 0x1102, 0x1132, 0x1104
S_INLINESITE, S_INLINESITE2 = 0x114D, 0x115D
PROCS = {S_GPROC32, S_LPROC32, S_GPROC32_ID, S_LPROC32_ID, S_LPROC32_DPC, S_LPROC32_DPC_ID}
_SCOPES = PROCS | {S_BLOCK32, S_THUNK32, S_SEPCODE, S_WITH32}  # records closed by an S_END
_WANTED = _SCOPES | {S_END, S_PROC_ID_END, S_INLINESITE, S_INLINESITE2, S_INLINESITE_END}
DEBUG_S_LINES, DEBUG_S_FILECHKSMS, DEBUG_S_INLINEELINES = 0xF2, 0xF4, 0xF6
_PROC = struct.Struct("<IIIIIIIIHB")
_RECORD = struct.Struct("<HH")
MAX_ANNOTATION_ROWS = 1 << 16  # per inline site: a bound on what a hostile annotation blob yields
MAX_INLINE_DEPTH = 255  # inline sites kept per chain (+ the procedure = symcache.MAX_INLINE_DEPTH frames)


@dataclass(slots=True)
class InlineSite:
    """An inlined call: the inlinee's item id, its parent site (-1: the procedure) and its depth (1 = in the
    procedure), and its rows `(start, end, file checksum offset, line)` in offsets from the procedure start."""

    inlinee: int
    parent: int
    depth: int
    annotations: bytes
    rows: list[tuple[int, int, int, int]] = field(default_factory=list)


@dataclass(slots=True)
class Procedure:
    """A function: segment:offset, code length, the name in the record, and its inline sites in record order."""

    segment: int
    offset: int
    length: int
    name: str
    sites: list[InlineSite] = field(default_factory=list)


@dataclass(slots=True)
class LineBlock:
    """A DEBUG_S_LINES block: segment:offset of its code, its length, the file (checksum offset) and
    the rows `(offset from the block's code start, line)`."""

    segment: int
    offset: int
    length: int
    file: int
    rows: list[tuple[int, int]]


@dataclass(slots=True)
class ModuleDebug:
    """What one module contributes."""

    procedures: list[Procedure] = field(default_factory=list)
    lines: list[LineBlock] = field(default_factory=list)
    checksums: dict[int, int] = field(default_factory=dict)  # checksum offset → /names offset
    inlinees: dict[int, tuple[int, int]] = field(default_factory=dict)  # item id → (checksum offset, line)


def read_module(data: bytes, sym_bytes: int, c11_bytes: int, c13_bytes: int) -> ModuleDebug:
    """Parse one module stream (its bytes and the sizes from its DBI module info)."""
    if sym_bytes > len(data) or sym_bytes + c11_bytes + c13_bytes > len(data):
        raise MalformedObject(f"PDB module stream of {len(data)} bytes is shorter than its sizes claim")
    out = ModuleDebug()
    if sym_bytes >= 4:
        _symbols(data, 4, sym_bytes, out)
    c13 = sym_bytes + c11_bytes
    _subsections(data, c13, c13 + c13_bytes, out)
    for proc in out.procedures:
        for site in proc.sites:
            start_file, start_line = out.inlinees.get(site.inlinee, (-1, 0))
            site.rows = decode_annotations(site.annotations, start_file, start_line)
            site.annotations = b""
    return out


def _cstring(data: bytes, pos: int, end: int) -> str:
    stop = data.find(b"\0", pos, end)
    return data[pos:stop if stop >= 0 else end].decode("utf-8", "replace")


def _symbols(data: bytes, pos: int, end: int, out: ModuleDebug) -> None:
    proc: Procedure | None = None
    scopes: list[int] = []  # kinds of the open S_END-closed scopes inside the procedure
    sites: list[int] = []  # indices (in proc.sites) of the open inline sites
    header = _RECORD.unpack_from
    wanted = _WANTED
    while pos + 4 <= end:  # every record of every module passes here
        length, kind = header(data, pos)
        body, nxt = pos + 4, pos + 2 + length
        if length < 2 or nxt > end:
            raise MalformedObject(f"PDB symbol record of length {length} at {pos} runs past its stream")
        pos = nxt
        if kind not in wanted:  # locals, register ranges, frame info: most records
            continue
        if kind in PROCS:
            if nxt - body < _PROC.size:
                raise MalformedObject("PDB procedure record is too short")
            _par, _end, _next, length, _ds, _de, _type, offset, segment, _flags = _PROC.unpack_from(data, body)
            if proc is None:
                proc = Procedure(segment, offset, length, _cstring(data, body + _PROC.size, nxt))
                out.procedures.append(proc)
                scopes, sites = [kind], []
                continue
        if proc is None:
            continue
        if kind in _SCOPES:
            scopes.append(kind)
        elif kind in (S_END, S_PROC_ID_END):
            if scopes:
                scopes.pop()
            if not scopes:
                proc = None
        elif kind in (S_INLINESITE, S_INLINESITE2):
            head = 16 if kind == S_INLINESITE2 else 12
            if nxt - body < head:
                raise MalformedObject("PDB inline site record is too short")
            (inlinee,) = struct.unpack_from("<I", data, body + 8)
            if len(sites) >= MAX_INLINE_DEPTH:  # deeper calls are not kept (the symcache reader stops there too)
                sites.append(-2)
                continue
            parent = sites[-1] if sites else -1
            proc.sites.append(InlineSite(inlinee, parent, len(sites) + 1, data[body + head:nxt]))
            sites.append(len(proc.sites) - 1)
        elif kind == S_INLINESITE_END and sites:
            sites.pop()


def _subsections(data: bytes, pos: int, end: int, out: ModuleDebug) -> None:
    while pos + 8 <= end:
        kind, size = struct.unpack_from("<II", data, pos)
        body = pos + 8
        nxt = body + size
        if nxt > end:
            raise MalformedObject(f"PDB C13 subsection {kind:#x} runs past the module stream")
        kind &= 0x7FFFFFFF  # the high bit marks a subsection to ignore, the kind stays the same
        if kind == DEBUG_S_LINES:
            _lines(data, body, nxt, out)
        elif kind == DEBUG_S_FILECHKSMS:
            _checksums(data, body, nxt, out)
        elif kind == DEBUG_S_INLINEELINES:
            _inlinee_lines(data, body, nxt, out)
        pos = (nxt + 3) & ~3


def _lines(data: bytes, pos: int, end: int, out: ModuleDebug) -> None:
    if end - pos < 12:
        raise MalformedObject("PDB line subsection is too short")
    offset, segment, flags, length = struct.unpack_from("<IHHI", data, pos)
    pos += 12
    columns = bool(flags & 1)
    while pos + 12 <= end:
        file, count, block_bytes = struct.unpack_from("<III", data, pos)
        need = 12 + count * (12 if columns else 8)
        if block_bytes < need or pos + block_bytes > end:
            raise MalformedObject("PDB line block overruns its subsection")
        raw = struct.unpack_from(f"<{2 * count}I", data, pos + 12)
        rows = [(raw[2 * i], raw[2 * i + 1] & 0xFFFFFF) for i in range(count)]
        out.lines.append(LineBlock(segment, offset, length, file, rows))
        pos += block_bytes


def _checksums(data: bytes, pos: int, end: int, out: ModuleDebug) -> None:
    start = pos
    while pos + 6 <= end:
        name, size, _kind = struct.unpack_from("<IBB", data, pos)
        out.checksums[pos - start] = name
        pos = (pos + 6 + size + 3) & ~3


def _inlinee_lines(data: bytes, pos: int, end: int, out: ModuleDebug) -> None:
    if end - pos < 4:
        return
    (signature,) = struct.unpack_from("<I", data, pos)
    pos += 4
    extra = signature == 1  # CV_INLINEE_SOURCE_LINE_SIGNATURE_EX: a list of extra files follows
    while pos + 12 <= end:
        inlinee, file, line = struct.unpack_from("<III", data, pos)
        pos += 12
        if extra:
            if pos + 4 > end:
                break
            (n,) = struct.unpack_from("<I", data, pos)
            pos += 4 + 4 * n
        out.inlinees[inlinee] = (file, line)


def _uncompress(data: bytes, pos: int) -> tuple[int, int]:
    """CVUncompressData: 1, 2 or 4 bytes, big-endian, the top bits saying how many; (-1, pos) at the end."""
    if pos >= len(data):
        return -1, pos
    b = data[pos]
    if b & 0x80 == 0:
        return b, pos + 1
    if b & 0xC0 == 0x80:
        if pos + 2 > len(data):
            return -1, pos
        return ((b & 0x3F) << 8) | data[pos + 1], pos + 2
    if b & 0xE0 == 0xC0:
        if pos + 4 > len(data):
            return -1, pos
        return ((b & 0x1F) << 24) | (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3], pos + 4
    return -1, pos


def decode_annotations(blob: bytes, file: int, line: int) -> list[tuple[int, int, int, int]]:
    """Rows `(start, end, file checksum offset, line)` of an inline site, code offsets from the procedure start.

    Opcodes (cvinfo.h `BinaryAnnotationOpcode`): 1 CodeOffset, 2 ChangeCodeOffsetBase, 3 ChangeCodeOffset,
    4 ChangeCodeLength, 5 ChangeFile, 6 ChangeLineOffset, 7 ChangeLineEndDelta, 8 ChangeRangeKind,
    9 ChangeColumnStart, 10 ChangeColumnEndDelta, 11 ChangeCodeOffsetAndLineOffset, 12
    ChangeCodeLengthAndCodeOffset, 13 ChangeColumnEnd; 0 pads the end. A row opens at each code
    offset change and lasts until the next row or a ChangeCodeLength; the last open row of the
    blob gets no end and is dropped (compilers always close it)."""
    rows: list[tuple[int, int, int, int]] = []
    code = 0
    start, row_file, row_line = -1, 0, 0  # the open row (start -1: none)
    pos = 0
    n = len(blob)
    while pos < n and len(rows) < MAX_ANNOTATION_ROWS:
        op = blob[pos]  # opcodes are below 0x80: one byte
        if op == 0 or op >= 0x80:
            break
        if pos + 1 < n and blob[pos + 1] < 0x80:  # the common one-byte operand
            a, pos = blob[pos + 1], pos + 2
        else:
            a, pos = _uncompress(blob, pos + 1)
            if a < 0:
                break
        if op == 11 or op == 3 or op == 1:  # a new row: ChangeCodeOffsetAndLineOffset, ChangeCodeOffset, CodeOffset
            if op == 11:
                code += a & 0xF
                line += -(a >> 5) if a & 0x10 else a >> 5
            elif op == 3:
                code += a
            else:
                code = a
            if 0 <= start < code:
                rows.append((start, code, row_file, row_line))
            start, row_file, row_line = code, file, line
        elif op == 4:  # ChangeCodeLength: the open row ends `a` bytes after its start
            if start >= 0:
                code = start + a
                if code > start:
                    rows.append((start, code, row_file, row_line))
                start = -1
            else:
                code += a
        elif op == 5:
            file = a
        elif op == 6:
            line += -(a >> 1) if a & 1 else a >> 1
        elif op == 12:  # ChangeCodeLengthAndCodeOffset: length, then offset delta
            b, pos = _uncompress(blob, pos)
            if b < 0:
                break
            code += b
            if 0 <= start < code:
                rows.append((start, code, row_file, row_line))
            if a:
                rows.append((code, code + a, file, line))
            code += a
            start = -1
        elif op not in (2, 7, 8, 9, 10, 13):  # 2 ChangeCodeOffsetBase (not for x64), columns, range kinds
            break
    return rows
