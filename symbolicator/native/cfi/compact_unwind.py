"""Mach-O compact unwind (`__TEXT,__unwind_info`) into unwind rows, for the CFI cache.

Apple's linkers replace most of a Mach-O image's `__eh_frame` with one 32-bit *encoding* per
function in `__unwind_info` (`<mach-o/compact_unwind_encoding.h>`): a first-level index of
pages, each page *regular* (function offset + encoding pairs) or *compressed* (24-bit offsets
from the page's base, 8-bit indexes into the common and the page's own encoding tables). A
function runs from its entry to the next entry. `entries` reads both page kinds, checking every
offset and count against the section; `rows` decodes what the runtime's unwinder (libunwind's
`CompactUnwinder`) does with each encoding, as one rule set for the whole function:

* x86_64 `RBP_FRAME`: CFA = rbp + 16, return address at CFA − 8, rbp at CFA − 16, up to five
  saved registers from rbp − 8·offset upwards;
* x86_64 `STACKLESS` (`FRAMELESS_IMMD`): CFA = rsp + the encoded size; `STACK_IND`: the size is
  the 32-bit immediate of the function's `sub rsp` at the encoded offset (read from the image)
  plus the encoded adjustment; the saved registers' permutation (libunwind's renumbering) lies
  just below the return address;
* arm64 `FRAME`: CFA = fp + 16, lr at CFA − 8, fp at CFA − 16, each saved x-register pair
  (x19/x20 … x27/x28) below, in that order; `FRAMELESS`: CFA = sp + 16·size, the return address
  still in lr;
* `DWARF` mode: the function's FDE in `__eh_frame` at the encoded offset, as libunwind reads
  it, when one starts there and covers the function's start (ld64.lld 14 writes these entries
  with offset 0, a CIE, and leaves its `__eh_frame` unrelocated: such functions get no rows,
  as in symbolic);
* no encoding (0, what clang gives a leaf without a prologue): a frameless function with no
  stack, as symbolic reads it (the return address on top of the stack, or in lr).

The rules hold after the prologue (the runtime applies them everywhere in the function, and so
do symbolic and rust-minidump): a caller frame is always past it; a crash inside a prologue may
unwind wrongly, as with Apple's own unwinder.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from symbolicator.errors import MalformedObject
from symbolicator.native.cfi.dwarf_cfi import Fde, RuleKey
from symbolicator.native.cfi.rules import RuleKind
from symbolicator.types import Arch

REGULAR, COMPRESSED = 2, 3
MODE_MASK = 0x0F000000
MAX_INDEX_ENTRIES = 1 << 20
MAX_PAGE_ENTRIES = 4096  # a page is 4 KiB: at most 1,021 compressed or 511 regular entries
_OFFSET = int(RuleKind.OFFSET)

# x86_64 (UNWIND_X86_64_*): modes, and the compact register numbers → DWARF numbers
X86_RBP_FRAME, X86_STACK_IMMD, X86_STACK_IND, X86_DWARF = 0x01000000, 0x02000000, 0x03000000, 0x04000000
_X86_DWARF_REG = {1: 3, 2: 12, 3: 13, 4: 14, 5: 15, 6: 6}  # rbx r12 r13 r14 r15 rbp
X86_RSP, X86_RBP, X86_RIP = 7, 6, 16
# arm64 (UNWIND_ARM64_*)
ARM64_FRAMELESS, ARM64_DWARF, ARM64_FRAME = 0x02000000, 0x03000000, 0x04000000
ARM64_FP, ARM64_LR, ARM64_SP = 29, 30, 31
_ARM64_PAIRS = ((0x1, 19, 20), (0x2, 21, 22), (0x4, 23, 24), (0x8, 25, 26), (0x10, 27, 28))

ReadU32 = Callable[[int], int | None]
"""Reads the little-endian u32 at a module virtual address; None where the image has no bytes."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One function's encoding: `start` and `end` are offsets from the image's base (`__TEXT`)."""

    start: int
    end: int
    encoding: int


def entries(data: bytes | memoryview) -> Iterator[Entry]:
    """Every function entry of an `__unwind_info` section, in address order (regular and
    compressed second-level pages); MalformedObject for offsets or counts past the section."""
    size = len(data)

    def u32s(at: int, count: int, what: str) -> tuple[int, ...]:
        if at < 0 or count < 0 or at + 4 * count > size:
            raise MalformedObject(f"__unwind_info: {what} at {at} ({count} entries) runs past the section ({size})")
        return struct.unpack_from(f"<{count}I", data, at)

    version, common_at, common_count, _pers_at, _pers_count, index_at, index_count = u32s(0, 7, "header")
    if version != 1:
        raise MalformedObject(f"__unwind_info: version {version} (only 1 is defined)")
    if index_count > MAX_INDEX_ENTRIES:
        raise MalformedObject(f"__unwind_info: {index_count} index entries")
    common = u32s(common_at, common_count, "the common encodings")
    index = u32s(index_at, 3 * index_count, "the first-level index")
    pages = [(index[3 * i], index[3 * i + 1]) for i in range(index_count)]
    for (base, page_at), (next_base, _) in zip(pages, pages[1:], strict=False):
        if page_at == 0:
            continue
        if next_base < base:
            raise MalformedObject("__unwind_info: first-level index out of order")
        (kind,) = u32s(page_at, 1, "a second-level page")
        if kind == REGULAR:
            if page_at + 8 > size:
                raise MalformedObject("__unwind_info: regular page header past the section")
            entry_at, count = struct.unpack_from("<HH", data, page_at + 4)
            pairs = u32s(page_at + entry_at, 2 * min(count, MAX_PAGE_ENTRIES), "a regular page")
            found = [(pairs[2 * i], pairs[2 * i + 1]) for i in range(len(pairs) // 2)]
        elif kind == COMPRESSED:
            if page_at + 12 > size:
                raise MalformedObject("__unwind_info: compressed page header past the section")
            entry_at, count, enc_at, enc_count = struct.unpack_from("<HHHH", data, page_at + 4)
            local = u32s(page_at + enc_at, enc_count, "a page's encodings")
            found = []
            for word in u32s(page_at + entry_at, min(count, MAX_PAGE_ENTRIES), "a compressed page"):
                i = word >> 24
                if i >= len(common) + len(local):
                    raise MalformedObject(f"__unwind_info: encoding index {i} past the tables")
                found.append((base + (word & 0x00FFFFFF), common[i] if i < len(common) else local[i - len(common)]))
        else:
            raise MalformedObject(f"__unwind_info: second-level page kind {kind}")
        if not found:
            continue
        ends = [start for start, _ in found[1:]] + [next_base]
        for (start, encoding), end in zip(found, ends, strict=True):
            if start < end:
                yield Entry(start, end, encoding)


def _key(cfa: tuple[int, int], saved: dict[int, int]) -> RuleKey:
    return cfa, tuple((reg, (_OFFSET, off)) for reg, off in sorted(saved.items()))


def _x86_permutation(count: int, perm: int) -> list[int]:
    """libunwind's decoding of a frameless function's saved-register permutation: compact
    register numbers (1 rbx … 6 rbp) in push order."""
    digits: list[int] = []
    for radix in ((120, 24, 6, 2, 1), (120, 24, 6, 2, 1), (60, 12, 3, 1), (20, 4, 1), (5, 1), (1,))[6 - count]:
        digits.append(perm // radix)
        perm -= digits[-1] * radix
    digits.append(0)  # six registers: the last one is whichever is left
    out, used = [], set()
    for digit in digits[:count]:
        free = [r for r in range(1, 7) if r not in used]
        if digit >= len(free):
            raise MalformedObject("compact unwind: register permutation out of range")
        out.append(free[digit])
        used.add(free[digit])
    return out


def x86_64_rules(entry: Entry, image_vmaddr: int, read_u32: ReadU32) -> RuleKey | None:
    enc = entry.encoding
    mode = enc & MODE_MASK
    if enc == 0:  # clang's leaf without a prologue: the return address on top of the stack (as symbolic)
        return _key((X86_RSP, 8), {X86_RIP: -8})
    if mode == X86_RBP_FRAME:
        saved = {X86_RIP: -8, X86_RBP: -16}
        at = -16 - 8 * ((enc >> 16) & 0xFF)  # rbp − 8·offset, from the CFA = rbp + 16
        regs = enc & 0x7FFF
        for _ in range(5):
            if regs & 7:
                if regs & 7 not in _X86_DWARF_REG:
                    raise MalformedObject(f"compact unwind: register {regs & 7} in {enc:#x}")
                saved[_X86_DWARF_REG[regs & 7]] = at
            at += 8
            regs >>= 3
        return _key((X86_RBP, 16), saved)
    if mode in (X86_STACK_IMMD, X86_STACK_IND):
        size = ((enc >> 16) & 0xFF) * 8
        if mode == X86_STACK_IND:
            immediate = read_u32(image_vmaddr + entry.start + ((enc >> 16) & 0xFF))
            if immediate is None:
                return None
            size = immediate + ((enc >> 13) & 7) * 8
        count = (enc >> 10) & 7
        if count > 6:
            raise MalformedObject(f"compact unwind: {count} saved registers in {enc:#x}")
        saved = {X86_RIP: -8}
        order = _x86_permutation(count, enc & 0x3FF) if count else []
        for i, reg in enumerate(order):  # the first pushed sits just below the return address
            saved[_X86_DWARF_REG[reg]] = -8 * (count - i) - 8
        return _key((X86_RSP, size), saved)
    return None


def arm64_rules(entry: Entry) -> RuleKey | None:
    enc = entry.encoding
    mode = enc & MODE_MASK
    if mode == ARM64_FRAME:
        saved = {ARM64_LR: -8, ARM64_FP: -16}
        at = -24
        for bit, first, second in _ARM64_PAIRS:
            if enc & bit:
                saved[first], saved[second] = at, at - 8
                at -= 16
        return _key((ARM64_FP, 16), saved)
    if mode == ARM64_FRAMELESS or enc == 0:
        return _key((ARM64_SP, 16 * ((enc >> 12) & 0xFFF)), {})
    return None


def fdes(data: bytes | memoryview, arch: Arch, image_vmaddr: int, read_u32: ReadU32,
         eh_frame: Callable[[], dict[int, Fde]]) -> Iterator[Fde]:
    """The rows of every function, at module virtual addresses: one single-row FDE per compact
    rule, the `__eh_frame` FDE of a DWARF-mode function (`eh_frame()`: the section's FDEs by
    offset, asked for only when such a function comes)."""
    dwarf = X86_DWARF if arch == Arch.X86_64 else ARM64_DWARF
    by_encoding: dict[int, RuleKey | None] = {}  # functions share a few hundred encodings at most
    for entry in entries(data):
        start = image_vmaddr + entry.start
        mode = entry.encoding & MODE_MASK
        if mode == dwarf:
            fde = eh_frame().get(entry.encoding & 0x00FFFFFF)
            if fde is not None and fde.start == start:
                yield fde
            continue
        if arch == Arch.X86_64 and mode == X86_STACK_IND:
            key = x86_64_rules(entry, image_vmaddr, read_u32)  # its size is read from the function
        elif entry.encoding in by_encoding:
            key = by_encoding[entry.encoding]
        else:
            key = x86_64_rules(entry, image_vmaddr, read_u32) if arch == Arch.X86_64 else arm64_rules(entry)
            by_encoding[entry.encoding] = key
        if key is not None:
            yield Fde(start, image_vmaddr + entry.end, [(start, key)])
