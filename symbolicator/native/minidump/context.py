"""CPU contexts of a minidump thread or exception: raw register values by name.

Layouts are Breakpad's / Crashpad's (`minidump_cpu_amd64.h`, `minidump_cpu_arm64.h`), which are
Windows' CONTEXT structures: AMD64 keeps rax..r15 at 0x78 and rip at 0xF8; ARM64 (the
Windows-compatible layout Crashpad and current Breakpad write) keeps x0..x30 from offset 8,
then sp and pc. Other CPUs are read as "no registers": their threads are listed, not walked.
"""

from __future__ import annotations

import struct

from symbolicator.errors import MalformedMinidump
from symbolicator.types import Arch

AMD64_CONTEXT_SIZE = 0x4D0
ARM64_CONTEXT_SIZE = 0x390
AMD64_REGISTERS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                   "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip")
ARM64_REGISTERS = tuple(f"x{i}" for i in range(29)) + ("fp", "lr", "sp", "pc")
# The instruction and stack pointer of each architecture, by register name.
PC_REGISTER = {Arch.X86_64: "rip", Arch.ARM64: "pc"}
SP_REGISTER = {Arch.X86_64: "rsp", Arch.ARM64: "sp"}


def read_context(data: bytes | memoryview, arch: Arch) -> dict[str, int]:
    """Registers of one context record; {} for an architecture this reader does not walk."""
    if arch == Arch.X86_64:
        if len(data) < AMD64_CONTEXT_SIZE:
            raise MalformedMinidump(f"an AMD64 thread context has {len(data)} bytes, expected {AMD64_CONTEXT_SIZE}")
        values = struct.unpack_from("<17Q", data, 0x78)
        return dict(zip(AMD64_REGISTERS, values, strict=False))
    if arch == Arch.ARM64:
        if len(data) < 8 + 33 * 8:
            raise MalformedMinidump(f"an ARM64 thread context has {len(data)} bytes, expected {ARM64_CONTEXT_SIZE}")
        values = struct.unpack_from("<33Q", data, 8)
        return dict(zip(ARM64_REGISTERS, values, strict=False))
    return {}
