"""Decoding DWARF call frame information: `.eh_frame` and `.debug_frame` into unwind rows.

Our own decoder rather than pyelftools': it is one linear pass with no object per instruction,
and it takes `DW_CFA_GNU_args_size` (which pyelftools 0.33's `get_decoded()` raises on; any C++
or Rust code with exceptions has it). What it cannot use it keeps as data: a CFA or register
given by a DWARF expression becomes `CFA_EXPRESSION` / `RuleKind.EXPRESSION`, and the walker
falls back to frame pointers or scanning there (as Breakpad's `dump_syms`, which writes no
`STACK CFI` for them).

Bounded work: every read is checked against the section (`MalformedObject` otherwise), a CFA
program of one FDE emits at most `MAX_ROWS_PER_FDE` rows, and `remember_state` nests at most
`MAX_STATE_DEPTH` deep.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from symbolicator.errors import MalformedObject
from symbolicator.native.cfi.rules import CFA_EXPRESSION, RuleKind, RuleSet

MAX_ROWS_PER_FDE = 1 << 16
MAX_STATE_DEPTH = 64
_OMIT = 0xFF
_MAX_ADDR = (1 << 64) - 1
_MAX_OFFSET = 1 << 62
_MAX_REGISTER = 0xFFFF
_MAX_MEMO = 1 << 18
RuleKey = tuple[tuple[int, int], tuple[tuple[int, tuple[int, int]], ...]]
"""A row's rules as a plain hashable value: ((cfa_reg, cfa_offset), ((reg, (kind, offset)), ...))."""


class _Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise MalformedObject(f"call frame information truncated at offset {self.pos}")
        raw = self.data[self.pos:self.pos + n]
        self.pos += n
        return raw

    def u8(self) -> int:
        if self.pos >= self.end:
            raise MalformedObject(f"call frame information truncated at offset {self.pos}")
        self.pos += 1
        return self.data[self.pos - 1]

    def unpack(self, fmt: str) -> int:
        return int(struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0])

    def uleb(self) -> int:
        result = shift = 0
        while True:
            b = self.u8()
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return result
            if shift > 70:
                raise MalformedObject(f"LEB128 number too long at offset {self.pos}")

    def sleb(self) -> int:
        result = shift = 0
        while True:
            b = self.u8()
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return result - (1 << shift) if b & 0x40 else result
            if shift > 70:
                raise MalformedObject(f"LEB128 number too long at offset {self.pos}")

    def cstring(self) -> bytes:
        end = self.data.find(b"\0", self.pos, self.end)
        if end < 0:
            raise MalformedObject(f"unterminated string at offset {self.pos}")
        raw = self.data[self.pos:end]
        self.pos = end + 1
        return raw

    def pointer(self, enc: int, section_addr: int) -> int:
        """A pointer in `DW_EH_PE_*` encoding; pc-relative ones against `section_addr`."""
        here = section_addr + self.pos
        fmt = enc & 0x0F
        if fmt == 0x00:
            value = self.unpack("<Q")
        elif fmt == 0x01:
            value = self.uleb()
        elif fmt in (0x02, 0x03, 0x04):
            value = self.unpack({2: "<H", 3: "<I", 4: "<Q"}[fmt])
        elif fmt == 0x09:
            value = self.sleb()
        elif fmt in (0x0A, 0x0B, 0x0C):
            value = self.unpack({0xA: "<h", 0xB: "<i", 0xC: "<q"}[fmt])
        else:
            raise MalformedObject(f"unknown pointer encoding {enc:#x} at offset {self.pos}")
        if enc & 0x70 == 0x10:
            value += here
        return value & 0xFFFFFFFFFFFFFFFF


@dataclass
class _Cie:
    code_align: int
    data_align: int
    ra_reg: int
    fde_encoding: int = 0
    has_augmentation_data: bool = False
    initial: tuple[int, int] = (0, 0)  # start, end of the initial instructions
    address_size: int = 8


@dataclass
class Fde:
    """One function's rows: `rows[i]` holds from its address to the next row or `end`."""

    start: int
    end: int
    rows: list[tuple[int, RuleKey]] = field(default_factory=list)
    offset: int = -1
    """Where the FDE starts in its section (Mach-O compact unwind names DWARF FDEs by it)."""


def iter_fdes(data: bytes, section_addr: int, eh_frame: bool) -> Iterator[Fde]:
    """Every FDE of a `.eh_frame` (`eh_frame=True`) or `.debug_frame` section, with its rows."""
    cies: dict[int, _Cie] = {}
    memo: dict[tuple[int, bytes], list[tuple[int, RuleKey]]] = {}
    interned: dict[RuleKey, RuleKey] = {}  # one object per distinct rule set (a few hundred), not per row
    pos = 0
    size = len(data)
    while pos + 4 <= size:
        start = pos
        r = _Reader(data, pos, size)
        length = r.unpack("<I")
        offset_size = 4
        if length == 0xFFFFFFFF:
            length, offset_size = r.unpack("<Q"), 8
        if length == 0:
            if eh_frame:
                break  # the terminator
            pos = r.pos
            continue
        body = r.pos
        end = body + length
        if end > size:
            raise MalformedObject(f"a CFI entry at offset {start} runs past the end of the section")
        r.end = end
        id_pos = r.pos
        cie_id = r.unpack("<I" if offset_size == 4 else "<Q")
        is_cie = cie_id == 0 if eh_frame else cie_id == (0xFFFFFFFF if offset_size == 4 else 0xFFFFFFFFFFFFFFFF)
        if is_cie:
            cies[start] = _parse_cie(r, eh_frame)
        else:
            cie_at = id_pos - cie_id if eh_frame else cie_id
            cie = cies.get(cie_at)
            if cie is None:
                cie = _cie_at(data, cie_at, eh_frame)
                cies[cie_at] = cie
            fde = _parse_fde(r, cie, section_addr, data, memo, interned)
            if fde is not None:
                fde.offset = start
                yield fde
        pos = end


def _cie_at(data: bytes, at: int, eh_frame: bool) -> _Cie:
    if at < 0 or at + 4 > len(data):
        raise MalformedObject(f"an FDE points to a CIE at offset {at}, outside the section")
    r = _Reader(data, at, len(data))
    length = r.unpack("<I")
    if length in (0, 0xFFFFFFFF):
        if length == 0:
            raise MalformedObject(f"an FDE points to an empty CIE at offset {at}")
        length = r.unpack("<Q")
        r.end = min(len(data), r.pos + length)
        r.unpack("<Q")
    else:
        r.end = min(len(data), r.pos + length)
        r.unpack("<I")
    return _parse_cie(r, eh_frame)


def _parse_cie(r: _Reader, eh_frame: bool) -> _Cie:
    version = r.u8()
    augmentation = r.cstring()
    address_size = 8
    if not eh_frame and version >= 4:
        address_size = r.u8()
        r.u8()  # segment selector size
    if b"eh" in augmentation:
        r.take(8)
    code_align = r.uleb()
    data_align = r.sleb()
    ra_reg = r.u8() if version == 1 else r.uleb()
    cie = _Cie(code_align, data_align, ra_reg, address_size=address_size)
    if augmentation.startswith(b"z"):
        aug_len = r.uleb()
        aug_end = r.pos + aug_len
        cie.has_augmentation_data = True
        for ch in augmentation[1:]:
            if ch == ord("R"):
                cie.fde_encoding = r.u8()
            elif ch == ord("P"):
                enc = r.u8()
                r.pointer(enc & 0x7F, 0)
            elif ch == ord("L"):
                r.u8()
            elif ch in (ord("S"), ord("B"), ord("G")):
                continue
            else:
                break  # an augmentation we do not know: its data is skipped as a whole
        r.pos = aug_end
    elif augmentation not in (b"", b"eh"):
        raise MalformedObject(f"unknown CIE augmentation {augmentation!r}")
    cie.initial = (r.pos, r.end)
    return cie


def _parse_fde(r: _Reader, cie: _Cie, section_addr: int, data: bytes,
               memo: dict[tuple[int, bytes], list[tuple[int, RuleKey]]],
               interned: dict[RuleKey, RuleKey]) -> Fde | None:
    enc = cie.fde_encoding
    start = r.pointer(enc, section_addr)
    length = r.pointer(enc & 0x0F, section_addr)
    if cie.has_augmentation_data:
        r.pos += r.uleb()
    if length == 0 or start == 0 or start + length > _MAX_ADDR:
        return None  # a discarded function (linked out, its FDE left behind), or nonsense
    fde = Fde(start, start + length)
    # Most functions share their CFA program with others (same prologue, same epilogue): decode
    # each distinct (CIE, program) once, as rows relative to the function's start. Programs with
    # DW_CFA_set_loc (absolute addresses) are decoded every time.
    program = data[r.pos:r.end]
    key = (id(cie), program)
    relative = memo.get(key)
    if relative is not None:
        fde.rows = [(start + offset, rules) for offset, rules in relative]
        return fde
    state = _Machine(cie, section_addr, fde, interned)
    state.run(_Reader(data, *cie.initial), initial=True)
    state.run(r, initial=False)
    state.advance(0)
    if not state.absolute and len(memo) < _MAX_MEMO:
        memo[key] = [(addr - start, rules) for addr, rules in fde.rows]
    return fde


_UNDEFINED, _SAME, _OFFSET, _VAL_OFFSET, _REGISTER, _EXPRESSION = (int(k) for k in RuleKind)


def rule_set(key: RuleKey) -> RuleSet:
    (cfa_reg, cfa_offset), regs = key
    return RuleSet(cfa_reg, cfa_offset, tuple((r, RuleKind(k), o) for r, (k, o) in regs))


def _checked(value: int) -> int:
    if not -_MAX_OFFSET <= value <= _MAX_OFFSET:
        raise MalformedObject(f"a call frame offset is out of range ({value})")
    return value


class _Machine:
    """The CFA program interpreter of DWARF 6.4.2 for one FDE. Rules are plain ints and tuples:
    this loop runs once per CFA instruction of every function (millions in a big library)."""

    def __init__(self, cie: _Cie, section_addr: int, fde: Fde,
                 interned: dict[RuleKey, RuleKey] | None = None) -> None:
        self.cie = cie
        self.interned: dict[RuleKey, RuleKey] = {} if interned is None else interned
        self.section_addr = section_addr
        self.fde = fde
        self.loc = fde.start
        self.cfa: tuple[int, int] = (CFA_EXPRESSION, 0)
        self.regs: dict[int, tuple[int, int]] = {}
        self.initial_regs: dict[int, tuple[int, int]] = {}
        self.stack: list[tuple[tuple[int, int], dict[int, tuple[int, int]]]] = []
        self.absolute = False  # the program used DW_CFA_set_loc

    def snapshot(self) -> RuleKey:
        key = (self.cfa, tuple(sorted(self.regs.items())))
        return self.interned.setdefault(key, key)

    def advance(self, delta: int) -> None:
        new = self.loc + delta * self.cie.code_align
        if new > _MAX_ADDR:
            raise MalformedObject(f"the FDE at {self.fde.start:#x} advances past the address space")
        rows = self.fde.rows
        if new != self.loc or delta == 0:
            if len(rows) >= MAX_ROWS_PER_FDE:
                raise MalformedObject(f"the FDE at {self.fde.start:#x} has more than {MAX_ROWS_PER_FDE} rows")
            rules = self.snapshot()
            if not rows or rows[-1][1] != rules:
                rows.append((self.loc, rules))
        self.loc = new

    def _reg(self, r: _Reader) -> int:
        reg = r.uleb()
        if reg > _MAX_REGISTER:
            raise MalformedObject(f"register {reg} in the FDE at {self.fde.start:#x}")
        return reg

    def run(self, r: _Reader, initial: bool) -> None:
        da = self.cie.data_align
        data, regs = r.data, self.regs
        while r.pos < r.end:
            op = data[r.pos]
            r.pos += 1
            high = op & 0xC0
            if high == 0x40:
                self.advance(op & 0x3F)
            elif high == 0x80:
                regs[op & 0x3F] = (_OFFSET, _checked(r.uleb() * da))
            elif high == 0xC0:
                self._restore(op & 0x3F)
            elif op == 0x00:
                continue
            elif op == 0x01:
                target = r.pointer(self.cie.fde_encoding, self.section_addr)
                if target < self.loc:
                    raise MalformedObject(f"DW_CFA_set_loc moves backwards in the FDE at {self.fde.start:#x}")
                self.advance(0)
                self.loc = target
                self.absolute = True
            elif op in (0x02, 0x03, 0x04):
                self.advance(r.unpack({2: "<B", 3: "<H", 4: "<I"}[op]))
            elif op in (0x05, 0x11, 0x14, 0x15, 0x2F):
                reg = self._reg(r)
                off = r.uleb() * da if op in (0x05, 0x14) else -r.uleb() * da if op == 0x2F else r.sleb() * da
                regs[reg] = (_VAL_OFFSET if op in (0x14, 0x15) else _OFFSET, _checked(off))
            elif op == 0x06:
                self._restore(r.uleb())
            elif op == 0x07:
                regs[self._reg(r)] = (_UNDEFINED, 0)
            elif op == 0x08:
                regs[self._reg(r)] = (_SAME, 0)
            elif op == 0x09:
                reg = self._reg(r)
                regs[reg] = (_REGISTER, self._reg(r))
            elif op == 0x0A:
                if len(self.stack) >= MAX_STATE_DEPTH:
                    raise MalformedObject("DW_CFA_remember_state nested too deep")
                self.stack.append((self.cfa, dict(regs)))
            elif op == 0x0B:
                if self.stack:
                    self.cfa, regs = self.stack.pop()
                    self.regs = regs
            elif op in (0x0C, 0x12):
                reg = r.uleb()
                self.cfa = (reg, _checked(r.uleb() if op == 0x0C else r.sleb() * da))
            elif op == 0x0D:
                self.cfa = (r.uleb(), self.cfa[1])
            elif op in (0x0E, 0x13):
                self.cfa = (self.cfa[0], _checked(r.uleb() if op == 0x0E else r.sleb() * da))
            elif op == 0x0F:
                r.take(r.uleb())
                self.cfa = (CFA_EXPRESSION, 0)
            elif op in (0x10, 0x16):
                reg = self._reg(r)
                r.take(r.uleb())
                regs[reg] = (_EXPRESSION, 0)
            elif op == 0x2E:
                r.uleb()  # DW_CFA_GNU_args_size: nothing to unwind
            elif op == 0x2D:
                continue  # DW_CFA_GNU_window_save / AArch64 negate_ra_state: no effect on rules
            else:
                raise MalformedObject(f"unknown call frame instruction {op:#x} at offset {r.pos - 1}")
            if self.cfa[0] > 0xFE and self.cfa[0] != CFA_EXPRESSION:
                self.cfa = (CFA_EXPRESSION, 0)
        if initial:
            self.initial_regs = dict(regs)

    def _restore(self, reg: int) -> None:
        if reg in self.initial_regs:
            self.regs[reg] = self.initial_regs[reg]
        else:
            self.regs.pop(reg, None)
