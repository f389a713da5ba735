"""Symbol-table fallback: a function name for addresses DWARF does not name.

Stripped binaries, code without debug info (libc's start files, hand-written
assembly) and dSYM-less Mach-O files still have a symbol table. A lookup takes
the nearest function symbol at or below the address, bounded by its size (ELF
`st_size`) or else by the next symbol or the end of its section, as
llvm-symbolizer does. ELF uses `.symtab` and adds what only `.dynsym` knows;
Mach-O names lose their one leading underscore (`_main` → `main`), the C
convention every Apple tool undoes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from symbolicator.errors import MalformedObject
from symbolicator.native.dwarf.macho import MachoImage
from symbolicator.native.macho_headers import iter_nlist, symbol_name


@dataclass(frozen=True, slots=True)
class Symbol:
    """A function symbol: [address, end) in file virtual addresses, `name` raw (mangled).

    `file` is the name of the `STT_FILE` symbol that precedes a local ELF
    symbol (a bare source file name, what llvm-symbolizer prints when there is
    no DWARF line for the address).
    """

    address: int
    end: int
    name: str
    file: str | None = None


_BIND_RANK = {"STB_GLOBAL": 0, "STB_WEAK": 1, "STB_GNU_UNIQUE": 1, "STB_LOCAL": 2}
LAST_ADDRESS = (1 << 64) - 1
"""Where symbols end at the latest: a size or a section running past 2^64 (a corrupt header) is cut
there, as the DWARF walker cuts ranges, so every end fits the symcache's u64 (a symbol never
covers the very last address)."""


def _bounded(raw: list[tuple[int, int, int, str, str | None]], sections: list[tuple[int, int]],
             clip: bool) -> list[Symbol]:
    """Sort, keep one name per address and give size-less symbols an end.

    At one address the symbol with the largest size wins (llvm-symbolizer's
    rule, which skips size-less labels), then the better binding. A size-less
    symbol ends at the next symbol, or at the end of its section when `clip`
    (Mach-O). ELF's size-less symbols are not clipped to their section because
    llvm-symbolizer does not clip them either: `.plt` stubs after a size-less
    `_init` are reported as `_init`; the last one ends with the code sections.
    No end goes past `LAST_ADDRESS`.
    """
    raw.sort(key=lambda s: (s[0], -s[1], s[2]))
    uniq: list[tuple[int, int, str, str | None]] = []
    for addr, size, _rank, name, file in raw:
        if uniq and uniq[-1][0] == addr:
            continue
        uniq.append((addr, size, name, file))
    out = []
    for i, (addr, size, name, file) in enumerate(uniq):
        if size:
            end = addr + size
        else:
            end = uniq[i + 1][0] if i + 1 < len(uniq) else 0
            for lo, hi in sections:
                if lo <= addr < hi and clip:
                    end = min(end, hi) if end else hi
                    break
            if not end and sections:
                end = max(hi for _, hi in sections)
            if not end:
                end = addr + 1
        out.append(Symbol(addr, min(end, LAST_ADDRESS), name, file))
    return out


def _in_sections(addr: int, sections: list[tuple[int, int]]) -> bool:
    return any(lo <= addr < hi for lo, hi in sections)


def elf_symbols(elf: Any) -> list[Symbol]:
    """Code symbols of a pyelftools `ELFFile`: `.symtab`, or `.dynsym` when `.symtab` has none.

    Like llvm-symbolizer, `STT_NOTYPE` labels count (assembly often has no
    types), mapping symbols (`$x`, `$d`) do not.
    """
    raw: list[tuple[int, int, int, str, str | None]] = []
    exec_sections = []
    try:
        for section in elf.iter_sections():
            if section["sh_flags"] & 0x4:
                exec_sections.append((section["sh_addr"], section["sh_addr"] + section["sh_size"]))
        for table_name in (".symtab", ".dynsym"):
            table = elf.get_section_by_name(table_name)
            if table is None or not hasattr(table, "iter_symbols"):
                continue
            fast = _read_table(elf, table, exec_sections)
            if fast is not None:
                raw.extend(fast)
                if raw:
                    break
                continue
            last_file: str | None = None
            for sym in table.iter_symbols():
                kind = sym["st_info"]["type"]
                if kind == "STT_FILE":
                    last_file = sym.name or None
                    continue
                if kind not in ("STT_FUNC", "STT_GNU_IFUNC", "STT_NOTYPE") or sym["st_shndx"] == "SHN_UNDEF":
                    continue
                addr = sym["st_value"]
                name = sym.name
                if not addr or not name or name.startswith("$") or not _in_sections(addr, exec_sections):
                    continue
                bind = sym["st_info"]["bind"]
                raw.append((addr, sym["st_size"], _BIND_RANK.get(bind, 3), name,
                            last_file if bind == "STB_LOCAL" else None))
            if raw:
                break
    except (ValueError, KeyError, AttributeError) as exc:
        raise MalformedObject(f"malformed ELF symbol table: {exc}") from exc
    except Exception as exc:
        if type(exc).__name__ == "ELFError" or type(exc).__module__.startswith("elftools"):
            raise MalformedObject(f"malformed ELF symbol table: {exc}") from exc
        raise
    return _bounded(raw, exec_sections, clip=False)


_TYPES = {0, 2, 10}  # STT_NOTYPE, STT_FUNC, STT_GNU_IFUNC
_RANKS = {1: 0, 2: 1, 10: 1, 0: 2}  # by st_bind: GLOBAL, WEAK, GNU_UNIQUE, LOCAL (else 3)


def _read_table(elf: Any, table: Any, exec_sections: list[tuple[int, int]]
                ) -> list[tuple[int, int, int, str, str | None]] | None:
    """`elf_symbols`' filter over a whole table at once (numpy over the raw entries).

    pyelftools parses each entry into a dict through `construct`, which costs seconds on a
    large C++ binary. None when the table is not laid out as expected (the caller then walks
    it with pyelftools).
    """
    import numpy as np

    bo = "<" if elf.little_endian else ">"
    if elf.elfclass == 64:
        dtype = np.dtype([("name", bo + "u4"), ("info", "u1"), ("other", "u1"), ("shndx", bo + "u2"),
                          ("value", bo + "u8"), ("size", bo + "u8")])
    else:
        dtype = np.dtype([("name", bo + "u4"), ("value", bo + "u4"), ("size", bo + "u4"), ("info", "u1"),
                          ("other", "u1"), ("shndx", bo + "u2")])
    if table["sh_entsize"] != dtype.itemsize or table["sh_size"] % dtype.itemsize:
        return None
    strtab = elf.get_section(table["sh_link"])
    stream = elf.stream
    stream.seek(table["sh_offset"])
    data = stream.read(table["sh_size"])
    stream.seek(strtab["sh_offset"])
    names = stream.read(strtab["sh_size"])
    if len(data) != table["sh_size"] or len(names) != strtab["sh_size"]:
        raise MalformedObject("ELF symbol table past the end of the file")
    syms = np.frombuffer(data, dtype=dtype)
    kind = syms["info"] & 0xF
    index = np.arange(len(syms))
    last_file = np.maximum.accumulate(np.where(kind == 4, index, -1)) if len(syms) else index
    value = syms["value"].astype(np.uint64)
    in_exec = np.zeros(len(syms), dtype=bool)
    for lo, hi in exec_sections:
        in_exec |= (value >= lo) & (value < hi)
    keep = np.isin(kind, list(_TYPES)) & (syms["shndx"] != 0) & (value != 0) & in_exec
    out: list[tuple[int, int, int, str, str | None]] = []

    def text(offset: int) -> str:
        end = names.find(b"\0", offset)
        return str(names[offset:end if end >= 0 else len(names)].decode("utf-8", "replace"))

    idx = np.flatnonzero(keep)
    name_off = syms["name"].tolist()
    columns = zip(syms["name"][idx].tolist(), (syms["info"][idx] >> 4).tolist(), last_file[idx].tolist(),
                  value[idx].tolist(), syms["size"][idx].tolist(), strict=True)
    for offset, bind, f, addr, size in columns:
        name = text(offset)
        if not name or name.startswith("$"):
            continue
        file = (text(name_off[f]) or None) if bind == 0 and f >= 0 else None
        out.append((addr, size, _RANKS.get(bind, 3), name, file))
    return out


def macho_symbols(image: MachoImage) -> list[Symbol]:
    """Defined, non-debugging symbols of a mapped Mach-O slice that point into an executable section.

    `nlist` entries with an `N_STAB` bit are debugger notes, not symbols; only `N_SECT` entries
    are defined in this image. Executable sections are those with instructions
    (`S_ATTR_PURE_INSTRUCTIONS`, `S_ATTR_SOME_INSTRUCTIONS`) and `__text` itself.
    """
    sl = image.slice
    sections = [(s.addr, s.addr + s.size) for s in sl.sections
                if s.flags & 0x80000000 or s.flags & 0x400 or s.sectname == "__text"]
    raw: list[tuple[int, int, int, str, str | None]] = []
    for strx, n_type, _sect, _desc, addr in iter_nlist(image.data, sl):
        if n_type & 0xE0 or (n_type & 0x0E) != 0x0E or not _in_sections(addr, sections):
            continue
        name = symbol_name(image.data, sl, strx)
        if name.startswith("_"):
            name = name[1:]
        if name:
            raw.append((addr, 0, 0 if n_type & 0x01 else 2, name, None))
    return _bounded(raw, sections, clip=True)
