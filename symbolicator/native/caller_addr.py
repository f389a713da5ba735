"""Caller-address adjustment: which address to look up for each frame of a stack.

Every frame but the innermost one holds a *return address*: the instruction after
the call, which may already belong to the next line, inlined call or even
function. Looking up the previous instruction instead finds the call site. This
module reproduces Symbolicator's rules exactly (docs/api.md), so a frame
resolves here to what it resolves to there:

* Symbolicator (`symbolicator-native`, `get_relative_caller_addr`,
  `AdjustInstructionAddr`): a thread where *any* frame carries
  `adjust_instruction_addr` treats frames without it as "adjust"; otherwise
  they are "auto". `true` → previous instruction, `false` → aligned address,
  "auto" → symbolic's heuristic. The IP register is consulted for frame 0 only.
* symbolic (`symbolic-common/src/heuristics.rs`, `InstructionInfo`):
  "auto" adjusts every frame except frame 0; frame 0 is adjusted too when the
  signal is SIGILL (4), SIGBUS (10) or SIGSEGV (11) *and* the IP register is
  known and differs from the frame's address (KSCrash dropped the signal
  handler frame, so frame 0 is a return address). The signal numbers are
  Darwin's: Linux's SIGBUS (7) is *not* in the set, as in symbolic.
* Alignment and instruction size come from symbolic's `CpuFamily` table (the
  one place that knows them): ppc64 aligns to 8, and riscv64 is an unknown
  family (no alignment, no IP register). The
  previous instruction is one instruction back (x86: 1 byte), two on MIPS.

Where Rust would wrap a `u64` below zero, we stop at 0: such an address lies
below every module, so it resolves to nothing either way.

The adjusted address is only for the lookup; responses keep the original
`instruction_addr`. Callers apply this to absolute addresses of modules with a
non-zero `image_addr` only (Symbolicator skips the heuristic otherwise).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from symbolicator.types import Arch

SIGILL = 4
SIGBUS = 10
SIGSEGV = 11
CRASH_SIGNALS = frozenset({SIGILL, SIGBUS, SIGSEGV})


class CpuFamily(enum.Enum):
    """symbolic's CPU families: the level at which the heuristic's facts differ."""

    UNKNOWN = "unknown"
    INTEL32 = "intel32"
    AMD64 = "amd64"
    ARM32 = "arm32"
    ARM64 = "arm64"
    ARM64_32 = "arm64_32"
    PPC32 = "ppc32"
    PPC64 = "ppc64"
    MIPS32 = "mips32"
    MIPS64 = "mips64"


_FAMILY: dict[Arch, CpuFamily] = {
    Arch.X86: CpuFamily.INTEL32,
    Arch.X86_64: CpuFamily.AMD64,
    Arch.X86_64H: CpuFamily.AMD64,
    Arch.ARM: CpuFamily.ARM32,
    Arch.ARMV6: CpuFamily.ARM32,
    Arch.ARMV7: CpuFamily.ARM32,
    Arch.ARMV7S: CpuFamily.ARM32,
    Arch.ARMV7K: CpuFamily.ARM32,
    Arch.ARM64: CpuFamily.ARM64,
    Arch.ARM64E: CpuFamily.ARM64,
    Arch.ARM64_32: CpuFamily.ARM64_32,
    Arch.PPC: CpuFamily.PPC32,
    Arch.PPC64: CpuFamily.PPC64,
    Arch.MIPS: CpuFamily.MIPS32,
    Arch.MIPS64: CpuFamily.MIPS64,
}

_ALIGNMENT: dict[CpuFamily, int] = {
    CpuFamily.ARM32: 2,
    CpuFamily.ARM64: 4,
    CpuFamily.ARM64_32: 4,
    CpuFamily.PPC32: 4,
    CpuFamily.PPC64: 8,
    CpuFamily.MIPS32: 4,
    CpuFamily.MIPS64: 4,
}

_IP_REGISTER: dict[CpuFamily, str] = {
    CpuFamily.INTEL32: "eip",
    CpuFamily.AMD64: "rip",
    CpuFamily.ARM32: "pc",
    CpuFamily.ARM64: "pc",
    CpuFamily.ARM64_32: "pc",
    CpuFamily.PPC32: "srr0",
    CpuFamily.PPC64: "srr0",
    CpuFamily.MIPS32: "pc",
    CpuFamily.MIPS64: "pc",
}


class Adjustment(enum.Enum):
    """Symbolicator's `AdjustInstructionAddr` for one frame."""

    YES = "yes"
    NO = "no"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class FrameAddr:
    """One frame as the heuristic sees it.

    `instruction_addr` is absolute (bytes); `adjust_instruction_addr` is the
    request field (None when absent); `arch` is the arch of the module the frame
    falls in, when known (Symbolicator uses the debug file's arch), else the
    thread's arch passed to `lookup_addresses` applies.
    """

    instruction_addr: int
    adjust_instruction_addr: bool | None = None
    arch: Arch | None = None


def cpu_family(arch: Arch) -> CpuFamily:
    return _FAMILY.get(arch, CpuFamily.UNKNOWN)


def instruction_alignment(arch: Arch) -> int | None:
    """Fixed instruction alignment in bytes, None for variable-length or unknown."""
    return _ALIGNMENT.get(cpu_family(arch))


def ip_register_name(arch: Arch) -> str | None:
    """The register holding the instruction pointer, as Breakpad/Symbolicator name it."""
    return _IP_REGISTER.get(cpu_family(arch))


def _step_back(arch: Arch) -> int:
    size = instruction_alignment(arch) or 1
    return 2 * size if cpu_family(arch) in (CpuFamily.MIPS32, CpuFamily.MIPS64) else size


_RULES: dict[Arch, tuple[int, int, str | None]] = {
    arch: (instruction_alignment(arch) or 1, _step_back(arch), ip_register_name(arch)) for arch in Arch
}
"""Per arch, worked out once: (alignment, bytes to step back, IP register) — frames are a hot path."""


def should_adjust_caller(addr: int, *, crashing_frame: bool, signal: int | None, ip_register: int | None) -> bool:
    """symbolic's `should_adjust_caller`: only frame 0 may hold the exact faulting address."""
    if not crashing_frame:
        return True
    return ip_register is not None and ip_register != addr and signal in CRASH_SIGNALS


def thread_default(frames: Sequence[FrameAddr]) -> Adjustment:
    """One explicit `adjust_instruction_addr` in a thread means the sender marks them all."""
    if any(f.adjust_instruction_addr is not None for f in frames):
        return Adjustment.YES
    return Adjustment.AUTO


def frame_adjustment(frame: FrameAddr, default: Adjustment) -> Adjustment:
    if frame.adjust_instruction_addr is None:
        return default
    return Adjustment.YES if frame.adjust_instruction_addr else Adjustment.NO


def parse_register(name: str, value: object) -> int:
    """A register value as sent on the wire: an int, or hex with or without `0x`; 64 bits at most.

    `value` is whatever the JSON held; anything else is a `ValueError` (request models make it
    their 422: engines carry no HTTP meaning).
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"register {name!r}: expected a hex string or an integer, got {value!r:.80}")
    if isinstance(value, int):
        if not 0 <= value < 1 << 64:
            raise ValueError(f"register {name!r}: value {value} outside 0..2^64-1")
        return value
    text = value.strip()
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    if not digits or len(digits) > 16 or not all(c in "0123456789abcdefABCDEF" for c in digits):
        raise ValueError(f"register {name!r}: invalid hex value {value!r}")
    return int(digits, 16)


def lookup_address(
    addr: int,
    arch: Arch,
    *,
    index: int,
    adjustment: Adjustment,
    signal: int | None,
    registers: Mapping[str, str | int],
) -> int:
    """The address to look up for the frame at `index` of its thread (0 = innermost)."""
    alignment, step, reg_name = _RULES[arch]
    aligned = addr - addr % alignment
    if adjustment is Adjustment.NO:
        return aligned
    if adjustment is Adjustment.AUTO and index == 0:
        ip_value: int | None = None
        if reg_name is not None and reg_name in registers:
            ip_value = parse_register(reg_name, registers[reg_name])
        if not should_adjust_caller(addr, crashing_frame=True, signal=signal, ip_register=ip_value):
            return aligned
    return max(aligned - step, 0)


def lookup_addresses(
    frames: Sequence[FrameAddr],
    arch: Arch,
    signal: int | None,
    registers: Mapping[str, str | int],
) -> list[int]:
    """Lookup addresses for one thread's frames, innermost first, in input order."""
    default = thread_default(frames)
    return [
        lookup_address(
            f.instruction_addr,
            f.arch if f.arch is not None else arch,
            index=i,
            adjustment=frame_adjustment(f, default),
            signal=signal,
            registers=registers,
        )
        for i, f in enumerate(frames)
    ]
