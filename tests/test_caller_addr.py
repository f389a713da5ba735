"""Caller-address adjustment, checked against Symbolicator's rules worked by hand.

Each expectation is computed in the comment beside it from reference §1.4 and
symbolic's `InstructionInfo` (align to the instruction size, then step back one
instruction; MIPS two), never from this module's output.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from symbolicator.native.caller_addr import (
    Adjustment,
    FrameAddr,
    instruction_alignment,
    ip_register_name,
    lookup_address,
    lookup_addresses,
    thread_default,
)
from symbolicator.types import Arch


def previous_address(addr: int, arch: Arch) -> int:
    """What production looks up for a caller frame: inside the instruction before `addr`."""
    return lookup_address(addr, arch, index=1, adjustment=Adjustment.YES, signal=None, registers={})


def aligned_address(addr: int, arch: Arch) -> int:
    """What production looks up for a frame it must not adjust: the start of its instruction."""
    return lookup_address(addr, arch, index=1, adjustment=Adjustment.NO, signal=None, registers={})


def addrs(*values: int) -> list[FrameAddr]:
    return [FrameAddr(v) for v in values]


class TestArchFacts:
    @pytest.mark.parametrize(
        ("arch", "alignment", "ip"),
        [
            (Arch.X86, None, "eip"),
            (Arch.X86_64, None, "rip"),
            (Arch.X86_64H, None, "rip"),
            (Arch.ARM, 2, "pc"),
            (Arch.ARMV7, 2, "pc"),
            (Arch.ARM64, 4, "pc"),
            (Arch.ARM64E, 4, "pc"),
            (Arch.ARM64_32, 4, "pc"),
            (Arch.PPC, 4, "srr0"),
            (Arch.PPC64, 8, "srr0"),
            (Arch.MIPS, 4, "pc"),
            (Arch.MIPS64, 4, "pc"),
            (Arch.RISCV64, None, None),
            (Arch.UNKNOWN, None, None),
        ],
    )
    def test_symbolic_cpu_family_table(self, arch: Arch, alignment: int | None, ip: str | None) -> None:
        assert instruction_alignment(arch) == alignment
        assert ip_register_name(arch) == ip


class TestPreviousAddress:
    def test_x86_steps_back_one_byte(self) -> None:
        assert previous_address(0x1337, Arch.X86) == 0x1336
        assert previous_address(0x7FFF61BC6C2A, Arch.X86_64) == 0x7FFF61BC6C29

    def test_arm64_aligns_then_steps_back_four(self) -> None:
        # 0x1337 → aligned 0x1334 → minus 4 = 0x1330 (symbolic's own doc example)
        assert previous_address(0x1337, Arch.ARM64) == 0x1330
        assert previous_address(0x1000081C4, Arch.ARM64) == 0x1000081C0
        assert previous_address(0x1000081C4, Arch.ARM64E) == 0x1000081C0

    def test_arm_strips_thumb_bit_then_steps_back_two(self) -> None:
        # thumb return address 0x8001 → aligned 0x8000 → minus 2 = 0x7ffe
        assert aligned_address(0x8001, Arch.ARMV7) == 0x8000
        assert previous_address(0x8001, Arch.ARMV7) == 0x7FFE
        assert previous_address(0x8000, Arch.ARM) == 0x7FFE

    def test_mips_steps_back_two_instructions(self) -> None:
        # 0x400123 → aligned 0x400120 → minus 2×4 = 0x400118
        assert previous_address(0x400123, Arch.MIPS) == 0x400118
        assert previous_address(0x400120, Arch.MIPS64) == 0x400118

    def test_ppc64_uses_symbolics_eight_byte_alignment(self) -> None:
        # 0x100c → aligned 0x1008 → minus 8 = 0x1000
        assert previous_address(0x100C, Arch.PPC64) == 0x1000
        # ppc (32) aligns to 4: 0x100c → 0x100c - 4 = 0x1008
        assert previous_address(0x100C, Arch.PPC) == 0x1008

    def test_unknown_arch_steps_back_one_byte_without_alignment(self) -> None:
        assert previous_address(0x1003, Arch.UNKNOWN) == 0x1002
        assert previous_address(0x1003, Arch.RISCV64) == 0x1002

    @pytest.mark.parametrize("arch", list(Arch))
    def test_near_zero_does_not_underflow(self, arch: Arch) -> None:
        for addr in range(0, 9):
            assert previous_address(addr, arch) >= 0
        assert previous_address(0, arch) == 0

    def test_arm64_small_values(self) -> None:
        # 3 → aligned 0 → would be -4: stops at 0; 5 → aligned 4 → 0
        assert previous_address(3, Arch.ARM64) == 0
        assert previous_address(5, Arch.ARM64) == 0
        assert previous_address(9, Arch.ARM64) == 4

    def test_x86_has_no_alignment(self) -> None:
        assert aligned_address(0x1337, Arch.X86_64) == 0x1337


class TestThreadDefault:
    def test_no_flag_means_auto(self) -> None:
        assert thread_default(addrs(1, 2)) is Adjustment.AUTO

    def test_any_flag_means_yes(self) -> None:
        frames = [FrameAddr(1), FrameAddr(2, adjust_instruction_addr=False)]
        assert thread_default(frames) is Adjustment.YES


class TestAuto:
    def test_frame_zero_kept_others_adjusted_arm64(self) -> None:
        # frame 0: aligned only (0x1000081c4 is already aligned); frame 1: 0x100007f10 - 4
        got = lookup_addresses(addrs(0x1000081C4, 0x100007F10), Arch.ARM64, None, {})
        assert got == [0x1000081C4, 0x100007F0C]

    def test_frame_zero_aligned_even_when_not_adjusted(self) -> None:
        # symbolic's example: crashing frame 0x1337 on arm64 → 0x1334
        assert lookup_addresses(addrs(0x1337), Arch.ARM64, None, {}) == [0x1334]

    def test_x86_64_frames(self) -> None:
        got = lookup_addresses(addrs(0x7FFF61BC6C2A, 0x7FFF349F505E, 0x108B7092B), Arch.X86_64, 11, {})
        assert got == [0x7FFF61BC6C2A, 0x7FFF349F505D, 0x108B7092A]

    @pytest.mark.parametrize("signal", [4, 10, 11])
    def test_crash_signal_with_different_ip_adjusts_frame_zero(self, signal: int) -> None:
        # KSCrash dropped the handler frame: frame 0 is a return address → 0x2008 - 4
        got = lookup_addresses(addrs(0x2008, 0x3008), Arch.ARM64, signal, {"pc": "0x4242"})
        assert got == [0x2004, 0x3004]

    @pytest.mark.parametrize("signal", [None, 5, 6, 7, 8])
    def test_other_signals_keep_frame_zero(self, signal: int | None) -> None:
        # 7 is SIGBUS on Linux, but symbolic only knows Darwin's 10
        got = lookup_addresses(addrs(0x2008, 0x3008), Arch.ARM64, signal, {"pc": "0x4242"})
        assert got == [0x2008, 0x3004]

    def test_crash_signal_with_matching_ip_keeps_frame_zero(self) -> None:
        got = lookup_addresses(addrs(0x2008), Arch.ARM64, 11, {"pc": "0x2008"})
        assert got == [0x2008]

    def test_crash_signal_without_ip_register_keeps_frame_zero(self) -> None:
        # registers of the wrong arch (rip on arm64) do not count
        got = lookup_addresses(addrs(0x2008), Arch.ARM64, 11, {"rip": "0x4242", "lr": "0x9"})
        assert got == [0x2008]

    def test_ip_register_by_arch(self) -> None:
        # x86_64 reads rip, x86 reads eip
        assert lookup_addresses(addrs(0x1005), Arch.X86_64, 11, {"rip": "0x9999"}) == [0x1004]
        assert lookup_addresses(addrs(0x1005), Arch.X86_64, 11, {"eip": "0x9999"}) == [0x1005]
        assert lookup_addresses(addrs(0x1005), Arch.X86, 4, {"eip": 0x9999}) == [0x1004]

    def test_ip_register_accepts_hex_without_prefix_and_ints(self) -> None:
        assert lookup_addresses(addrs(0x2008), Arch.ARM64, 11, {"pc": "2008"}) == [0x2008]
        assert lookup_addresses(addrs(0x2008), Arch.ARM64, 11, {"pc": 0x2008}) == [0x2008]

    def test_unknown_arch_keeps_frame_zero_whatever_the_registers(self) -> None:
        # no IP register name → no heuristic on frame 0; frame 1: -1 byte
        got = lookup_addresses(addrs(0x2008, 0x3008), Arch.UNKNOWN, 11, {"pc": "0x1"})
        assert got == [0x2008, 0x3007]

    def test_thumb_frames(self) -> None:
        # frame 0: aligned 0x8000; frame 1: 0x9001 → 0x9000 - 2 = 0x8ffe
        got = lookup_addresses(addrs(0x8001, 0x9001), Arch.ARMV7, None, {})
        assert got == [0x8000, 0x8FFE]


class TestExplicit:
    def test_any_flag_makes_unflagged_frames_adjusted_including_frame_zero(self) -> None:
        frames = [FrameAddr(0x2008), FrameAddr(0x3008, adjust_instruction_addr=False), FrameAddr(0x400A)]
        # frame 0 unflagged → YES: 0x2004; frame 1 NO → aligned 0x3008; frame 2 YES → 0x4008 - 4
        assert lookup_addresses(frames, Arch.ARM64, None, {}) == [0x2004, 0x3008, 0x4004]

    def test_false_only_aligns(self) -> None:
        frames = [FrameAddr(0x2009, adjust_instruction_addr=False), FrameAddr(0x300B, adjust_instruction_addr=False)]
        assert lookup_addresses(frames, Arch.ARM64, 11, {"pc": "0x1"}) == [0x2008, 0x3008]

    def test_true_on_frame_zero(self) -> None:
        frames = [FrameAddr(0x1005, adjust_instruction_addr=True)]
        assert lookup_addresses(frames, Arch.X86_64, None, {}) == [0x1004]

    def test_flags_ignore_signal_and_registers(self) -> None:
        frames = [FrameAddr(0x2008, adjust_instruction_addr=False)]
        assert lookup_addresses(frames, Arch.ARM64, 11, {"pc": "0x9"}) == [0x2008]


class TestPerFrameArch:
    def test_module_arch_overrides_thread_arch(self) -> None:
        frames = [FrameAddr(0x2008), FrameAddr(0x3008, arch=Arch.X86_64), FrameAddr(0x4008)]
        # frame 1 uses x86_64 (-1); frame 2 the thread's arm64 (-4)
        assert lookup_addresses(frames, Arch.ARM64, None, {}) == [0x2008, 0x3007, 0x4004]


class TestRegisters:
    @pytest.mark.parametrize("bad", ["0x", "zz", "0x12g", "", True, -1, "0x" + "f" * 17])
    def test_bad_ip_register_is_a_value_error(self, bad: object) -> None:
        """A value error from the engine (no HTTP meaning); the request model makes it the 422."""
        with pytest.raises(ValueError, match="pc"):
            lookup_addresses(addrs(0x2008), Arch.ARM64, 11, {"pc": bad})  # type: ignore[dict-item]

    def test_bad_register_only_matters_where_read(self) -> None:
        # frame 0 of another arch, or frames > 0, never read it
        assert lookup_addresses(addrs(0x2008), Arch.X86_64, 11, {"pc": "zz"}) == [0x2008]


@given(
    st.lists(st.tuples(st.integers(0, 2**64 - 1), st.sampled_from([None, True, False])), max_size=20),
    st.sampled_from(list(Arch)),
    st.sampled_from([None, 4, 6, 10, 11]),
    st.integers(0, 2**64 - 1),
)
def test_properties(frames: list[tuple[int, bool | None]], arch: Arch, signal: int | None, pc: int) -> None:
    """Never above the original, never below 0, at most two instructions back, aligned when the arch has alignment."""
    fs = [FrameAddr(a, adj) for a, adj in frames]
    out = lookup_addresses(fs, arch, signal, {"pc": hex(pc), "rip": hex(pc), "eip": hex(pc)})
    assert len(out) == len(fs)
    alignment = instruction_alignment(arch) or 1
    for f, got in zip(fs, out):
        assert 0 <= got <= f.instruction_addr
        assert f.instruction_addr - got < 3 * alignment
        assert got % alignment == 0
