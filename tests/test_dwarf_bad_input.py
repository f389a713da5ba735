"""Broken debug files end in `MalformedObject` (or `UnsupportedFormat`), never a crash or a hang.

Inputs: real fixtures cut short or patched (section headers past the end, an
unknown DWARF form, lying Mach-O load commands, a fat header claiming 10⁶
slices), random byte flips in the DWARF sections, and DWARF written by hand
where `abstract_origin` references form a cycle or the DIE tree nests too deep.
"""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path

import pytest

from symbolicator.errors import FormatError, MalformedObject
from symbolicator.native.dwarf import read_dwarf
from symbolicator.native.symcache import SymCache
from symbolicator.native.symcache_build import build, write
from symbolicator.types import Arch

OUT = Path(__file__).parent / "fixtures" / "native" / "out"
ELF = OUT / "elf" / "c_gcc_O2_dwarf5"
MACHO = OUT / "macho" / "app_arm64.dSYM" / "Contents" / "Resources" / "DWARF" / "app_arm64"


def _build_bytes(tmp_path: Path, data: bytes, name: str = "obj") -> None:
    path = tmp_path / name
    path.write_bytes(data)
    build(path)


@pytest.mark.parametrize("cut", [4, 16, 63, 64, 200, 1000, 5000, -5000, -300, -1])
def test_truncated_elf_is_malformed(tmp_path: Path, cut: int) -> None:
    data = ELF.read_bytes()
    with pytest.raises(FormatError):
        _build_bytes(tmp_path, data[:cut])


def _elf_section_headers(data: bytes | bytearray) -> tuple[int, int, int]:
    e_shoff, = struct.unpack_from("<Q", data, 0x28)
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x3A)
    return e_shoff, e_shentsize, e_shnum


def test_section_header_table_past_the_end_is_malformed(tmp_path: Path) -> None:
    data = bytearray(ELF.read_bytes())
    struct.pack_into("<Q", data, 0x28, len(data) + 4096)
    with pytest.raises(FormatError):
        _build_bytes(tmp_path, bytes(data))


def test_section_pointing_past_the_end_is_malformed(tmp_path: Path) -> None:
    data = bytearray(ELF.read_bytes())
    shoff, entsize, count = _elf_section_headers(data)
    for i in range(1, count):
        at = shoff + i * entsize
        sh_type, = struct.unpack_from("<I", data, at + 4)
        if sh_type == 1:  # PROGBITS: move it 1 GB away
            struct.pack_into("<Q", data, at + 0x18, 1 << 30)
    with pytest.raises(MalformedObject):
        _build_bytes(tmp_path, bytes(data))


def _section(data: bytes | bytearray, wanted: str) -> tuple[int, int]:
    shoff, entsize, count = _elf_section_headers(data)
    shstrndx, = struct.unpack_from("<H", data, 0x3E)
    str_off, = struct.unpack_from("<Q", data, shoff + shstrndx * entsize + 0x18)
    for i in range(count):
        at = shoff + i * entsize
        name_off, = struct.unpack_from("<I", data, at)
        end = data.index(b"\0", str_off + name_off)
        if data[str_off + name_off:end].decode() == wanted:
            offset, size = struct.unpack_from("<QQ", data, at + 0x18)
            return offset, size
    raise KeyError(wanted)


def test_unknown_dwarf_form_is_malformed(tmp_path: Path) -> None:
    data = bytearray(ELF.read_bytes())
    offset, size = _section(data, ".debug_abbrev")
    # first abbreviation: code, tag, children, then (attribute, form) pairs; break the first form
    pos = offset
    for _ in range(3):
        while data[pos] & 0x80:
            pos += 1
        pos += 1
    while data[pos] & 0x80:
        pos += 1
    pos += 1
    data[pos] = 0x7E
    with pytest.raises(MalformedObject, match="form"):
        _build_bytes(tmp_path, bytes(data))


def _has_section(name: str, section: str) -> bool:
    try:
        _section((OUT / "elf" / name).read_bytes(), section)
        return True
    except (KeyError, OSError):
        return False


_FLIPS = [(name, section) for name in ("c_gcc_O2_dwarf5", "c_clang_O2_dwarf5", "cpp_gcc_O2_dwarf4")
          for section in (".debug_info", ".debug_line", ".debug_abbrev", ".debug_rnglists", ".debug_ranges",
                          ".debug_str_offsets", ".debug_addr", ".debug_line_str")]
_FLIPS += [("cpp_gcc_zlib", ".debug_info"), ("cpp_gcc_zstd", ".debug_info"), ("cpp_gcc_zlib_gnu", ".zdebug_info"),
           ("cpp_gcc_zstd", ".debug_line")]
_FLIPS = [(n, s) for n, s in _FLIPS if _has_section(n, s)]


@pytest.mark.parametrize("name, section", _FLIPS, ids=[f"{n}{s}" for n, s in _FLIPS])
def test_random_byte_flips_in_dwarf_never_crash_or_hang(tmp_path: Path, name: str, section: str) -> None:
    clean = (OUT / "elf" / name).read_bytes()
    offset, size = _section(clean, section)
    rng = random.Random(name + section)
    for round_ in range(25):
        data = bytearray(clean)
        for _ in range(rng.randint(1, 8)):
            data[offset + rng.randrange(size)] = rng.randrange(256)
        started = time.monotonic()
        try:
            _build_bytes(tmp_path, bytes(data), f"flip{round_}")
        except FormatError:
            pass
        assert time.monotonic() - started < 10


def test_macho_with_lying_load_commands_is_malformed(tmp_path: Path) -> None:
    data = bytearray(MACHO.read_bytes())
    struct.pack_into("<II", data, 16, 0x7FFF, 0x7FFFFFF0)  # ncmds, sizeofcmds
    with pytest.raises(FormatError):
        _build_bytes(tmp_path, bytes(data))


def test_macho_load_command_with_zero_size_is_malformed(tmp_path: Path) -> None:
    data = bytearray(MACHO.read_bytes())
    struct.pack_into("<I", data, 32 + 4, 0)  # first load command's cmdsize
    with pytest.raises(FormatError):
        _build_bytes(tmp_path, bytes(data))


@pytest.mark.parametrize("path", [MACHO, OUT / "macho" / "app_fat"], ids=["dsym", "fat"])
def test_random_byte_flips_in_macho_headers_never_crash(tmp_path: Path, path: Path) -> None:
    clean = path.read_bytes()
    rng = random.Random(path.name)
    for round_ in range(40):
        data = bytearray(clean)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(min(len(data), 4096))] = rng.randrange(256)
        target = tmp_path / f"flip{round_}"
        target.write_bytes(bytes(data))
        try:
            build(target, "arm64" if data[:4] == b"\xca\xfe\xba\xbe" else None)
        except FormatError:
            pass


def test_truncated_macho_is_malformed(tmp_path: Path) -> None:
    data = MACHO.read_bytes()
    for cut in (8, 40, 300, len(data) // 2):
        with pytest.raises(FormatError):
            _build_bytes(tmp_path, data[:cut], f"cut{cut}")


def test_compressed_section_claiming_a_huge_size_is_malformed(tmp_path: Path) -> None:
    data = bytearray((OUT / "elf" / "cpp_gcc_zlib").read_bytes())
    offset, _ = _section(data, ".debug_info")
    struct.pack_into("<Q", data, offset + 8, 1 << 40)  # Elf64_Chdr.ch_size
    with pytest.raises(MalformedObject, match="claims"):
        _build_bytes(tmp_path, bytes(data))


def test_fat_header_claiming_a_million_slices_is_malformed(tmp_path: Path) -> None:
    data = struct.pack(">II", 0xCAFEBABE, 1_000_000) + bytes(64)
    with pytest.raises(FormatError):
        _build_bytes(tmp_path, data)


# --- hand-written DWARF 4 -------------------------------------------------------------

def _uleb(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _abbrevs() -> bytes:
    def entry(code: int, tag: int, children: bool, attrs: list[tuple[int, int]]) -> bytes:
        body = _uleb(code) + _uleb(tag) + bytes([1 if children else 0])
        return body + b"".join(_uleb(a) + _uleb(f) for a, f in attrs) + b"\0\0"
    return b"".join([
        entry(1, 0x11, True, [(0x03, 0x08), (0x1B, 0x08), (0x10, 0x17), (0x11, 0x01), (0x12, 0x07)]),
        entry(2, 0x2E, True, [(0x31, 0x13), (0x11, 0x01), (0x12, 0x07)]),   # concrete subprogram → origin
        entry(3, 0x2E, False, [(0x31, 0x13)]),                            # abstract, origin only
        entry(4, 0x1D, False, [(0x31, 0x13), (0x11, 0x01), (0x12, 0x07), (0x58, 0x0B), (0x59, 0x0B)]),
        entry(5, 0x0B, True, []),                                         # lexical block
    ]) + b"\0"


def _line_program() -> bytes:
    header = bytes([1, 1, 1, 0xFB, 14, 13]) + bytes([0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1]) + b"\0" + b"a.c\0\0\0\0" + b"\0"
    program = b"\0\x09\x02" + struct.pack("<Q", 0x1000) + b"\x01" + b"\x02\x10" + b"\x01" + b"\x02\x10" + b"\0\x01\x01"
    body = struct.pack("<H", 4) + struct.pack("<I", len(header)) + header + program
    return struct.pack("<I", len(body)) + body


def _unit(dies: bytes) -> bytes:
    body = struct.pack("<H", 4) + struct.pack("<I", 0) + bytes([8]) + dies
    return struct.pack("<I", len(body)) + body


def _cu(children: bytes) -> bytes:
    return (_uleb(1) + b"a.c\0" + b"/src\0" + struct.pack("<I", 0) + struct.pack("<QQ", 0x1000, 0x20)
            + children + b"\0")


def test_cyclic_abstract_origins_terminate() -> None:
    head = 11
    # offsets inside the unit: CU DIE at 11, its fixed part is 1 + 4 + 5 + 4 + 16 = 30 bytes
    a_off = head + 30
    b_off = a_off + 5
    c_off = b_off + 5
    dies = (_uleb(3) + struct.pack("<I", b_off)            # A → B
            + _uleb(3) + struct.pack("<I", a_off)          # B → A
            + _uleb(2) + struct.pack("<I", a_off) + struct.pack("<QQ", 0x1000, 0x20)  # C: concrete, origin A
            + _uleb(4) + struct.pack("<I", b_off) + struct.pack("<QQ", 0x1008, 0x8) + bytes([1, 7])
            + b"\0")
    assert c_off == b_off + 5
    sections = {"debug_info": _unit(_cu(dies)), "debug_abbrev": _abbrevs(), "debug_line": _line_program()}
    data = read_dwarf(sections)
    assert data.nodes.count == 2
    cache = SymCache.from_bytes(write(data, [], Arch.X86_64))
    frames = cache.lookup(0x100A)
    assert [f.inlined for f in frames] == [True, False]
    assert frames[0].function is None and frames[1].line == 7 and frames[1].file == "/src/a.c"


def test_linker_tombstones_for_dropped_code_are_skipped() -> None:
    """lld writes -1 (and -2 in range lists) where gc'd code was; such code must not appear anywhere."""
    head = 11
    a_off = head + 30
    dies = (_uleb(3) + struct.pack("<I", a_off)                                   # abstract A (self-cycle)
            + _uleb(2) + struct.pack("<I", a_off) + struct.pack("<QQ", 0x1000, 0x20)
            + b"\0"
            + _uleb(2) + struct.pack("<I", a_off) + struct.pack("<QQ", (1 << 64) - 1, 0x40)  # dropped copy
            + b"\0"
            + b"\0")
    line = bytearray(_line_program())
    dead = b"\0\x09\x02" + struct.pack("<Q", (1 << 64) - 1) + b"\x01" + b"\x02\x40" + b"\0\x01\x01"
    line += dead
    struct.pack_into("<I", line, 0, len(line) - 4)
    sections = {"debug_info": _unit(_cu(dies)), "debug_abbrev": _abbrevs(), "debug_line": bytes(line)}
    data = read_dwarf(sections)
    step_addrs = [int(r.read(0, r.count)["a"].max()) for r in data.steps.runs]
    row_addrs = [int(r.read(0, r.count)["a"].max()) for r in data.lines.runs]
    assert max(step_addrs) <= 0x1020 and max(row_addrs) <= 0x1020
    cache = SymCache.from_bytes(write(data, [], Arch.X86_64))
    assert cache.lookup(0x1004)[0].line == 1 and cache.lookup(0x2000) == []


def test_absurdly_deep_die_tree_is_malformed() -> None:
    dies = _uleb(5) * 10_000 + b"\0" * 10_001
    sections = {"debug_info": _unit(_cu(dies)), "debug_abbrev": _abbrevs(), "debug_line": _line_program()}
    with pytest.raises(MalformedObject, match="deep"):
        read_dwarf(sections)


def test_unit_length_past_the_section_is_malformed() -> None:
    unit = bytearray(_unit(_cu(b"\0")))
    struct.pack_into("<I", unit, 0, 10_000)
    with pytest.raises(MalformedObject):
        read_dwarf({"debug_info": bytes(unit), "debug_abbrev": _abbrevs(), "debug_line": _line_program()})


def test_unknown_abbreviation_code_is_malformed() -> None:
    with pytest.raises(MalformedObject, match="abbreviation"):
        read_dwarf({"debug_info": _unit(_cu(_uleb(42))), "debug_abbrev": _abbrevs(), "debug_line": _line_program()})
