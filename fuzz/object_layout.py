"""Where the fields a reader trusts live in an ELF or Mach-O file, and how to mutate them.

Random bytes never get past the magic, and random flips in a real binary mostly land in
machine code nobody parses. The mutations that find bugs edit what the readers *believe*:
counts, offsets and sizes in the file header, the section and program header tables, the
load commands, the fat table, and the unit headers at the start of the DWARF sections. So
`layout(data)` lists those fields (offset, width, byte order) and the byte ranges of the
sections the readers decode (`.debug_*`, the symbol and string tables), and `apply` edits
a copy of the file with a list of operations drawn by either engine.

This is deliberately a second, minimal reading of the formats, written for offsets rather
than values; it trusts nothing either, and stops at the first entry that does not fit.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from fuzz.edges import EDGE_INTS

_FAT = (b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf")
_THIN = {b"\xce\xfa\xed\xfe": ("<", False), b"\xcf\xfa\xed\xfe": ("<", True),
         b"\xfe\xed\xfa\xce": (">", False), b"\xfe\xed\xfa\xcf": (">", True)}
_DWARF_NAMES = ("debug_info", "debug_line", "debug_abbrev", "debug_str", "debug_line_str", "debug_str_offs",
                "debug_addr", "debug_ranges", "debug_rnglists", "symtab", "strtab", "dynsym", "dynstr", "note")


@dataclass(frozen=True, slots=True)
class Field:
    """`size` bytes at `offset`, an unsigned integer in byte order `order` (`<` or `>`)."""

    offset: int
    size: int
    order: str
    what: str


@dataclass(slots=True)
class Layout:
    fields: list[Field] = field(default_factory=list)
    regions: list[tuple[int, int, str]] = field(default_factory=list)
    """(offset, size, name) of the sections worth damaging, inside the file."""

    def add(self, offset: int, fmt: str, order: str, names: Sequence[str], data: bytes) -> bool:
        """Record one packed structure's fields; False when it does not fit in the file."""
        size = struct.calcsize(order + fmt)
        if offset < 0 or offset + size > len(data):
            return False
        at = offset
        for code, name in zip(re.findall(r"\d*[a-zA-Z]", fmt), names, strict=True):
            width = struct.calcsize(order + code)
            if name:
                self.fields.append(Field(at, width, order, name))
            at += width
        return True


def layout(data: bytes) -> Layout:
    out = Layout()
    if data[:4] == b"\x7fELF":
        _elf(data, out)
    elif data[:4] in _THIN:
        _macho(data, 0, len(data), out)
    elif data[:4] in _FAT:
        _fat(data, out)
    elif data[:2] == b"MZ":
        _pe(data, out)
    return out


def _pe(data: bytes, out: Layout) -> None:
    """DOS `e_lfanew`, the COFF and optional headers, the data directories, the section table, and the
    debug / export directories and the CodeView record where the section table places them."""
    if not out.add(0x3C, "I", "<", ["e_lfanew"], data):
        return
    (pe,) = struct.unpack_from("<I", data, 0x3C)
    coff = pe + 4
    if not out.add(coff, "HHIIIHH", "<", ["machine", "nsections", "timestamp", "symptr", "nsyms", "optsize", "chars"],
                   data):
        return
    n_sections, opt_size = struct.unpack_from("<H", data, coff + 2)[0], struct.unpack_from("<H", data, coff + 16)[0]
    opt = coff + 20
    if not out.add(opt, "H", "<", ["opt_magic"], data):
        return
    plus = struct.unpack_from("<H", data, opt)[0] == 0x20B
    out.add(opt + 24, "Q" if plus else "4xI", "<", ["image_base"] if plus else ["", "image_base"], data)
    out.add(opt + 56, "I", "<", ["size_of_image"], data)
    dirs = opt + (108 if plus else 92)
    out.add(dirs, "I", "<", ["ndirs"], data)
    for i in range(16):
        out.add(dirs + 4 + 8 * i, "II", "<", [f"dir{i}_rva", f"dir{i}_size"], data)
    sections: list[tuple[int, int, int]] = []
    for i in range(min(n_sections, 64)):
        at = opt + opt_size + 40 * i
        if not out.add(at, "8xIIIIIIHHI", "<", ["", "vsize", "rva", "rawsize", "rawptr", "", "", "", "", ""], data):
            break
        vsize, rva, raw_size, raw_ptr = struct.unpack_from("<IIII", data, at + 8)
        sections.append((rva, raw_ptr, min(raw_size, vsize) if vsize else raw_size))
        name = data[at:at + 8].rstrip(b"\0").decode("latin-1")
        if raw_ptr + raw_size <= len(data) and raw_size:
            out.regions.append((raw_ptr, raw_size, name))

    def offset(rva: int) -> int | None:
        return next((ptr + rva - r for r, ptr, size in sections if r <= rva < r + size), None)

    for index, fmt, names in ((0, "IIHHIIIIIII", ["", "", "", "", "name", "base", "nfuncs", "nnames", "funcs",
                                                  "names", "ordinals"]),
                              (6, "IIHHIIII", ["", "", "", "", "type", "datasize", "", "dataptr"])):
        if dirs + 8 + 8 * index <= len(data):
            at = offset(struct.unpack_from("<I", data, dirs + 4 + 8 * index)[0])
            if at is not None and out.add(at, fmt, "<", names, data) and index == 6:
                pointer = struct.unpack_from("<I", data, at + 24)[0]
                out.add(pointer, "4x16sI", "<", ["", "", "cv_age"], data)


def _elf(data: bytes, out: Layout) -> None:
    if len(data) < 64 or data[4] not in (1, 2) or data[5] not in (1, 2):
        return
    is64, e = data[4] == 2, "<" if data[5] == 1 else ">"
    addr = "Q" if is64 else "I"
    out.add(16, f"HHI{addr}{addr}{addr}IHHHHHH", e, ["e_type", "e_machine", "", "", "e_phoff", "e_shoff", "",
                                                      "e_ehsize", "e_phentsize", "e_phnum", "e_shentsize",
                                                      "e_shnum", "e_shstrndx"], data)
    head = struct.unpack_from(e + f"HHI{addr}{addr}{addr}IHHHHHH", data, 16)
    phoff, shoff, phentsize, phnum, shentsize, shnum, shstrndx = head[4], head[5], head[8], head[9], head[10], \
        head[11], head[12]
    ph_fmt, ph_names = ("IIQQQQQQ", ["p_type", "p_flags", "p_offset", "p_vaddr", "", "p_filesz", "p_memsz", ""]) \
        if is64 else ("IIIIIIII", ["p_type", "p_offset", "p_vaddr", "", "p_filesz", "p_memsz", "p_flags", ""])
    for i in range(min(phnum, 64)):
        if not out.add(phoff + i * phentsize, ph_fmt, e, ph_names, data):
            break
    sh_fmt = "IIQQQQIIQQ" if is64 else "IIIIIIIIII"
    sh_names = ["sh_name", "sh_type", "sh_flags", "sh_addr", "sh_offset", "sh_size", "sh_link", "sh_info",
                "sh_addralign", "sh_entsize"]
    sections = []
    for i in range(min(shnum, 256)):
        at = shoff + i * shentsize
        if not out.add(at, sh_fmt, e, sh_names, data):
            break
        sections.append(struct.unpack_from(e + sh_fmt, data, at))
    if not sections or shstrndx >= len(sections):
        return
    names_at = sections[shstrndx][4]
    for sh_name, sh_type, _f, _a, offset, size, *_ in sections:
        end = data.find(b"\0", names_at + sh_name)
        name = data[names_at + sh_name:end].decode("latin-1") if end >= 0 else ""
        if sh_type != 8 and offset + size <= len(data) and size and name.lstrip(".z").startswith(_DWARF_NAMES):
            out.regions.append((offset, size, name))
            if name.endswith(("debug_info", "debug_line")):
                _unit_headers(data, offset, size, e, name, out)


def _unit_headers(data: bytes, offset: int, size: int, e: str, name: str, out: Layout) -> None:
    """The length/version/offset/size fields of each unit at the start of .debug_info or .debug_line."""
    at, end = offset, offset + size
    for _ in range(64):
        if at + 12 > end:
            return
        (length,) = struct.unpack_from(e + "I", data, at)
        if length >= 0xFFFFFFF0:
            return
        (version,) = struct.unpack_from(e + "H", data, at + 4)
        if name.endswith("debug_info"):
            fmt, names = ("HBBI", ["version", "unit_type", "address_size", "abbrev_offset"]) if version >= 5 else \
                ("HIB", ["version", "abbrev_offset", "address_size"])
        elif version >= 5:
            fmt, names = "HBBIBBBbBB", ["version", "address_size", "seg_size", "header_length", "min_inst",
                                        "max_ops", "default_is_stmt", "line_base", "line_range", "opcode_base"]
        else:
            fmt, names = "HIBBBbBB", ["version", "header_length", "min_inst", "max_ops", "default_is_stmt",
                                      "line_base", "line_range", "opcode_base"]
        out.add(at, "I", e, ["unit_length"], data)
        out.add(at + 4, fmt, e, names, data)
        at += 4 + length


def _fat(data: bytes, out: Layout) -> None:
    out.add(4, "I", ">", ["nfat_arch"], data)
    (count,) = struct.unpack_from(">I", data, 4) if len(data) >= 8 else (0,)
    is64 = data[:4] == _FAT[1]
    fmt = "iiQQII" if is64 else "iiIII"
    names = ["cputype", "cpusubtype", "offset", "size", "align", ""][: len(fmt)]
    size = struct.calcsize(">" + fmt)
    for i in range(min(count, 8)):
        at = 8 + i * size
        if not out.add(at, fmt, ">", names, data):
            return
        _c, _s, offset, length = struct.unpack_from(">" + fmt, data, at)[:4]
        if offset + length <= len(data) and data[offset:offset + 4] in _THIN:
            _macho(data, offset, length, out)


def _macho(data: bytes, base: int, size: int, out: Layout) -> None:
    e, is64 = _THIN[data[base:base + 4]]
    hsize = 32 if is64 else 28
    if not out.add(base + 4, "iiIII", e, ["cputype", "cpusubtype", "filetype", "ncmds", "sizeofcmds"], data):
        return
    ncmds, sizeofcmds = struct.unpack_from(e + "II", data, base + 16)
    at, stop = base + hsize, base + hsize + min(sizeofcmds, size)
    addr = "Q" if is64 else "I"
    for _ in range(min(ncmds, 256)):
        if at + 8 > min(stop, len(data)):
            return
        cmd, cmdsize = struct.unpack_from(e + "II", data, at)
        out.add(at, "II", e, ["cmd", "cmdsize"], data)
        if cmd in (0x1, 0x19):
            seg = f"16s{addr}{addr}{addr}{addr}iiII"
            if out.add(at + 8, seg, e, ["", "vmaddr", "vmsize", "fileoff", "filesize", "", "", "nsects", ""], data):
                nsects = struct.unpack_from(e + seg, data, at + 8)[7]
                sect = f"16s16s{addr}{addr}IIIIIII" + ("I" if is64 else "")
                first = at + 8 + struct.calcsize(e + seg)
                for k in range(min(nsects, 64)):
                    s_at = first + k * struct.calcsize(e + sect)
                    if not out.add(s_at, sect, e, ["", "", "addr", "size", "offset", "align", "reloff", "nreloc",
                                                   "flags", "", ""] + ([""] if is64 else []), data):
                        break
                    raw = struct.unpack_from(e + sect, data, s_at)
                    name = raw[0].split(b"\0", 1)[0].decode("latin-1").lstrip("_")
                    s_size, s_off = raw[3], raw[4]
                    if s_off and s_size and base + s_off + s_size <= len(data) and name.startswith(_DWARF_NAMES):
                        out.regions.append((base + s_off, s_size, name))
                        if name in ("debug_info", "debug_line"):
                            _unit_headers(data, base + s_off, s_size, e, name, out)
        elif cmd == 0x2:
            if out.add(at + 8, "IIII", e, ["symoff", "nsyms", "stroff", "strsize"], data):
                symoff, nsyms, stroff, strsize = struct.unpack_from(e + "IIII", data, at + 8)
                entry = 16 if is64 else 12
                for start, length, name in ((symoff, nsyms * entry, "symtab"), (stroff, strsize, "strtab")):
                    if length and base + start + length <= len(data):
                        out.regions.append((base + start, length, name))
        elif cmd == 0xD:
            out.add(at + 8, "I", e, ["dylib_name_offset"], data)
        if cmdsize < 8:
            return
        at += cmdsize


Op = tuple[str, int, int, int]
"""(kind, a, b, c): `field` (index, edge index or raw value, −), `flip` (position, xor, −),
`region` (index, position, xor), `smash` (region, position, length), `truncate` (length, −, −)."""


def _field_value(data: bytes, f: Field, choice: int) -> int:
    (old,) = struct.unpack_from(f.order + {1: "B", 2: "H", 4: "I", 8: "Q"}[f.size], data, f.offset)
    related = (0, old + 1, old - 1, old * 2, old + len(data), len(data), len(data) - 1, len(data) + 1, old ^ 0x80,
               old >> 1)
    values = related + EDGE_INTS
    value = values[choice % len(values)] if choice < 2**16 else choice
    return value % (1 << (8 * f.size))


def apply(data: bytes, ops: Sequence[Op], lay: Layout | None = None) -> bytes:
    """A copy of `data` with every operation applied in order; positions wrap around the file."""
    lay = lay if lay is not None else layout(data)
    out = bytearray(data)
    for kind, a, b, c in ops:
        if not out:
            break
        if kind == "field" and lay.fields:
            f = lay.fields[a % len(lay.fields)]
            if f.offset + f.size <= len(out):
                value = _field_value(bytes(out), f, b)
                struct.pack_into(f.order + {1: "B", 2: "H", 4: "I", 8: "Q"}[f.size], out, f.offset, value)
        elif kind == "flip":
            out[a % len(out)] ^= (b % 255) + 1
        elif kind in ("region", "smash") and lay.regions:
            start, size, _name = lay.regions[a % len(lay.regions)]
            at = start + b % size
            if kind == "region" and at < len(out):
                out[at] ^= (c % 255) + 1
            elif kind == "smash":
                length = min(c % 64 + 1, len(out) - at)
                out[at:at + length] = bytes((at * 131 + k * 31 + c) & 0xFF for k in range(max(length, 0)))
        elif kind == "truncate":
            del out[a % len(out):]
    return bytes(out)
