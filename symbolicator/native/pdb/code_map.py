"""Where a PDB says code is, as a stack scanner asks it: procedures and public symbols.

A minidump walker that falls back to scanning the stack takes a word for a return address only
where the module's symbols name a function (rust-minidump's `instruction_seems_valid`, asked of
Breakpad `.sym` files). For a PE image that question needs its PDB: the image's unwind table
leaves leaf functions out. `function_ranges(path)` gives what `dump_syms` writes from the PDB:
every procedure as a `FUNC` range (RVA, RVA + length) and every public symbol in an executable
section as a `PUBLIC` address; `native/cfi/code_map.py` turns them into the intervals Breakpad's
resolver answers for. Reading costs one pass over the module streams' symbols (line tables are
read and dropped by `read_module`).
"""

from __future__ import annotations

from pathlib import Path

from symbolicator.native.pdb.modules import read_module
from symbolicator.native.pdb.msf import opened_msf
from symbolicator.native.pdb.streams import read_dbi, read_publics


def function_ranges(path: str | Path) -> tuple[list[tuple[int, int]], list[int]]:
    """(procedure ranges as RVAs, public symbol RVAs in executable sections), both sorted."""
    with opened_msf(path) as msf:
        dbi = read_dbi(msf)
        funcs: list[tuple[int, int]] = []
        for module in dbi.modules:
            stream = msf.stream(module.stream)
            if stream is None:
                continue
            mod = read_module(stream.read_all(), module.sym_bytes, module.c11_bytes, module.c13_bytes)
            for proc in mod.procedures:
                rva = dbi.rva(proc.segment, proc.offset)
                if rva is not None:
                    funcs.append((rva, rva + max(proc.length, 1)))
        publics = sorted({dbi.sections[seg - 1].rva + off for seg, off, _name in read_publics(msf, dbi)
                          if 1 <= seg <= len(dbi.sections) and dbi.sections[seg - 1].executable})
        return sorted(set(funcs)), publics
