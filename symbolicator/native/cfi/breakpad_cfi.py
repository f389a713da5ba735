"""Breakpad `STACK CFI` records into CFI-cache rows (the same rows DWARF CFI gives).

`STACK CFI INIT addr size rules` opens a function, `STACK CFI addr rules` changes some rules
from that address on. Rules are postfix expressions; the forms `dump_syms` writes are read:

* `.cfa: $reg N +` (or `-`): the CFA is a register plus an offset;
* `$reg: .cfa N + ^` / `.ra: .cfa N + ^`: saved at CFA + N;  without `^`: the value CFA + N;
* `$reg: $other`: the value of another register; `$reg: .undef`: not recoverable.

Any other expression is kept as "an expression" (the walker falls back there), never guessed.

The file's `FUNC` and `PUBLIC` records also go into the cache, as the code map stack scanning
asks (`code_map.py`): the same question rust-minidump asks of the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from symbolicator.errors import MalformedObject
from symbolicator.native.breakpad_sym import parse
from symbolicator.native.cfi import code_map
from symbolicator.native.cfi.cache import CacheBuilder
from symbolicator.native.cfi.dwarf_cfi import Fde, RuleKey
from symbolicator.native.cfi.rules import (
    CFA_EXPRESSION,
    DWARF_REGISTERS,
    RETURN_ADDRESS,
    RuleKind,
)
from symbolicator.types import Arch

_ALIASES = {"$rip": "rip", "lr": "lr", "x29": "fp", "x30": "lr", "$sp": "sp", "sp": "sp", "pc": "pc"}


def _register_numbers(arch: Arch) -> dict[str, int]:
    names = {name: num for num, name in DWARF_REGISTERS.get(arch, {}).items()}
    out = {**{f"${n}": num for n, num in names.items()}, **names}
    for alias, target in _ALIASES.items():
        if target in names:
            out[alias] = names[target]
    return out


def _rules(text: str, regs: dict[str, int], ra: int) -> dict[str, tuple[int, int]]:
    """`{".cfa": (reg, offset), reg_number_as_str: (kind, offset)}` of one record's rules."""
    out: dict[str, tuple[int, int]] = {}
    tokens = text.split()
    i = 0
    while i < len(tokens):
        name = tokens[i]
        if not name.endswith(":"):
            raise MalformedObject(f"STACK CFI: expected `register:` at {name!r}")
        j = i + 1
        while j < len(tokens) and not tokens[j].endswith(":"):
            j += 1
        expr = tokens[i + 1:j]
        out[name[:-1]] = _expression(name[:-1], expr, regs)
        i = j
    return out


def _expression(target: str, expr: list[str], regs: dict[str, int]) -> tuple[int, int]:
    if target == ".cfa":
        if len(expr) == 3 and expr[0] in regs and expr[2] in "+-":
            off = int(expr[1], 0)
            return regs[expr[0]], off if expr[2] == "+" else -off
        return CFA_EXPRESSION, 0
    if expr == [".undef"]:
        return int(RuleKind.UNDEFINED), 0
    if len(expr) == 1 and expr[0] in regs:
        return int(RuleKind.REGISTER), regs[expr[0]]
    if len(expr) in (3, 4) and expr[0] == ".cfa" and expr[2] in "+-" and (len(expr) == 3 or expr[3] == "^"):
        try:
            off = int(expr[1], 0)
        except ValueError:
            return int(RuleKind.EXPRESSION), 0
        off = off if expr[2] == "+" else -off
        return int(RuleKind.OFFSET if len(expr) == 4 else RuleKind.VAL_OFFSET), off
    return int(RuleKind.EXPRESSION), 0


def _key(state: dict[str, tuple[int, int]], regs: dict[str, int], ra: int) -> RuleKey:
    cfa = state.get(".cfa", (CFA_EXPRESSION, 0))
    out: list[tuple[int, tuple[int, int]]] = []
    for name, rule in state.items():
        if name == ".cfa":
            continue
        num = ra if name == ".ra" else regs.get(name)
        if num is not None:
            out.append((num, rule))
    return cfa, tuple(sorted(out))


def build_from_sym(path: Path) -> tuple[bytes, dict[str, Any]]:
    sym = parse(path)
    regs = _register_numbers(sym.arch)
    ra = RETURN_ADDRESS.get(sym.arch, -1)
    fdes: list[Fde] = []
    state: dict[str, tuple[int, int]] = {}
    fde: Fde | None = None
    for line in sym.cfi:
        try:
            if line.startswith("INIT "):
                _init, addr, size, rest = line.split(" ", 3)
                start = int(addr, 16)
                fde = Fde(start, start + int(size, 16))
                fdes.append(fde)
                state = _rules(rest, regs, ra)
                fde.rows.append((start, _key(state, regs, ra)))
            elif fde is not None:
                addr, rest = line.split(" ", 1)
                state = {**state, **_rules(rest, regs, ra)}
                fde.rows.append((int(addr, 16), _key(state, regs, ra)))
        except ValueError as exc:
            raise MalformedObject(f"STACK CFI record {line[:80]!r}: {exc}") from exc
    funcs = sorted({(f.address, f.address + f.size) for f in sym.funcs})
    publics = sorted({address for address, _name in sym.publics})
    code = code_map.intervals(funcs, publics) if funcs or publics else None
    data, rows = CacheBuilder().add_all(fdes).build(sym.arch, 0, code=code)
    return data, {"arch": sym.arch.value, "image_vmaddr": 0, "rows": rows, "sources": ["STACK CFI"] if rows else [],
                  "code_map": code is not None}
