"""Mach-O headers with `struct`: fat headers, thin headers, load commands and the symbol table.

Everything identification needs sits at the start of each slice (header + load commands), so
only those bytes are read, never the `__DWARF` payload of a multi-GB dSYM. The same pass keeps
the section headers and `LC_SYMTAB`, so the symcache builder can find the DWARF sections and the
`nlist` entries in a memory-mapped file without a second parser. Every count, size and offset
is checked against the slice and the file before it is used: a header that lies (a million fat
slices, a load command running past `sizeofcmds`, a section or symbol table past the end of the
slice) raises `MalformedObject` before anything is allocated or read from it.
"""

from __future__ import annotations

import mmap
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from symbolicator.errors import MalformedObject, UnsupportedFormat
from symbolicator.types import Arch, CodeId, DebugId

FAT_MAGIC = 0xCAFEBABE
FAT_MAGIC_64 = 0xCAFEBABF
THIN_MAGICS = {
    b"\xce\xfa\xed\xfe": ("<", False), b"\xcf\xfa\xed\xfe": ("<", True),
    b"\xfe\xed\xfa\xce": (">", False), b"\xfe\xed\xfa\xcf": (">", True),
}
MAX_FAT_ARCHS = 32
MAX_SIZEOFCMDS = 16 << 20

LC_SEGMENT, LC_SYMTAB, LC_ID_DYLIB, LC_SEGMENT_64, LC_UUID = 0x1, 0x2, 0xD, 0x19, 0x1B
MH_OBJECT, MH_EXECUTE, MH_DSYM = 0x1, 0x2, 0xA
_FILETYPES = {MH_OBJECT: "object", MH_EXECUTE: "executable", 0x6: "library", 0x7: "library",
              0x8: "library", 0xB: "library", MH_DSYM: "debug_companion"}
_ZEROFILL = {0x1, 0xC, 0x10, 0x12}

CPU_X86, CPU_X86_64, CPU_ARM, CPU_ARM64, CPU_ARM64_32 = 7, 0x01000007, 12, 0x0100000C, 0x0200000C


@dataclass(frozen=True, slots=True)
class Section:
    """A section header. `addr`/`size` are the stated VM range; `offset` counts bytes from the
    start of the slice. `stored` is False when the section has no bytes in the file (zerofill,
    offset 0, or a segment without file data, as `__TEXT` in a dSYM); only stored sections were
    checked against the slice bounds, so only they may be read."""

    segname: str
    sectname: str
    addr: int
    size: int
    offset: int
    flags: int
    stored: bool


@dataclass(frozen=True, slots=True)
class Symtab:
    """`LC_SYMTAB`, offsets from the start of the slice, already checked against its size."""

    symoff: int
    nsyms: int
    stroff: int
    strsize: int


@dataclass(frozen=True, slots=True)
class MachoSlice:
    """One Mach-O object; `offset`/`size` locate it in the file (the whole file when thin).

    `sections` lists every section of every segment in load-command order; `byte_order` is a
    `struct` prefix (`<`/`>`) and `is64` picks `nlist_64` over `nlist`.
    """

    arch: Arch
    code_id: CodeId | None
    debug_id: DebugId | None
    filetype: int
    object_type: str
    has_dwarf_segment: bool
    has_debug_info: bool
    has_symbols: bool
    has_unwind_info: bool
    image_vmaddr: int
    install_name: str | None
    offset: int
    size: int
    sections: tuple[Section, ...] = ()
    symtab: Symtab | None = None
    byte_order: str = "<"
    is64: bool = True


def arch_from_cpu(cputype: int, cpusubtype: int) -> Arch:
    """Symbolicator's arch names; the capability bits of cpusubtype are masked off."""
    sub = cpusubtype & 0x00FFFFFF
    if cputype == CPU_X86_64:
        return Arch.X86_64H if sub == 8 else Arch.X86_64
    if cputype == CPU_ARM64:
        return Arch.ARM64E if sub == 2 else Arch.ARM64
    if cputype == CPU_ARM64_32:
        return Arch.ARM64_32
    if cputype == CPU_ARM:
        return Arch.ARMV7 if sub == 9 else Arch.ARM
    if cputype == CPU_X86:
        return Arch.X86
    return {18: Arch.PPC, 0x01000012: Arch.PPC64}.get(cputype, Arch.UNKNOWN)


def _read_exact(f: BinaryIO, offset: int, length: int, what: str) -> bytes:
    f.seek(offset)
    data = f.read(length)
    if len(data) != length:
        raise MalformedObject(f"truncated Mach-O: {what} at offset {offset} needs {length} bytes")
    return data


def read_fat(f: BinaryIO, file_size: int) -> list[MachoSlice]:
    """All slices of a universal binary, in file order."""
    magic, nfat = struct.unpack(">II", _read_exact(f, 0, 8, "fat header"))
    if nfat > MAX_FAT_ARCHS:
        if nfat >> 16 < 0x100 and 45 <= (nfat & 0xFFFF) <= 0x100:
            raise UnsupportedFormat("not a debug file: a Java class file (0xCAFEBABE + class version)")
        raise MalformedObject(f"malformed fat Mach-O: header claims {nfat} slices (at most {MAX_FAT_ARCHS})")
    if nfat == 0:
        raise MalformedObject("malformed fat Mach-O: no slices")
    is64 = magic == FAT_MAGIC_64
    entry_fmt = ">iiQQII" if is64 else ">iiIII"
    entry_size = struct.calcsize(entry_fmt)
    table = _read_exact(f, 8, nfat * entry_size, f"fat table of {nfat} slices")
    slices = []
    for i in range(nfat):
        cputype, cpusubtype, offset, size = struct.unpack_from(entry_fmt, table, i * entry_size)[:4]
        if size == 0 or offset < 8 + nfat * entry_size or offset + size > file_size:
            raise MalformedObject(
                f"malformed fat Mach-O: slice {i} (offset {offset}, size {size}) "
                f"is outside the file of {file_size} bytes")
        sl = read_thin(f, offset, size)
        if sl.arch != arch_from_cpu(cputype, cpusubtype):
            raise MalformedObject(f"malformed fat Mach-O: slice {i} is {sl.arch.value}, the fat table says "
                                  f"{arch_from_cpu(cputype, cpusubtype).value}")
        slices.append(sl)
    return slices


def read_thin(f: BinaryIO, offset: int, size: int) -> MachoSlice:
    """One thin Mach-O object of `size` bytes at `offset`."""
    head = _read_exact(f, offset, 4, "Mach-O magic") if size >= 4 else b""
    if head not in THIN_MAGICS:
        raise MalformedObject(f"malformed Mach-O: no Mach-O magic at offset {offset} (found {head.hex()})")
    e, is64 = THIN_MAGICS[head]
    hsize = 32 if is64 else 28
    if size < hsize:
        raise MalformedObject(f"truncated Mach-O: {size} bytes, shorter than the {hsize}-byte header")
    _m, cputype, cpusubtype, filetype, ncmds, sizeofcmds, _flags = struct.unpack(
        e + "IiiIIII", _read_exact(f, offset, 28, "Mach-O header"))
    if sizeofcmds > MAX_SIZEOFCMDS or hsize + sizeofcmds > size:
        raise MalformedObject(
            f"malformed Mach-O: load commands ({sizeofcmds} bytes) run past the end of the object ({size} bytes)")
    if ncmds * 8 > sizeofcmds:
        raise MalformedObject(f"malformed Mach-O: {ncmds} load commands cannot fit in {sizeofcmds} bytes")
    cmds = _read_exact(f, offset + hsize, sizeofcmds, "load commands")
    found = _LoadCommands(is64)
    pos = 0
    for i in range(ncmds):
        cmd, cmdsize = struct.unpack_from(e + "II", cmds, pos)
        if cmdsize < 8 or cmdsize % 4 or pos + cmdsize > sizeofcmds:
            raise MalformedObject(f"malformed Mach-O: load command {i} (cmd 0x{cmd:x}, cmdsize {cmdsize}) at "
                                  f"offset {pos} runs past the end of the load commands ({sizeofcmds} bytes)")
        found.visit(e, cmd, cmds[pos:pos + cmdsize], size, i)
        pos += cmdsize
    raw_uuid = found.uuid
    return MachoSlice(
        arch=arch_from_cpu(cputype, cpusubtype),
        code_id=CodeId(raw_uuid.hex()) if raw_uuid else None,
        debug_id=DebugId(uuid.UUID(bytes=raw_uuid)) if raw_uuid else None,
        filetype=filetype,
        object_type=_FILETYPES.get(filetype, "other"),
        has_dwarf_segment=found.dwarf_segment,
        has_debug_info=found.debug_info,
        has_symbols=found.nsyms > 0,
        has_unwind_info=found.unwind,
        image_vmaddr=found.text_vmaddr,
        install_name=found.install_name,
        offset=offset,
        size=size,
        sections=tuple(found.sections),
        symtab=found.symtab,
        byte_order=e,
        is64=is64,
    )


def read_slices(f: BinaryIO, file_size: int) -> list[MachoSlice]:
    """Every object of a thin or universal Mach-O file; `struct` errors become `MalformedObject`."""
    head = _read_exact(f, 0, 4, "magic") if file_size >= 4 else b""
    try:
        if head in THIN_MAGICS:
            return [read_thin(f, 0, file_size)]
        if len(head) == 4 and struct.unpack(">I", head)[0] in (FAT_MAGIC, FAT_MAGIC_64):
            return read_fat(f, file_size)
    except struct.error as exc:
        raise MalformedObject(f"malformed Mach-O: {exc}") from exc
    raise UnsupportedFormat(f"not a Mach-O file (magic {head.hex()})")


def iter_nlist(data: bytes | mmap.mmap, sl: MachoSlice) -> Iterator[tuple[int, int, int, int, int]]:
    """`(n_strx, n_type, n_sect, n_desc, n_value)` of each symbol, unpacked in place from `data`
    (the whole file); `read_thin` has checked that the table lies inside the slice."""
    if sl.symtab is None or not sl.symtab.nsyms:
        return iter(())
    fmt = sl.byte_order + ("IBBHQ" if sl.is64 else "IBBHI")
    start = sl.offset + sl.symtab.symoff
    return struct.iter_unpack(fmt, memoryview(data)[start:start + sl.symtab.nsyms * struct.calcsize(fmt)])


def symbol_name(data: bytes | mmap.mmap, sl: MachoSlice, strx: int) -> str:
    """The NUL-terminated name at `strx` in the string table; "" when `strx` is outside it."""
    assert sl.symtab is not None
    if not 0 <= strx < sl.symtab.strsize:
        return ""
    start = sl.offset + sl.symtab.stroff
    end = start + sl.symtab.strsize
    stop = data.find(b"\0", start + strx, end)
    return bytes(data[start + strx:stop if stop >= 0 else end]).decode("utf-8", "replace")


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


class _LoadCommands:
    """Accumulates what identification needs while validating each command against the slice."""

    def __init__(self, is64: bool) -> None:
        self.nlist_size = 16 if is64 else 12
        self.uuid: bytes | None = None
        self.dwarf_segment = self.debug_info = self.unwind = False
        self.nsyms = 0
        self.text_vmaddr = 0
        self.install_name: str | None = None
        self.sections: list[Section] = []
        self.symtab: Symtab | None = None

    def visit(self, e: str, cmd: int, data: bytes, size: int, index: int) -> None:
        def bad(msg: str) -> MalformedObject:
            return MalformedObject(f"malformed Mach-O: load command {index} (cmd 0x{cmd:x}): {msg}")

        if cmd == LC_UUID:
            if len(data) < 24:
                raise bad(f"LC_UUID of {len(data)} bytes")
            self.uuid = data[8:24]
        elif cmd in (LC_SEGMENT, LC_SEGMENT_64):
            is64 = cmd == LC_SEGMENT_64
            seg_fmt, sect_fmt = (e + "16sQQQQiiII", e + "16s16sQQIIIIIIII") if is64 else (
                e + "16sIIIIiiII", e + "16s16sIIIIIIIII")
            seg_size, sect_size = 8 + struct.calcsize(seg_fmt), struct.calcsize(sect_fmt)
            if len(data) < seg_size:
                raise bad(f"segment command of {len(data)} bytes")
            segname, vmaddr, _vmsize, fileoff, filesize, _mp, _ip, nsects, _fl = struct.unpack_from(seg_fmt, data, 8)
            name = _cstr(segname)
            if seg_size + nsects * sect_size > len(data):
                raise bad(f"segment {name} claims {nsects} sections, more than its {len(data)} bytes hold")
            if filesize and fileoff + filesize > size:
                raise bad(f"segment {name} (fileoff {fileoff}, filesize {filesize}) runs past the end ({size} bytes)")
            if name == "__TEXT":
                self.text_vmaddr = vmaddr
            self.dwarf_segment |= name == "__DWARF"
            for k in range(nsects):
                fields = struct.unpack_from(sect_fmt, data, seg_size + k * sect_size)
                sectname = _cstr(fields[0])
                sect_sz, sect_off, flags = fields[3], fields[4], fields[8]
                stored = filesize > 0 and sect_off != 0 and (flags & 0xFF) not in _ZEROFILL
                if stored and sect_off + sect_sz > size:
                    raise bad(f"section {name},{sectname} (offset {sect_off}, size {sect_sz}) runs past the end")
                self.sections.append(Section(name, sectname, fields[2], sect_sz, sect_off, flags, stored))
                if stored and sect_sz > 0:
                    self.debug_info |= name == "__DWARF" and sectname == "__debug_info"
                    self.unwind |= sectname in ("__unwind_info", "__eh_frame")
        elif cmd == LC_SYMTAB:
            if len(data) < 24:
                raise bad(f"LC_SYMTAB of {len(data)} bytes")
            symoff, nsyms, stroff, strsize = struct.unpack_from(e + "IIII", data, 8)
            if (nsyms and symoff + nsyms * self.nlist_size > size) or stroff + strsize > size:
                raise bad(f"symbol table ({nsyms} symbols at {symoff}, strings at {stroff}+{strsize}) past the end")
            self.nsyms = nsyms
            self.symtab = Symtab(symoff, nsyms, stroff, strsize)
        elif cmd == LC_ID_DYLIB:
            if len(data) < 24:
                raise bad(f"LC_ID_DYLIB of {len(data)} bytes")
            (name_off,) = struct.unpack_from(e + "I", data, 8)
            if not 24 <= name_off < len(data):
                raise bad(f"dylib name offset {name_off} outside the command")
            self.install_name = data[name_off:].split(b"\0", 1)[0].decode("utf-8", "replace") or None
