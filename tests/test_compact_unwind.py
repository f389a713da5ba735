"""Mach-O compact unwind (`__unwind_info`) in the CFI cache.

Fixtures (`tests/fixtures/compact_unwind/`, rebuilt by its `build.sh`): dylibs clang builds for
`x86_64-apple-macos12` and `arm64-apple-ios15.0` and ld64.lld 14 links (RBP / arm64 frames with
saved registers, frameless leaves, x86_64 STACK_IMMD and STACK_IND, a hand-written function in
DWARF mode, 747 frameless functions that need a regular and a compressed page), and a real
Apple-linked universal binary from a PyPI wheel. Truth, derived here from independent tools:

* the entries (function start, encoding) as `llvm-objdump --unwind-info` lists them;
* each function's rules as PyPI `symbolic` (Symbolicator's own library) writes them as Breakpad
  `STACK CFI INIT` records, except STACK_IND, where symbolic does not read the `sub rsp`
  immediate (it writes `.cfa: $rsp 8 +`): those against `llvm-objdump -d` of the prologue.
"""

from __future__ import annotations

import io
import re
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbolicator.errors import MalformedObject, UnsupportedFormat
from symbolicator.native.cfi import compact_unwind
from symbolicator.native.cfi.build import build
from symbolicator.native.cfi.cache import CfiCache
from symbolicator.native.cfi.rules import RuleKind
from symbolicator.native.dwarf.macho import open_slice
from symbolicator.types import Arch

OUT = Path(__file__).resolve().parent / "fixtures/compact_unwind/out"
CASES = [("libcu_x86_64.dylib", Arch.X86_64), ("libcu_arm64.dylib", Arch.ARM64),
         ("libcu_nofp_x86_64.dylib", Arch.X86_64), ("libcu_nofp_arm64.dylib", Arch.ARM64),
         ("libmany_x86_64.dylib", Arch.X86_64), ("markupsafe_universal2.so", Arch.X86_64),
         ("markupsafe_universal2.so", Arch.ARM64)]
IDS = [f"{name}-{arch.value}" for name, arch in CASES]
_ENTRY = re.compile(r"^\s+\[\d+\]: function offset=0x([0-9a-f]+), encoding(\[\d+\])?=0x([0-9a-f]+)$")
REGISTERS = {"$rsp": 7, "$rbp": 6, "$rbx": 3, "$r12": 12, "$r13": 13, "$r14": 14, "$r15": 15,
             "sp": 31, "x29": 29, "x30": 30, **{f"x{i}": i for i in range(19, 29)}}
RETURN_ADDRESS = {Arch.X86_64: 16, Arch.ARM64: 30}


def objdump(*args: str) -> str:
    return subprocess.run(["llvm-objdump", "--macho", *args], check=True, capture_output=True, text=True).stdout


def objdump_entries(path: Path, arch: Arch) -> tuple[list[tuple[int, int]], set[str]]:
    """(function offset, encoding) of every second-level entry, and the page kinds seen."""
    entries, kinds = [], set()
    for line in objdump(f"--arch={arch.value}", "--unwind-info", str(path)).splitlines():
        m = _ENTRY.match(line)
        if m:
            entries.append((int(m.group(1), 16), int(m.group(3), 16)))
            kinds.add("compressed" if m.group(2) else "regular")
    return entries, kinds


def unwind_info(path: Path, arch: Arch) -> tuple[bytes, int]:
    image, _ = open_slice(path, arch)
    sl = image.slice
    s = next(s for s in sl.sections if s.sectname == "__unwind_info")
    return bytes(image.data[sl.offset + s.offset:sl.offset + s.offset + s.size]), sl.image_vmaddr


def symbolic_records(path: Path, arch: Arch) -> list[str]:
    from symbolic.cfi import CfiCache as SymbolicCfi
    from symbolic.debuginfo import Archive

    obj = next(o for o in Archive.open(str(path)).iter_objects() if o.arch == arch.value)
    out = io.BytesIO()
    SymbolicCfi.from_object(obj).write_to(out)
    return [line for line in out.getvalue().decode().splitlines() if line.startswith("STACK CFI INIT")]


def parse_record(line: str, arch: Arch) -> tuple[int, tuple[int, int], dict[int, int | str]]:
    """A `STACK CFI INIT addr size .cfa: R N + X: .cfa -M + ^ …` record: (address, CFA,
    {register: CFA offset it is saved at, or "lr" for a return address left in x30})."""
    parts = line.split()
    rules: dict[str, list[str]] = {}
    name = ""
    for token in parts[5:]:
        if token.endswith(":"):
            name = token[:-1]
            rules[name] = []
        else:
            rules[name].append(token)
    cfa = rules.pop(".cfa")
    saved: dict[int, int | str] = {}
    for reg, expr in rules.items():
        if reg.startswith("d"):
            continue  # d8–d15 (arm64 FRAME): floating-point registers, which the walker does not track
        number = RETURN_ADDRESS[arch] if reg == ".ra" else REGISTERS[reg]
        saved[number] = int(expr[1]) if expr[0] == ".cfa" else "lr" if expr == ["x30", "0", "+"] else "?"
    return int(parts[3], 16), (REGISTERS[cfa[0]], int(cfa[1])), saved


def ours(cache: CfiCache, addr: int, arch: Arch) -> tuple[tuple[int, int], dict[int, int | str]] | None:
    rules = cache.lookup(addr)
    if rules is None:
        return None
    saved: dict[int, int | str] = {reg: off for reg, kind, off in rules.rules if kind == RuleKind.OFFSET}
    if arch == Arch.ARM64 and rules.rule(30) is None:
        saved[30] = "lr"  # the walker's reading of "no rule for the return address" on arm64
    return (rules.cfa_reg, rules.cfa_offset), saved


@pytest.mark.parametrize(("name", "arch"), CASES, ids=IDS)
def test_entries_equal_llvm_objdump(name: str, arch: Arch) -> None:
    data, _vmaddr = unwind_info(OUT / name, arch)
    expected, _kinds = objdump_entries(OUT / name, arch)
    got = [(e.start, e.encoding) for e in compact_unwind.entries(data)]
    end = max(int(m, 16) for m in re.findall(r"function offset=0x([0-9a-f]+), 2nd level page offset",
                                               objdump(f"--arch={arch.value}", "--unwind-info", str(OUT / name))))
    # a function runs to the next entry; the last index entry marks the end of the last one
    assert got == [e for e, nxt in zip(expected, [*expected[1:], (end, 0)], strict=True) if e[0] < nxt[0]]
    assert len(got) >= 3


def test_both_page_kinds_and_every_mode_are_covered() -> None:
    kinds = objdump_entries(OUT / "libmany_x86_64.dylib", Arch.X86_64)[1]
    assert kinds == {"regular", "compressed"}
    modes = {(arch, enc & compact_unwind.MODE_MASK) for name, arch in CASES
             for _start, enc in objdump_entries(OUT / name, arch)[0]}
    assert {(Arch.X86_64, m) for m in (compact_unwind.X86_RBP_FRAME, compact_unwind.X86_STACK_IMMD,
                                        compact_unwind.X86_STACK_IND)} <= modes
    assert {(Arch.ARM64, m) for m in (compact_unwind.ARM64_FRAME, compact_unwind.ARM64_FRAMELESS,
                                       compact_unwind.ARM64_DWARF)} <= modes


@pytest.mark.parametrize(("name", "arch"), CASES, ids=IDS)
def test_rules_equal_symbolics(name: str, arch: Arch) -> None:
    data, meta = build(OUT / name, arch)
    cache = CfiCache(data)
    assert meta["arch"] == arch.value and "__unwind_info" in meta["sources"]
    encodings = dict(objdump_entries(OUT / name, arch)[0])
    checked = 0
    for line in symbolic_records(OUT / name, arch):
        addr, cfa, saved = parse_record(line, arch)
        if arch == Arch.X86_64 and encodings[addr - meta["image_vmaddr"]] & compact_unwind.MODE_MASK == \
                compact_unwind.X86_STACK_IND:
            continue  # symbolic does not read the immediate (the next test)
        assert ours(cache, addr, arch) == (cfa, saved), line
        last = addr + int(line.split()[4], 16) - 1
        assert ours(cache, last, arch) == (cfa, saved), line  # the rule holds to the function's end
        checked += 1
    assert checked >= 2  # libcu_nofp_arm64: two leaves, the rest in DWARF mode


def prologue(path: Path, start: int) -> tuple[list[str], int]:
    """The registers pushed before `subq $N, %rsp`, and N, from llvm-objdump's disassembly."""
    text = subprocess.run(["llvm-objdump", "-d", f"--start-address={start:#x}", f"--stop-address={start + 64:#x}",
                           str(path)], check=True, capture_output=True, text=True).stdout
    pushes = []
    for line in text.splitlines():
        if m := re.search(r"\tpushq\t%(\w+)", line):
            pushes.append(m.group(1))
        elif m := re.search(r"\tsubq\t\$(\d+), %rsp", line):
            return pushes, int(m.group(1))
    raise AssertionError(f"no subq in the prologue at {start:#x}")


def test_stack_ind_equals_the_disassembly() -> None:
    """STACK_IND: the frame size is the `sub rsp` immediate of the function (read from the image)
    plus the pushes; each pushed register sits where the disassembled prologue put it."""
    checked = 0
    for name in ("libcu_nofp_x86_64.dylib", "libmany_x86_64.dylib"):
        cache = CfiCache(build(OUT / name)[0])
        for start, enc in objdump_entries(OUT / name, Arch.X86_64)[0]:
            if enc & compact_unwind.MODE_MASK != compact_unwind.X86_STACK_IND:
                continue
            pushes, size = prologue(OUT / name, start)
            want = {16: -8, **{REGISTERS[f"${reg}"]: -16 - 8 * i for i, reg in enumerate(pushes)}}
            assert ours(cache, start, Arch.X86_64) == ((7, 8 + 8 * len(pushes) + size), want), hex(start)
            checked += 1
    assert checked >= 5


def test_dwarf_mode_without_a_usable_fde_has_no_rows() -> None:
    """ld64.lld 14 writes DWARF-mode entries with FDE offset 0 (a CIE) and leaves `__eh_frame`
    unrelocated (llvm-dwarfdump shows FDEs at the section's own addresses): the hand-written
    `_odd_cfa` gets no rows, as in symbolic, rather than rows from a wrong FDE."""
    path = OUT / "libcu_arm64.dylib"
    start = int(objdump("--arch=arm64", "-t", str(path)).split("_odd_cfa")[0].splitlines()[-1].split()[0], 16)
    assert (start, compact_unwind.ARM64_DWARF) in objdump_entries(path, Arch.ARM64)[0]
    cache = CfiCache(build(path)[0])
    assert cache.lookup(start) is None and cache.lookup(start - 4) is not None
    assert not any(parse_record(line, Arch.ARM64)[0] == start for line in symbolic_records(path, Arch.ARM64))


def test_a_universal_binary_needs_its_arch() -> None:
    with pytest.raises(UnsupportedFormat):
        build(OUT / "markupsafe_universal2.so")
    x86, arm = build(OUT / "markupsafe_universal2.so", Arch.X86_64), build(OUT / "markupsafe_universal2.so", Arch.ARM64)
    assert (x86[1]["arch"], arm[1]["arch"]) == ("x86_64", "arm64") and x86[0] != arm[0]


def test_hostile_sections_give_typed_errors() -> None:
    data, _ = unwind_info(OUT / "libmany_x86_64.dylib", Arch.X86_64)
    for cut in list(range(0, 64)) + list(range(64, len(data), 97)):
        try:
            list(compact_unwind.entries(data[:cut]))
        except MalformedObject:
            pass
    bad = bytearray(data)
    struct.pack_into("<I", bad, 0, 2)
    with pytest.raises(MalformedObject, match="version"):
        list(compact_unwind.entries(bytes(bad)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hypothesis_smoke_edited_unwind_info(data: Any) -> None:
    """Words of a real `__unwind_info` replaced by edge values, encodings included: decoding
    gives rows or MalformedObject, nothing else."""
    name, arch = data.draw(st.sampled_from(CASES))
    section, vmaddr = unwind_info(OUT / name, arch)
    edited = bytearray(section)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(edited) // 4 - 1)) * 4
        value = data.draw(st.sampled_from([0, 1, 2, 3, 0xFFFF, 0xFFFFFFFF, 0x03FFFFFF, 0x04000000, 0x02FF0000,
                                           0x03FF0000, 0x01FF7FFF, 0x02001FFF, 0x0400FFFF, len(edited)]))
        struct.pack_into("<I", edited, at, value)
    try:
        list(compact_unwind.fdes(bytes(edited), arch, vmaddr, lambda _addr: data.draw(
            st.one_of(st.none(), st.integers(0, 0xFFFFFFFF))), dict))
    except MalformedObject:
        pass
