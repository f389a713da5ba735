"""Converting a module's unwind information into a CFI cache, once (run in the worker pool).

From a Mach-O image: its compact unwind (`__unwind_info`, `compact_unwind.py`), with
`__eh_frame` for the functions left to DWARF. From an ELF file (an uploaded debug file *or* the
executable itself): `.eh_frame` first (what the code unwinds with at run time, always in the
executable), then `.debug_frame` for functions `.eh_frame` leaves out
(`-fno-asynchronous-unwind-tables` builds); a split debug file keeps `.eh_frame` as NOBITS and
is read for `.debug_frame` only. From an x64 PE image: its exception directory (`.pdata` +
`.xdata`, `pe_unwind.py`). From a Breakpad `.sym` file: its `STACK CFI` records. A file
with none (a PDB: Windows keeps x64 unwind tables in the image) gives an empty cache
(`rows == 0`): the module's next file is tried, else the walker uses frame pointers and
scanning for that module.
"""

from __future__ import annotations

import functools
import mmap
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from symbolicator.errors import MalformedObject, UnsupportedFormat
from symbolicator.native.cfi import code_map, compact_unwind, pe_unwind
from symbolicator.native.cfi.cache import SPARSE, CacheBuilder
from symbolicator.native.cfi.dwarf_cfi import Fde, iter_fdes
from symbolicator.native.dwarf.macho import open_slice
from symbolicator.native.elf_headers import ELF_MAGIC
from symbolicator.native.macho_headers import FAT_MAGIC, FAT_MAGIC_64, THIN_MAGICS
from symbolicator.native.pdb.msf import MSF_MAGIC
from symbolicator.native.pe.headers import DOS_MAGIC, read_pe, rva_reader
from symbolicator.types import Arch

MAX_CFI_SECTION_BYTES = 256 << 20
_MACHINES = {"EM_X86_64": Arch.X86_64, "EM_AARCH64": Arch.ARM64}


def build_from_elf(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The CFI cache of an ELF file and its meta (`arch`, `image_vmaddr`, `rows`, `sources`)."""
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            arch = _MACHINES.get(elf.header["e_machine"])
            if arch is None or elf.elfclass != 64 or not elf.little_endian:
                raise UnsupportedFormat(f"no CFI support for ELF machine {elf.header['e_machine']}")
            vmaddr = min((s["p_vaddr"] for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"), default=0)
            builder = CacheBuilder()
            sources = []
            for name, eh in ((".eh_frame", True), (".debug_frame", False)):
                sec = elf.get_section_by_name(name)
                if sec is None or sec["sh_type"] == "SHT_NOBITS" or sec["sh_size"] == 0:
                    continue
                if sec["sh_size"] > MAX_CFI_SECTION_BYTES:
                    raise MalformedObject(f"{name} is larger than {MAX_CFI_SECTION_BYTES} bytes")
                data = sec.data()
                builder.add_all(iter_fdes(data, sec["sh_addr"] if eh else 0, eh_frame=eh))
                sources.append(name)
    except (ELFError, ValueError, KeyError, OSError, AssertionError) as exc:
        if isinstance(exc, OSError) and not path.exists():
            raise
        raise MalformedObject(f"cannot read call frame information: {exc}") from exc
    data, rows = builder.build(arch, vmaddr)
    return data, {"arch": arch.value, "image_vmaddr": vmaddr, "rows": rows, "sources": sources}


def build_from_macho(path: Path, arch: Arch | None = None) -> tuple[bytes, dict[str, Any]]:
    """The CFI cache of a Mach-O image (the `arch` slice of a universal one): its compact unwind
    (`__unwind_info`), with the `__eh_frame` FDEs of the functions it leaves to DWARF; all of
    `__eh_frame` when the image has no compact unwind."""
    image, arch = open_slice(path, arch)
    sl = image.slice
    if arch not in (Arch.X86_64, Arch.ARM64):
        raise UnsupportedFormat(f"no CFI support for Mach-O {arch.value}")
    stored = [s for s in sl.sections if s.stored and s.offset + s.size <= sl.size]

    def section(segname: str, sectname: str) -> tuple[int, memoryview] | None:
        found = next((s for s in stored if (s.segname, s.sectname) == (segname, sectname)), None)
        if found is None:
            return None
        if found.size > MAX_CFI_SECTION_BYTES:
            raise MalformedObject(f"{sectname} is larger than {MAX_CFI_SECTION_BYTES} bytes")
        return found.addr, memoryview(image.data)[sl.offset + found.offset:sl.offset + found.offset + found.size]

    def read_u32(addr: int) -> int | None:
        for s in stored:
            if s.addr <= addr and addr + 4 <= s.addr + s.size:
                at = sl.offset + s.offset + addr - s.addr
                return int.from_bytes(image.data[at:at + 4], "little")
        return None

    builder = CacheBuilder()
    eh_frame = section("__TEXT", "__eh_frame")

    @functools.cache
    def fdes() -> dict[int, Fde]:
        return {f.offset: f for f in iter_fdes(bytes(eh_frame[1]), eh_frame[0], eh_frame=True)} if eh_frame else {}

    unwind_info = section("__TEXT", "__unwind_info")
    if unwind_info is not None:
        builder.add_all(compact_unwind.fdes(unwind_info[1], arch, sl.image_vmaddr, read_u32, fdes))
    else:
        builder.add_all(fdes().values())  # no compact unwind: every function unwinds by its FDE
    sources = [name for name, found in (("__unwind_info", unwind_info), ("__eh_frame", eh_frame)) if found]
    data, rows = builder.build(arch, sl.image_vmaddr)
    return data, {"arch": arch.value, "image_vmaddr": sl.image_vmaddr, "rows": rows, "sources": sources}


def build_from_pe(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The CFI cache of an x64 PE image, from its exception directory; other machines (x86 has
    no unwind tables, ARM64's packed form is not read) give an empty cache."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        pe = read_pe(data)
        builder = CacheBuilder()
        sources = []
        if pe.arch == Arch.X86_64 and pe.exception_dir[1]:
            builder.add_all(pe_unwind.fdes(rva_reader(data, pe), pe.exception_dir, pe.image_base))
            sources.append(".pdata")
    out, rows = builder.build(pe.arch, pe.image_base, SPARSE)
    return out, {"arch": pe.arch.value, "image_vmaddr": pe.image_base, "rows": rows, "sources": sources}


def build_from_pdb(path: Path) -> tuple[bytes, dict[str, Any]]:
    """A PDB has no unwind rows (Windows keeps them in the image): its cache holds only the code
    map a stack scanner asks (`code_map.py`), at RVAs; `rows` 0, so the image is looked up next."""
    from symbolicator.native.pdb.code_map import function_ranges
    from symbolicator.native.pdb.identity import read_identity

    funcs, publics = function_ranges(path)
    arch = read_identity(path).arch
    data, rows = CacheBuilder().build(arch, 0, code=code_map.intervals(funcs, publics))
    return data, {"arch": arch.value, "image_vmaddr": 0, "rows": rows, "sources": ["PDB symbols"],
                  "code_map": True}


def build(path: Path, arch: Arch | None = None) -> tuple[bytes, dict[str, Any]]:
    """The CFI cache of an ELF file, a Mach-O image (`arch`: the slice of a universal one), a PE
    image or a Breakpad `.sym` file; a PDB's is empty."""
    with open(path, "rb") as f:
        head = f.read(len(MSF_MAGIC))
    if head.startswith(DOS_MAGIC):
        return build_from_pe(path)
    if head == MSF_MAGIC:
        return build_from_pdb(path)
    if head.startswith(ELF_MAGIC):
        return build_from_elf(path)
    if head[:4] in THIN_MAGICS or int.from_bytes(head[:4], "big") in (FAT_MAGIC, FAT_MAGIC_64):
        return build_from_macho(path, arch)
    if head.startswith(b"MODULE "):
        from symbolicator.native.cfi.breakpad_cfi import build_from_sym

        return build_from_sym(path)
    raise UnsupportedFormat("no call frame information in this kind of file")
