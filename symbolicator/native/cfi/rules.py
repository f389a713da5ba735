"""Unwind rules as plain values, shared by the decoders, the cache and the walker.

A `RuleSet` says, at one address: the CFA (canonical frame address) is `cfa_reg + cfa_offset`,
and each register with a rule is recovered from it. Registers are DWARF numbers (x86_64: rbx 3,
rbp 6, rsp 7, r12..r15 12..15, return address 16; AArch64: x0..x30 0..30, sp 31).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from symbolicator.types import Arch


class RuleKind(enum.IntEnum):
    """How a caller's register is recovered (DWARF 6.4.1)."""

    UNDEFINED = 0  # not recoverable; for the return address: the end of the stack
    SAME_VALUE = 1  # the callee's value
    OFFSET = 2  # saved at CFA + offset
    VAL_OFFSET = 3  # the value is CFA + offset
    REGISTER = 4  # the value of register `offset`
    EXPRESSION = 5  # a DWARF expression this walker does not evaluate


CFA_EXPRESSION = 0xFF  # cfa_reg of a CFA given by an expression: not usable


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The unwind rules at one address; `rules` is sorted (register, kind, offset)."""

    cfa_reg: int
    cfa_offset: int
    rules: tuple[tuple[int, RuleKind, int], ...]

    def encode(self) -> bytes:
        out = [struct.pack("<BqB", self.cfa_reg, self.cfa_offset, len(self.rules))]
        out += [struct.pack("<HBq", reg, kind, off) for reg, kind, off in self.rules]
        return b"".join(out)

    @classmethod
    def decode(cls, raw: bytes | memoryview) -> RuleSet:
        cfa_reg, cfa_offset, n = struct.unpack_from("<BqB", raw, 0)
        rules = tuple((reg, RuleKind(kind), off) for reg, kind, off in
                      (struct.unpack_from("<HBq", raw, 10 + 11 * i) for i in range(n)))
        return cls(cfa_reg, cfa_offset, rules)

    def rule(self, reg: int) -> tuple[RuleKind, int] | None:
        for r, kind, off in self.rules:
            if r == reg:
                return kind, off
        return None


# DWARF register numbers of the registers the walkers track, and which is the return address.
DWARF_REGISTERS: dict[Arch, dict[int, str]] = {
    Arch.X86_64: {0: "rax", 1: "rdx", 2: "rcx", 3: "rbx", 4: "rsi", 5: "rdi", 6: "rbp", 7: "rsp",
                  8: "r8", 9: "r9", 10: "r10", 11: "r11", 12: "r12", 13: "r13", 14: "r14", 15: "r15",
                  16: "rip"},
    Arch.ARM64: {**{i: f"x{i}" for i in range(29)}, 29: "fp", 30: "lr", 31: "sp"},
}
RETURN_ADDRESS = {Arch.X86_64: 16, Arch.ARM64: 30}
