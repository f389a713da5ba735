"""Breakpad symbol files (`.sym`): the text format `dump_syms` writes and `minidump-stackwalk` reads.

One pass over the lines into plain values: the `MODULE` header (os, arch, debug id, name), the
optional `INFO CODE_ID`, `FILE`, `INLINE_ORIGIN`, `FUNC` (with its `LINE` and `INLINE` records),
`PUBLIC`, and `STACK CFI` (kept as raw lines for `native/cfi/breakpad_cfi.py`). Addresses are
module-relative, as the format states them (the module's load address is subtracted).

Bounded and typed: a malformed record is a `MalformedObject` naming the line; a file of more
than `MAX_RECORDS` records is refused; `STACK WIN` and unknown records are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from symbolicator.errors import InvalidId, MalformedObject, UnsupportedFormat
from symbolicator.types import Arch, CodeId, DebugId

MAX_RECORDS = 50_000_000
MAGIC = b"MODULE "


@dataclass
class Inline:
    """An inlined call: `depth` 0 is inlined into the FUNC itself; ranges are [start, end)."""

    depth: int
    call_line: int
    call_file: int
    origin: int
    ranges: list[tuple[int, int]]


@dataclass
class Func:
    """A FUNC record: [address, address + size) and its lines (address, size, line, file id)."""

    address: int
    size: int
    name: str
    lines: list[tuple[int, int, int, int]] = field(default_factory=list)
    inlines: list[Inline] = field(default_factory=list)


@dataclass
class SymFile:
    """A parsed `.sym` file; `cfi` holds the `STACK CFI` lines' text after `STACK CFI `."""

    os: str
    arch: Arch
    debug_id: DebugId
    name: str
    code_id: CodeId | None = None
    files: dict[int, str] = field(default_factory=dict)
    origins: dict[int, str] = field(default_factory=dict)
    funcs: list[Func] = field(default_factory=list)
    publics: list[tuple[int, str]] = field(default_factory=list)
    cfi: list[str] = field(default_factory=list)


def _int(text: str, base: int, line_no: int) -> int:
    try:
        value = int(text, base)
    except ValueError:
        raise MalformedObject(f"Breakpad symbol file, line {line_no}: {text!r} is not a number") from None
    if not 0 <= value < 1 << 64:
        raise MalformedObject(f"Breakpad symbol file, line {line_no}: {text!r} is out of range")
    return value


def read_header(line: str) -> tuple[str, Arch, DebugId, str]:
    parts = line.rstrip("\r\n").split(" ", 4)
    if len(parts) != 5 or parts[0] != "MODULE":
        raise MalformedObject("not a Breakpad symbol file: the first line must be `MODULE os arch id name`")
    try:
        debug_id = DebugId.parse(parts[3])
    except InvalidId:
        raise MalformedObject(f"Breakpad symbol file: invalid debug id {parts[3]!r}") from None
    return parts[1], Arch.parse(parts[2]), debug_id, parts[4]


def header(f: BinaryIO) -> tuple[str, Arch, DebugId, str, CodeId | None, dict[str, bool]]:
    """The header, the code id and which record kinds the file has, reading it once from the start."""
    features = {"FUNC": False, "LINE": False, "STACK": False, "PUBLIC": False}
    code_id = None
    f.seek(0)
    first = f.readline(4096).decode("utf-8", "replace")
    os_name, arch, debug_id, name = read_header(first)
    for raw in f:
        head = raw[:16]
        if head.startswith(b"FUNC"):
            features["FUNC"] = True
        elif head[:1].isdigit() or head[:1] in b"abcdef":
            features["LINE"] = True
        elif head.startswith(b"STACK CFI"):
            features["STACK"] = True
        elif head.startswith(b"PUBLIC"):
            features["PUBLIC"] = True
        elif head.startswith(b"INFO CODE_ID "):
            try:
                code_id = CodeId.parse(raw.split()[2].decode("ascii", "replace"))
            except (InvalidId, IndexError):
                code_id = None
    return os_name, arch, debug_id, name, code_id, features


def parse(path: Path) -> SymFile:
    """The whole file."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(MAGIC):
        raise UnsupportedFormat("not a Breakpad symbol file")
    lines = data.decode("utf-8", "replace").splitlines()
    if len(lines) > MAX_RECORDS:
        raise MalformedObject(f"Breakpad symbol file with more than {MAX_RECORDS} records")
    os_name, arch, debug_id, name = read_header(lines[0])
    sym = SymFile(os_name, arch, debug_id, name)
    func: Func | None = None
    for n, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        c = line[0]
        if c.isdigit() or "a" <= c <= "f":
            parts = line.split(" ", 3)
            if func is None or len(parts) != 4:
                raise MalformedObject(f"Breakpad symbol file, line {n}: a LINE record outside a FUNC")
            func.lines.append((_int(parts[0], 16, n), _int(parts[1], 16, n), _int(parts[2], 10, n),
                               _int(parts[3], 10, n)))
        elif line.startswith("FUNC "):
            parts = line.split(" ")
            if len(parts) > 1 and parts[1] == "m":
                del parts[1]
            if len(parts) < 5:
                raise MalformedObject(f"Breakpad symbol file, line {n}: FUNC needs address, size, parameters, name")
            name_text = " ".join(parts[4:])
            func = Func(_int(parts[1], 16, n), _int(parts[2], 16, n), name_text)
            sym.funcs.append(func)
        elif line.startswith("INLINE "):
            parts = line.split()
            if func is None or len(parts) < 7 or len(parts) % 2 == 0:
                raise MalformedObject(f"Breakpad symbol file, line {n}: a malformed INLINE record")
            nums = [_int(p, 10, n) for p in parts[1:5]]
            ranges = []
            for i in range(5, len(parts), 2):
                lo = _int(parts[i], 16, n)
                ranges.append((lo, lo + _int(parts[i + 1], 16, n)))
            func.inlines.append(Inline(nums[0], nums[1], nums[2], nums[3], ranges))
        elif line.startswith("PUBLIC "):
            parts = line.split(" ")
            if len(parts) > 1 and parts[1] == "m":
                del parts[1]
            if len(parts) < 4:
                raise MalformedObject(f"Breakpad symbol file, line {n}: PUBLIC needs address, parameters, name")
            sym.publics.append((_int(parts[1], 16, n), " ".join(parts[3:])))
            func = None
        elif line.startswith("FILE "):
            parts = line.split(" ", 2)
            if len(parts) == 3:
                sym.files[_int(parts[1], 10, n)] = parts[2]
        elif line.startswith("INLINE_ORIGIN "):
            parts = line.split(" ", 2)
            if len(parts) == 3:
                sym.origins[_int(parts[1], 10, n)] = parts[2]
        elif line.startswith("STACK CFI "):
            sym.cfi.append(line[10:])
            func = None
        elif line.startswith("INFO CODE_ID "):
            try:
                sym.code_id = CodeId.parse(line.split()[2])
            except (InvalidId, IndexError):
                sym.code_id = None
    return sym
