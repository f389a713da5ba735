"""Converting a module's unwind information into a CFI cache, once (run in the worker pool).

From an ELF file (an uploaded debug file *or* the executable itself): `.eh_frame` first (what
the code unwinds with at run time, always in the executable), then `.debug_frame` for functions
`.eh_frame` leaves out (`-fno-asynchronous-unwind-tables` builds); a split debug file keeps
`.eh_frame` as NOBITS and is read for `.debug_frame` only. From a Breakpad `.sym` file: its
`STACK CFI` records. A file with neither gives an empty cache (`rows == 0`): the walker then
uses frame pointers and scanning for that module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from symbolicator.errors import MalformedObject, UnsupportedFormat
from symbolicator.native.cfi.cache import CacheBuilder
from symbolicator.native.cfi.dwarf_cfi import iter_fdes
from symbolicator.native.elf_headers import ELF_MAGIC
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


def build(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The CFI cache of an ELF file or a Breakpad `.sym` file."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(ELF_MAGIC):
        return build_from_elf(path)
    if head.startswith(b"MODULE "):
        from symbolicator.native.cfi.breakpad_cfi import build_from_sym

        return build_from_sym(path)
    raise UnsupportedFormat("no call frame information in this kind of file")
