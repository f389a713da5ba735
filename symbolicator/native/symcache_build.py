"""Building a symcache: map the object, read DWARF + symbols within a memory budget, write the tables.

Runs in a worker process (it is CPU-bound and may take minutes on a GB dSYM).
The file is memory-mapped and its DWARF read in place (`open_object`); rows
go into run stores that spill past `memory_bytes` (`spill`); the writer
(`symcache_write`) merges them back window by window straight into the output
file. docs/performance.md has the design and the figures.
"""

from __future__ import annotations

import io
import mmap
import os
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from symbolicator.errors import MalformedObject, SymbolicatorError, UnsupportedFormat
from symbolicator.native.dwarf import MAX_SECTION_BYTES, InflateToFile, elf_dwarf_sections, read_dwarf
from symbolicator.native.dwarf.macho import dsym_payload, macho_dwarf_sections, open_slice
from symbolicator.native.pe.headers import DOS_MAGIC as PE_DOS_MAGIC
from symbolicator.native.pe.headers import read_pe
from symbolicator.native.pe.symbols import pe_dwarf_sections, pe_symbols
from symbolicator.native.spill import DEFAULT_MEMORY_BYTES, Budget
from symbolicator.native.symcache_write import write, write_to
from symbolicator.native.symtab import Symbol, elf_symbols, macho_symbols
from symbolicator.native.wasm.dwarf import wasm_dwarf
from symbolicator.native.wasm.module import WASM_MAGIC
from symbolicator.types import Arch

_MACHO_MAGICS = {b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xfe\xed\xfa\xce",
                 b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"}
_ELF_ARCH = {"EM_X86_64": Arch.X86_64, "EM_386": Arch.X86, "EM_AARCH64": Arch.ARM64, "EM_ARM": Arch.ARM,
             "EM_PPC": Arch.PPC, "EM_PPC64": Arch.PPC64, "EM_MIPS": Arch.MIPS, "EM_RISCV": Arch.RISCV64}


@dataclass
class LoadedObject:
    """DWARF sections (views of `mapping` where stored as is), symbols, arch and byte order."""

    sections: dict[str, bytes]
    symbols: list[Symbol]
    arch: Arch
    little_endian: bool
    mapping: mmap.mmap | None = None
    inflated: list[mmap.mmap] = field(default_factory=list)  # compressed sections inflated to spill files
    address_shift: int = 0  # added to every stored address (wasm: DWARF space → module offsets)

    def release_pages(self) -> None:
        """Drop the mapped pages already read from this process's RSS (they stay in the page cache)."""
        if hasattr(mmap, "MADV_DONTNEED"):
            for m in ([self.mapping] if self.mapping is not None else []) + self.inflated:
                m.madvise(mmap.MADV_DONTNEED)


def _elf(data: mmap.mmap, max_section_bytes: int, budget: Budget | None) -> LoadedObject:
    """Read through the mapping: compressed DWARF sections are inflated, into mapped spill files
    when bigger than a sixteenth of the `budget`."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(cast(Any, data))
        for section in elf.iter_sections():
            if section["sh_type"] != "SHT_NOBITS" and section["sh_offset"] + section["sh_size"] > len(data):
                raise MalformedObject(f"ELF section {section.name or '?'} points past the end of the file")
        arch = _ELF_ARCH.get(elf["e_machine"], Arch.UNKNOWN)
        if arch == Arch.MIPS and elf.elfclass == 64:
            arch = Arch.MIPS64
        to_file = InflateToFile(budget.buffer_bytes // 4, budget.spill_dir) if budget is not None else None
        sections = elf_dwarf_sections(elf, data, max_section_bytes, to_file)
        return LoadedObject(sections, elf_symbols(elf), arch, elf.little_endian, data,
                            to_file.maps if to_file is not None else [])
    except (ELFError, struct.error, ValueError, KeyError, AssertionError) as exc:
        raise MalformedObject(f"malformed ELF: {exc}") from exc


@contextmanager
def open_object(path: str | Path, arch: Arch | str | None = None, max_section_bytes: int = MAX_SECTION_BYTES,
                budget: Budget | None = None) -> Iterator[LoadedObject]:
    """The DWARF and symbols of an ELF file, Mach-O slice, dSYM or PE image, mapped for the `with` block.

    `max_section_bytes` caps each decompressed DWARF section (a bigger one is `MalformedObject`).
    The file is memory-mapped, never read into memory as a whole; with a `budget`, big
    compressed sections are inflated into mapped spill files.
    """
    p = Path(path)
    if p.is_dir():
        p = dsym_payload(p)
    wanted = Arch.parse(arch) if isinstance(arch, str) else arch
    with open(p, "rb") as fh:
        magic = fh.read(4)
        if magic == b"\x7fELF":
            mm = _map(p)
            loaded = _elf(mm, max_section_bytes, budget)
            try:
                yield loaded
            finally:
                _close(loaded)
            return
    if magic == WASM_MAGIC:
        mm = _map(p)
        try:
            wasm = wasm_dwarf(mm)
        except BaseException:
            mm.close()
            raise
        loaded = LoadedObject(wasm.sections, wasm.symbols, Arch.WASM32, True, mm, address_shift=wasm.address_shift)
        try:
            yield loaded
        finally:
            _close(loaded)
        return
    if magic[:2] == PE_DOS_MAGIC:
        loaded = _pe(p)
        try:
            yield loaded
        finally:
            _close(loaded)
        return
    if magic in _MACHO_MAGICS:
        binary, found = open_slice(p, wanted)
        try:
            loaded = LoadedObject(macho_dwarf_sections(binary), macho_symbols(binary), found, True, binary.data)
        except (ValueError, TypeError, AttributeError) as exc:
            raise MalformedObject(f"{p}: malformed Mach-O ({exc})") from exc
        try:
            yield loaded
        finally:
            _close(loaded)
        return
    raise UnsupportedFormat(f"{p}: neither ELF, Mach-O, PE nor wasm")


def _map(p: Path) -> mmap.mmap:
    """The whole file, mapped read-only."""
    with open(p, "rb") as fh:
        try:
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError as exc:
            raise MalformedObject(f"{p}: empty file") from exc


def _pe(path: Path) -> LoadedObject:
    """A PE image mapped: its exports and DWARF sections at virtual addresses (`native/pe/symbols.py`)."""
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        pe = read_pe(mm)
        return LoadedObject(pe_dwarf_sections(mm, pe), pe_symbols(mm, pe), pe.arch, True, mm)
    except BaseException:
        mm.close()
        raise


def _close(loaded: LoadedObject) -> None:
    """Release the section views, then the mapping (a view still held elsewhere keeps it open)."""
    for view in loaded.sections.values():
        if isinstance(view, memoryview):
            view.release()
    loaded.sections.clear()
    for m in loaded.inflated:
        try:
            m.close()
        except BufferError:
            pass
    if loaded.mapping is not None:
        try:
            loaded.mapping.close()
        except BufferError:
            pass


__all__ = ["LoadedObject", "build", "build_into", "build_to_file", "open_object", "write", "write_to"]


def build_into(out: IO[bytes], path: str | Path, arch: Arch | str | None = None,
               symbol_file: str | Path | None = None, max_section_bytes: int = MAX_SECTION_BYTES,
               memory_bytes: int = DEFAULT_MEMORY_BYTES, spill_dir: str | Path | None = None,
               budget: Budget | None = None) -> int:
    """Convert a debug file (ELF, Mach-O slice, dSYM bundle, PE image) into a symcache written to `out`.

    `symbol_file`: the stripped binary a split debug file belongs to; its
    symbol table is used when it has one (what llvm-symbolizer does when it
    follows a debuglink). `memory_bytes` bounds the rows held in memory (more are
    spilled to unnamed files in `spill_dir`, the system temp folder when None).
    Raises `MalformedObject` for broken input, `UnsupportedFormat` for other
    formats, `ArchitectureRequired` for a fat file without `arch`. Returns the size.
    A `budget` given replaces `memory_bytes` and `spill_dir` (and counts the runs spilled).
    """
    budget = budget if budget is not None else Budget(memory_bytes, spill_dir)
    with open_object(path, arch, max_section_bytes, budget) as obj:
        symbols = obj.symbols
        if symbol_file is not None and Path(symbol_file) != Path(path):
            with open_object(symbol_file, arch, max_section_bytes) as other:
                if other.symbols:
                    symbols = other.symbols
        dwarf = None
        try:
            if obj.sections.get("debug_info"):
                dwarf = read_dwarf(obj.sections, obj.little_endian, budget, _page_release(obj, budget))
        except SymbolicatorError:
            raise
        except (IndexError, ValueError, KeyError, OverflowError, RecursionError, MemoryError) as exc:
            raise MalformedObject(f"{path}: malformed DWARF ({type(exc).__name__}: {exc})") from exc
        if dwarf is None and not symbols:
            raise UnsupportedFormat(f"{path}: no DWARF and no symbol table")
        obj.release_pages()  # writing reads nothing more from the file
        try:
            return write_to(out, dwarf, symbols, obj.arch, budget.spill_dir, obj.address_shift)
        finally:
            if dwarf is not None:
                dwarf.close()


MAPPED_PAGES_BYTES = 64 << 20


def _page_release(obj: LoadedObject, budget: Budget) -> Callable[[], None]:
    """After each unit: once the file's pages resident in this process pass `MAPPED_PAGES_BYTES`
    (or 1/16 of the budget),
    drop them (`MADV_DONTNEED`; later reads fault them back from the page cache). Without
    this a GB file read through its mapping would count whole in the worker's RSS."""
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    limit = min(budget.memory_bytes // 16, MAPPED_PAGES_BYTES)

    def progress() -> None:
        try:
            with open("/proc/self/statm", "rb") as fh:
                shared_pages = int(fh.read().split()[2])
        except (OSError, IndexError, ValueError):
            return
        if shared_pages * page > limit:
            obj.release_pages()

    return progress


def build(path: str | Path, arch: Arch | str | None = None, symbol_file: str | Path | None = None,
          max_section_bytes: int = MAX_SECTION_BYTES, memory_bytes: int = DEFAULT_MEMORY_BYTES,
          spill_dir: str | Path | None = None, budget: Budget | None = None) -> bytes:
    """`build_into` memory: the symcache bytes."""
    buf = io.BytesIO()
    build_into(buf, path, arch, symbol_file, max_section_bytes, memory_bytes, spill_dir, budget)
    return buf.getvalue()


def build_to_file(path: str | Path, out_path: str | Path, arch: Arch | str | None = None,
                  max_section_bytes: int = MAX_SECTION_BYTES, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                  spill_dir: str | Path | None = None) -> int:
    """`build_into` a file, atomically (temp file + rename); returns its size."""
    out = Path(out_path)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            size = build_into(fh, path, arch, None, max_section_bytes, memory_bytes, spill_dir)
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size
