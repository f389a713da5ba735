"""x64 PE unwind tables (`.pdata` + `.xdata`) into unwind rows, for the CFI cache.

A Windows x64 image describes how to unwind every non-leaf function in its exception directory:
one `RUNTIME_FUNCTION` (begin, end, unwind-info RVA) per function, sorted, and per function an
`UNWIND_INFO` (version, flags, prolog size, frame register + scaled offset, then the unwind
codes in reverse prolog order; with `UNW_FLAG_CHAININFO` a parent `RUNTIME_FUNCTION` follows,
whose codes apply too). This is what Windows' `RtlVirtualUnwind` reads, what Breakpad's and
Mozilla's `dump_syms` turn into `STACK CFI`, and what the walker needs for the most common
crash dumps in the field (sentry-native / Crashpad on Windows).

The codes become DWARF-style rows (`Fde`): at the function's entry the CFA is `rsp + 8` and
the return address at CFA − 8; each prolog operation takes effect at its code offset (from the
end of the prolog on, whatever its offset), so a frame stopped inside the prolog unwinds by
what has run so far (dump_syms writes only the final state, for the whole function).
`PUSH_NONVOL` saves a register 8 bytes further down, `ALLOC_SMALL` / `ALLOC_LARGE` grow the
frame, `SET_FPREG` moves the CFA onto the frame register (`CFA = reg + size − 16·FrameOffset`:
later `rsp` changes, `alloca` included, no longer matter), `SAVE_NONVOL(_FAR)` saves a register
at an offset from `rsp` at that point.
`SAVE_XMM128(_FAR)` is skipped (the walker tracks no vector registers). `PUSH_MACHFRAME` (an
interrupt or exception entry: the hardware pushed RIP, CS, EFLAGS, RSP, SS, after an error
code when its info is 1) takes the return address and the caller's `rsp` from that frame: an
explicit `rsp` rule, which the walker prefers to the CFA, as dump_syms writes it and
rust-minidump evaluates it.

Not modelled: epilogs (Windows recognises them by decoding the instructions at the pc; a frame
stopped inside an epilog unwinds by the body's rules here, as with dump_syms), and leaf
functions, which have no entry by design (the return address is on top of the stack: the
walker's frame-pointer and scanning steps find it, as rust-minidump's do).

Bounded: the directory is read in one pass (`MAX_FUNCTIONS`), chains stop at `MAX_CHAIN`
links, every read goes through the section table (`MalformedObject` past the file's data),
codes that run past their array or an unknown operation raise `MalformedObject`.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Iterator

from symbolicator.errors import MalformedObject
from symbolicator.native.cfi.dwarf_cfi import Fde, RuleKey
from symbolicator.native.cfi.rules import RuleKind

MAX_FUNCTIONS = 1 << 22
MAX_CHAIN = 32
UNW_FLAG_CHAININFO = 0x4
(PUSH_NONVOL, ALLOC_LARGE, ALLOC_SMALL, SET_FPREG, SAVE_NONVOL, SAVE_NONVOL_FAR, EPILOG_OR_SAVE_XMM,
 SPARE_OR_SAVE_XMM_FAR, SAVE_XMM128, SAVE_XMM128_FAR, PUSH_MACHFRAME) = range(11)
# Windows register numbers (rax rcx rdx rbx rsp rbp rsi rdi r8..r15) → DWARF x86_64 numbers.
_DWARF = (0, 2, 1, 3, 7, 6, 4, 5, 8, 9, 10, 11, 12, 13, 14, 15)
_RSP, _RIP = 7, 16
_OFFSET = int(RuleKind.OFFSET)
_FUNCTION = struct.Struct("<III")

Take = Callable[[int, int, str], bytes]
"""Reads `length` bytes at an image RVA (`native/pe/headers.rva_reader`)."""


class _Info:
    """One `UNWIND_INFO`: its codes as (prolog offset, operation, info, extra slots) in array order."""

    __slots__ = ("chained", "codes", "frame_offset", "frame_reg", "prolog_size", "raw")

    def __init__(self, take: Take, rva: int) -> None:
        head = take(rva, 4, "UNWIND_INFO")
        self.raw = head + take(rva + 4, 2 * head[2], "unwind codes")
        """What the rows depend on: functions with the same prolog share it, and their rows."""
        version, flags = head[0] & 7, head[0] >> 3
        if version not in (1, 2):
            raise MalformedObject(f"PE unwind: UNWIND_INFO version {version} at RVA {rva:#x}")
        self.prolog_size, count = head[1], head[2]
        self.frame_reg, self.frame_offset = head[3] & 0xF, head[3] >> 4
        slots = struct.unpack_from(f"<{count}H", self.raw, 4) if count else ()
        codes: list[tuple[int, int, int, tuple[int, ...]]] = []
        i = 0
        while i < count:
            offset, op, info = slots[i] & 0xFF, (slots[i] >> 8) & 0xF, slots[i] >> 12
            n = _slots(op, info, version)
            if i + n > count:
                raise MalformedObject(f"PE unwind: code {op} at RVA {rva:#x} runs past its {count} slots")
            codes.append((offset, op, info, slots[i + 1:i + n]))
            i += n
        self.codes = tuple(codes)
        self.chained: int | None = None
        if flags & UNW_FLAG_CHAININFO:
            at = rva + 4 + 2 * (count + (count & 1))
            self.chained = _FUNCTION.unpack(take(at, 12, "chained RUNTIME_FUNCTION"))[2]


def _slots(op: int, info: int, version: int) -> int:
    if op in (PUSH_NONVOL, ALLOC_SMALL, SET_FPREG, PUSH_MACHFRAME):
        return 1
    if op == ALLOC_LARGE:
        return 2 if info == 0 else 3
    if op in (SAVE_NONVOL, SAVE_XMM128, EPILOG_OR_SAVE_XMM):  # 6: v2 UWOP_EPILOG, v1 UWOP_SAVE_XMM
        return 2
    if op in (SAVE_NONVOL_FAR, SAVE_XMM128_FAR, SPARE_OR_SAVE_XMM_FAR):
        return 3
    raise MalformedObject(f"PE unwind: unknown unwind operation {op} (version {version})")


class _State:
    """The frame as the prolog has built it so far: `size` bytes from `rsp` up to the CFA."""

    def __init__(self) -> None:
        self.size = 8  # the return address
        self.cfa: tuple[int, int] | None = None  # (DWARF register, offset) once SET_FPREG ran
        self.saved: dict[int, int] = {_RIP: -8}

    def apply(self, info: _Info, op: int, arg: int, extra: tuple[int, ...]) -> None:
        if op == PUSH_NONVOL:
            self.size += 8
            self._save(arg, -self.size)
        elif op == ALLOC_SMALL:
            self.size += 8 * arg + 8
        elif op == ALLOC_LARGE:
            self.size += extra[0] * 8 if arg == 0 else extra[0] | extra[1] << 16
        elif op == SET_FPREG:
            self.cfa = (_DWARF[info.frame_reg], self.size - 16 * info.frame_offset)
        elif op == SAVE_NONVOL:
            self._save(arg, 8 * extra[0] - self.size)
        elif op == SAVE_NONVOL_FAR:
            self._save(arg, (extra[0] | extra[1] << 16) - self.size)
        elif op == PUSH_MACHFRAME:
            error_code = 8 if arg else 0
            self.size += 40 + error_code
            self.saved[_RIP] = error_code - self.size
            self.saved[_RSP] = error_code + 24 - self.size

    def _save(self, reg: int, at: int) -> None:
        if _DWARF[reg] != _RSP:
            self.saved[_DWARF[reg]] = at

    def key(self) -> RuleKey:
        cfa = self.cfa if self.cfa is not None else (_RSP, self.size)
        return cfa, tuple((reg, (_OFFSET, at)) for reg, at in sorted(self.saved.items()))


def _relative_rows(chain: tuple[_Info, ...]) -> list[tuple[int, RuleKey]]:
    """Rows at offsets from the function's start, as `RtlVirtualUnwind` decides at each pc: the
    parents' codes all apply (their prologs ran in the primary function), the function's own
    only where the pc is past their code offset (every one from the end of the prolog on).
    Hand-written prologs may list a code at offset 0 after later ones, so each row is
    evaluated afresh rather than as a running prefix."""
    own = chain[0]
    offsets = sorted({min(offset, own.prolog_size) for offset, *_ in own.codes} | {0})
    rows: list[tuple[int, RuleKey]] = []
    for at in offsets:
        state = _State()
        for parent in reversed(chain[1:]):
            for _offset, op, arg, extra in reversed(parent.codes):
                state.apply(parent, op, arg, extra)
        for offset, op, arg, extra in reversed(own.codes):
            if min(offset, own.prolog_size) <= at:
                state.apply(own, op, arg, extra)
        key = state.key()
        if not rows or rows[-1][1] != key:
            rows.append((at, key))
    return rows


def fdes(take: Take, exception_dir: tuple[int, int], image_base: int) -> Iterator[Fde]:
    """Every function of the exception directory `(rva, size)` as an FDE at module virtual
    addresses (`image_base` + RVA). Zeroed entries (linkers pad with them) are skipped."""
    rva, size = exception_dir
    count = size // _FUNCTION.size
    if count > MAX_FUNCTIONS:
        raise MalformedObject(f"PE unwind: {count} RUNTIME_FUNCTION entries")
    table = take(rva, count * _FUNCTION.size, "exception directory") if count else b""
    read_info = functools.lru_cache(maxsize=4096)(lambda at: _Info(take, at))
    memo: dict[tuple[bytes, ...], list[tuple[int, RuleKey]]] = {}
    for begin, end, unwind in _FUNCTION.iter_unpack(table):
        if end <= begin or unwind == 0:
            continue
        if unwind & 1:  # an indirect entry: the RVA of another RUNTIME_FUNCTION, whose unwind info is used
            unwind = _FUNCTION.unpack(take(unwind & ~1, 12, "indirect RUNTIME_FUNCTION"))[2] & ~1
        chain = [read_info(unwind)]
        while (parent := chain[-1].chained) is not None:
            if len(chain) >= MAX_CHAIN:
                raise MalformedObject(f"PE unwind: a chain of more than {MAX_CHAIN} UNWIND_INFOs at {begin:#x}")
            chain.append(read_info(parent))
        key = tuple(info.raw for info in chain)
        rows = memo.get(key)
        if rows is None:
            rows = memo[key] = _relative_rows(tuple(chain))
        if rows:
            start = image_base + begin
            yield Fde(start, image_base + end, [(start + at, k) for at, k in rows])
