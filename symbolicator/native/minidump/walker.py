"""Walking a thread's stack: from the thread's context to its outermost caller.

The order and the checks are rust-minidump's (`minidump-unwind`, what Symbolicator uses), so
the frames come out as `minidump-stackwalk`'s do:

1. **CFI** of the module holding the frame's instruction (the caller frames' return address
   minus one): CFA from its rule, the return address and callee-saved registers from theirs;
   registers without a rule are forwarded when callee-saved. No further validation.
2. **Frame pointers** (x86_64 `rbp` chain; AArch64 `fp`/`lr`): accepted only if the frame
   and stack pointers stay well ordered and inside the stack, and the address is canonical.
3. **Stack scanning**: the first word above the stack pointer (160 words for the context frame,
   40 after) that "seems a valid instruction": inside a module and, when the module has
   symbols, inside a function.

A walk ends when the instruction pointer is nullish (< 4096), when the stack pointer does not
grow (so it never loops), when the captured stack ends, or at `MAX_FRAMES`. Every frame carries
its `trust`: `context`, `cfi`, `fp` or `scan`. Memory is the thread's captured stack only.

AArch64 follows `arm64.rs`: callee-saved x19–x29; no RA rule means the return address is in
x30 (`lr`); the frame-pointer step trusts the `fp`/`lr` record without checking the stack and
keeps the caller's `lr` from the next record; the context frame and CFI frames scan 160 words;
pointer-authentication bits are masked off; the stack pointer may stay equal (leaf functions)
once, if the pc changes and the step was from the context frame or by CFI.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from symbolicator.native.cfi.cache import CfiCache
from symbolicator.native.cfi.rules import (
    CFA_EXPRESSION,
    DWARF_REGISTERS,
    RETURN_ADDRESS,
    RuleKind,
)
from symbolicator.types import Arch

MAX_FRAMES = 16384
SCAN_WORDS = 40
CONTEXT_SCAN_WORDS = SCAN_WORDS * 4
_CALLEE_SAVED = {
    Arch.X86_64: ("rbx", "rbp", "r12", "r13", "r14", "r15"),
    Arch.ARM64: tuple(f"x{i}" for i in range(19, 29)) + ("fp",),
}
_PC = {Arch.X86_64: "rip", Arch.ARM64: "pc"}
_SP = {Arch.X86_64: "rsp", Arch.ARM64: "sp"}
_FP = {Arch.X86_64: "rbp", Arch.ARM64: "fp"}
_MASK = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class WalkModule:
    """A loaded module as the walker sees it: [base, base + size), its CFI cache if any, and
    `has_function(module_address)` for scanning (None: an address seems valid where the CFI
    cache covers it, or anywhere in the module without a CFI cache)."""

    base: int
    size: int
    cfi: CfiCache | None = None
    has_function: Callable[[int], bool] | None = None


@dataclass(frozen=True, slots=True)
class WalkedFrame:
    """`instruction` is as walked (the return address for callers); `registers` the valid ones."""

    instruction: int
    trust: str
    registers: dict[str, int]


class Stack:
    """A thread's captured stack memory: [base, base + len(data))."""

    def __init__(self, base: int, data: bytes) -> None:
        self.base = base
        self.data = data
        self.end = base + len(data)

    def u64(self, addr: int) -> int | None:
        if addr < self.base or addr + 8 > self.end:
            return None
        return int(struct.unpack_from("<Q", self.data, addr - self.base)[0])


class Modules:
    """Modules by address: one bisect per lookup."""

    def __init__(self, modules: Sequence[WalkModule]) -> None:
        self._mods = sorted((m for m in modules if m.size > 0), key=lambda m: m.base)
        self._bases = [m.base for m in self._mods]

    def at(self, addr: int) -> WalkModule | None:
        i = bisect.bisect_right(self._bases, addr) - 1
        if i >= 0 and addr < self._mods[i].base + self._mods[i].size:
            return self._mods[i]
        return None


def _non_canonical(ptr: int) -> bool:
    return 0x7FFFFFFFFFFF < ptr < 0xFFFF800000000000


class Walker:
    """Walks threads of one dump: its arch and modules are fixed, each thread brings its stack."""

    def __init__(self, arch: Arch, modules: Sequence[WalkModule], max_frames: int = MAX_FRAMES,
                 frame_pointers: bool = True) -> None:
        """`frame_pointers=False` for Windows x64, where rust-minidump skips that step: a frame
        register may point into the middle of a frame (`SET_FPREG` with an offset), so only the
        unwind info says where the frame ends."""
        self.arch = arch
        self.frame_pointers = frame_pointers
        self.modules = Modules(modules)
        highest = max([(1 << 47) - 1, *(m.base + m.size for m in modules)])
        self.pointer_mask = (1 << highest.bit_length()) - 1 if highest < _MASK else _MASK
        self.max_frames = max_frames
        self.pc, self.sp, self.fp = _PC.get(arch, "pc"), _SP.get(arch, "sp"), _FP.get(arch, "fp")
        self.callee_saved = _CALLEE_SAVED.get(arch, ())
        self.dwarf_names = DWARF_REGISTERS.get(arch, {})
        self.ra_reg = RETURN_ADDRESS.get(arch, -1)

    def walk(self, registers: dict[str, int], stack: Stack) -> list[WalkedFrame]:
        if self.pc not in registers or self.arch not in _PC:
            return []
        frames = [WalkedFrame(registers[self.pc], "context", dict(registers))]
        while len(frames) < self.max_frames:
            caller = self._caller(frames[-1], stack, len(frames) == 1)
            if caller is None:
                break
            frames.append(caller)
        return frames

    def _caller(self, callee: WalkedFrame, stack: Stack, first: bool) -> WalkedFrame | None:
        regs = callee.registers
        frame = self._by_cfi(callee, stack, first)
        if frame is None:
            if self.arch == Arch.ARM64:
                frame = self._by_fp_arm64(regs, stack)
            elif self.frame_pointers:
                frame = self._by_frame_pointer(regs, stack)
        frame = frame or self._by_scan(regs, stack, first or (self.arch == Arch.ARM64 and callee.trust == "cfi"))
        if frame is None:
            return None
        ip, sp = frame.registers.get(self.pc, 0), frame.registers.get(self.sp, 0)
        last_sp = regs.get(self.sp, _MASK)
        if ip < 4096 or sp < last_sp:
            return None
        # AArch64 leaf functions keep sp: allowed once per pc, from the context frame or by CFI.
        if sp == last_sp and (self.arch != Arch.ARM64 or ip == regs.get(self.pc)
                              or not (first or frame.trust == "cfi")):
            return None
        return frame

    def _by_cfi(self, callee: WalkedFrame, stack: Stack, first: bool) -> WalkedFrame | None:
        regs = callee.registers
        if self.sp not in regs:
            return None
        lookup = callee.instruction if first else callee.instruction - 1
        module = self.modules.at(lookup)
        if module is None or module.cfi is None:
            return None
        rules = module.cfi.lookup(lookup - module.base + module.cfi.image_vmaddr)
        if rules is None or rules.cfa_reg == CFA_EXPRESSION:
            return None
        base_name = self.dwarf_names.get(rules.cfa_reg)
        if base_name is None or base_name not in regs:
            return None
        cfa = (regs[base_name] + rules.cfa_offset) & _MASK
        caller = {name: regs[name] for name in self.callee_saved if name in regs}
        ra: int | None = None
        sp = cfa
        for reg, kind, off in rules.rules:
            value = self._recover(kind, off, cfa, regs, stack, reg)
            if reg == self.ra_reg:
                ra = value
                continue
            name = self.dwarf_names.get(reg)
            if name == self.sp and kind == RuleKind.OFFSET and value is not None:
                sp = value  # saved in a machine frame (Windows x64 PUSH_MACHFRAME), as rust-minidump reads `$rsp:`
            if name is None or name == self.sp:
                continue
            if value is None:
                caller.pop(name, None)
            else:
                caller[name] = value
        if ra is None and self.arch == Arch.ARM64 and rules.rule(self.ra_reg) is None:
            ra = regs.get("lr")  # AArch64 without an RA rule: the return address is still in x30
        if ra is None:
            return None
        if self.arch == Arch.ARM64:
            ra &= self.pointer_mask  # pointer authentication bits
            if "fp" in caller:
                caller["fp"] &= self.pointer_mask
        caller[self.pc] = ra
        caller[self.sp] = sp
        return WalkedFrame(ra, "cfi", caller)

    def _recover(self, kind: RuleKind, off: int, cfa: int, regs: dict[str, int], stack: Stack,
                 reg: int) -> int | None:
        if kind == RuleKind.OFFSET:
            return stack.u64((cfa + off) & _MASK)
        if kind == RuleKind.VAL_OFFSET:
            return (cfa + off) & _MASK
        if kind == RuleKind.REGISTER:
            name = self.dwarf_names.get(off)
            return regs.get(name) if name else None
        if kind == RuleKind.SAME_VALUE:
            name = self.dwarf_names.get(reg)
            return regs.get(name) if name else None
        return None

    def _by_frame_pointer(self, regs: dict[str, int], stack: Stack) -> WalkedFrame | None:
        if self.fp not in regs or self.sp not in regs:
            return None
        last_bp, last_sp = regs[self.fp], regs[self.sp]
        if last_bp >= _MASK - 16:
            return None
        caller_ip = stack.u64(last_bp + 8)
        caller_bp = stack.u64(last_bp)
        if caller_ip is None or caller_bp is None:
            return None
        caller_sp = last_bp + 16
        if caller_sp <= last_bp or caller_bp < caller_sp or stack.u64(caller_bp) is None:
            return None
        if _non_canonical(caller_ip):
            return None
        if caller_sp <= last_sp or stack.u64(caller_sp) is None:
            return None
        caller = {self.pc: caller_ip, self.sp: caller_sp, self.fp: caller_bp}
        return WalkedFrame(caller_ip, "fp", caller)

    def _by_fp_arm64(self, regs: dict[str, int], stack: Stack) -> WalkedFrame | None:
        """The `fp`/`lr` record, trusted as rust-minidump does (no stack checks); fp 0 ends the walk."""
        if "fp" not in regs or self.sp not in regs:
            return None
        last_fp, last_sp = regs["fp"], regs[self.sp]
        if last_fp >= _MASK - 16:
            return None
        if last_fp == 0:
            return WalkedFrame(0, "fp", {self.pc: 0, "fp": 0, self.sp: last_sp})
        caller_fp, caller_pc = stack.u64(last_fp), stack.u64(last_fp + 8)
        if caller_fp is None or caller_pc is None:
            return None
        caller_fp &= self.pointer_mask
        caller_pc &= self.pointer_mask
        if not 0x1000 <= caller_pc <= 0x000FFFFFFFFFFFFF:
            return None
        caller = {self.pc: caller_pc, "fp": caller_fp, self.sp: last_fp + 16}
        caller_lr = stack.u64(caller_fp + 8) if caller_fp else None
        if caller_lr is not None:
            caller["lr"] = caller_lr & self.pointer_mask
        return WalkedFrame(caller_pc, "fp", caller)

    def _seems_valid(self, ip: int) -> bool:
        if ip == 0:
            return False
        if self.arch == Arch.ARM64:
            if not 0x1000 <= ip <= 0x000FFFFFFFFFFFFF:
                return False
        elif _non_canonical(ip):
            return False
        addr = ip - 1
        module = self.modules.at(addr)
        if module is None:
            return False
        if module.has_function is not None:
            return module.has_function(addr - module.base)
        if module.cfi is not None and module.cfi.rows:
            # Our stand-in for rust-minidump's "a symbol covers it": an FDE covers it (in a PE, whose
            # leaf functions have no unwind entry, any address from its first function on).
            return module.cfi.covers(addr - module.base + module.cfi.image_vmaddr)
        return True

    def _by_scan(self, regs: dict[str, int], stack: Stack, first: bool) -> WalkedFrame | None:
        if self.sp not in regs:
            return None
        last_sp = regs[self.sp]
        last_bp = regs.get(self.fp)
        for i in range(CONTEXT_SCAN_WORDS if first else SCAN_WORDS):
            address_of_ip = last_sp + 8 * i
            caller_ip = stack.u64(address_of_ip)
            if caller_ip is None:
                return None
            if not self._seems_valid(caller_ip):
                continue
            caller_sp = address_of_ip + 8
            caller_bp = None
            if last_bp is not None and i > 0 and self.arch != Arch.ARM64:
                address_of_bp = address_of_ip - 8
                bp = stack.u64(address_of_bp)
                if bp is not None and last_bp == address_of_bp and address_of_ip < bp <= address_of_bp + 128 * 1024:
                    if stack.u64(bp) is not None:
                        caller_bp = bp
                elif last_bp >= caller_sp:
                    caller_bp = last_bp
            caller = {self.pc: caller_ip, self.sp: caller_sp}
            if caller_bp is not None:
                caller[self.fp] = caller_bp
            return WalkedFrame(caller_ip, "scan", caller)
        return None
