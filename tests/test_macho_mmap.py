"""Mach-O through a memory map: the `struct` parse agrees with LLVM, and a multi-GB dSYM stays cheap.

The sparse files below are real dSYMs with a 3 GiB hole: once with the `__DWARF` sections moved
past it (every section offset patched), once as a universal file whose only slice starts at
3 GiB. Reading either whole would cost 3 GiB; the builder runs in a child process so its peak
RSS is its own. Hand-built 32-bit and big-endian objects cover the `nlist` layouts no fixture
has, and lying section or symbol-table offsets must end in `MalformedObject`.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from symbolicator.errors import MalformedObject
from symbolicator.native.dwarf.macho import dsym_payload, macho_dwarf_sections, open_slice
from symbolicator.native.macho_headers import iter_nlist, read_slices, symbol_name
from symbolicator.native.symcache import SymCache
from symbolicator.native.symcache_build import build
from symbolicator.native.symtab import Symbol, macho_symbols
from symbolicator.types import Arch

MACHO = Path(__file__).parent / "fixtures" / "native" / "out" / "macho"
DSYM = dsym_payload(MACHO / "app_arm64.dSYM")
LLVM = Path("/usr/lib/llvm-14/bin")
LLVM_OBJDUMP = shutil.which("llvm-objdump") or str(LLVM / "llvm-objdump")
LLVM_NM = shutil.which("llvm-nm") or str(LLVM / "llvm-nm")
GAP = 3 << 30
MAX_RSS_BYTES = 300 << 20
TEXT = (0x1_0000_4000, 0x1_0000_44BC)  # __TEXT,__text of app_arm64

_OBJECTS = [MACHO / "app_arm64", MACHO / "app_x86_64", MACHO / "app_fat", MACHO / "libdylib_arm64.dylib",
            DSYM, dsym_payload(MACHO / "app_fat.dSYM"), dsym_payload(MACHO / "libdylib_arm64.dylib.dSYM")]


def _slices(path: Path) -> list[tuple[Arch, str]]:
    with open(path, "rb") as f:
        return [(s.arch, f"--arch={s.arch.value}") for s in read_slices(f, path.stat().st_size)]


def _objdump_sections(path: Path, arch_flag: str) -> tuple[list[tuple[str, str, int, int, int]], list[int]]:
    out = subprocess.run([LLVM_OBJDUMP, "--macho", "--private-headers", arch_flag, str(path)],
                         check=True, capture_output=True, text=True).stdout
    sections = [(m[1], m[0], int(m[2], 16), int(m[3], 16), int(m[4]))
                for m in re.findall(r"sectname (\S+)\n\s+segname (\S+)\n\s+addr (0x[0-9a-f]+)\n\s+size (0x[0-9a-f]+)"
                                    r"\n\s+offset (\d+)", out)]
    symtab = [int(v) for v in re.findall(r"symoff (\d+)\n\s+nsyms (\d+)\n\s+stroff (\d+)\n\s+strsize (\d+)", out)[0]]
    return sections, symtab


@pytest.mark.parametrize("path", _OBJECTS, ids=[p.name + ("-dsym" if "dSYM" in str(p) else "") for p in _OBJECTS])
def test_sections_and_symtab_agree_with_llvm_objdump(path: Path) -> None:
    for arch, flag in _slices(path):
        image, found = open_slice(path, arch)
        assert found == arch
        sections, symtab = _objdump_sections(path, flag)
        assert [(s.segname, s.sectname, s.addr, s.size, s.offset) for s in image.slice.sections] == sections
        assert image.slice.symtab is not None
        sym = image.slice.symtab
        assert [sym.symoff, sym.nsyms, sym.stroff, sym.strsize] == symtab


@pytest.mark.parametrize("path", _OBJECTS, ids=[p.name + ("-dsym" if "dSYM" in str(p) else "") for p in _OBJECTS])
def test_defined_nlist_entries_agree_with_llvm_nm(path: Path) -> None:
    for arch, flag in _slices(path):
        image, _ = open_slice(path, arch)
        ours = [(value, symbol_name(image.data, image.slice, strx)) for strx, n_type, _s, _d, value
                in iter_nlist(image.data, image.slice) if not n_type & 0xE0 and n_type & 0x0E == 0x0E]
        out = subprocess.run([LLVM_NM, "-p", "--defined-only", flag, str(path)], check=True, capture_output=True,
                             text=True).stdout
        theirs = [(int(line.split()[0], 16), line.split(maxsplit=2)[2]) for line in out.splitlines()
                  if line.strip() and line.split()[1] not in ("A", "a")]
        assert ours == theirs and ours


def _walk(data: bytes | bytearray) -> list[tuple[int, int, int]]:
    """(position, cmd, cmdsize) of each load command of a thin 64-bit little-endian Mach-O."""
    ncmds, = struct.unpack_from("<I", data, 16)
    out, pos = [], 32
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", data, pos)
        out.append((pos, cmd, size))
        pos += size
    return out


def _dwarf_section_headers(data: bytes | bytearray) -> tuple[int, dict[str, int]]:
    """Position of the `__DWARF` segment command and of each of its section headers, by name."""
    for pos, cmd, _size in _walk(data):
        if cmd == 0x19 and data[pos + 8:pos + 24].rstrip(b"\0") == b"__DWARF":
            nsects, = struct.unpack_from("<I", data, pos + 64)
            heads = {data[pos + 72 + 80 * k:pos + 88 + 80 * k].rstrip(b"\0").decode(): pos + 72 + 80 * k
                     for k in range(nsects)}
            return pos, heads
    raise AssertionError("no __DWARF segment")


def _sparse_thin(dest: Path) -> None:
    """The dSYM with everything from the `__DWARF` segment on moved `GAP` bytes later."""
    data = bytearray(DSYM.read_bytes())
    seg, heads = _dwarf_section_headers(data)
    fileoff, = struct.unpack_from("<Q", data, seg + 40)
    assert fileoff + struct.unpack_from("<Q", data, seg + 48)[0] == len(data)
    struct.pack_into("<Q", data, seg + 40, fileoff + GAP)
    for head in heads.values():
        offset, = struct.unpack_from("<I", data, head + 48)
        struct.pack_into("<I", data, head + 48, offset + GAP)
    with open(dest, "wb") as f:
        f.write(data[:fileoff])
        f.seek(fileoff + GAP)
        f.write(data[fileoff:])


def _sparse_fat(dest: Path) -> None:
    """A universal file whose only (arm64) slice is the dSYM, placed at `GAP`."""
    data = DSYM.read_bytes()
    with open(dest, "wb") as f:
        f.write(struct.pack(">II", 0xCAFEBABE, 1) + struct.pack(">iiIII", 0x0100000C, 0, GAP, len(data), 14))
        f.seek(GAP)
        f.write(data)


_CHILD = """
import sys
from symbolicator.native.symcache_build import build_to_file
build_to_file(sys.argv[1], sys.argv[2], sys.argv[3] or None)
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(int(hwm.split()[1]) * 1024)
"""


def _build_in_child(source: Path, out: Path, arch: str | None) -> int:
    """Peak RSS in bytes of a fresh interpreter that builds the symcache of `source`.

    `VmHWM`, not `ru_maxrss`: Linux keeps the latter across `execve`, so a child of a big
    pytest process would report pytest's size.
    """
    run = subprocess.run([sys.executable, "-c", _CHILD, str(source), str(out), arch or ""],
                         check=True, capture_output=True, text=True)
    return int(run.stdout.split()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("make, arch", [(_sparse_thin, None), (_sparse_fat, None), (_sparse_fat, "arm64")],
                         ids=["dwarf-past-3GiB", "fat-slice-at-3GiB", "fat-slice-at-3GiB-arm64"])
def test_sparse_multi_gb_dsym_is_mapped_not_read(tmp_path: Path, make: Callable[[Path], None],
                                                 arch: str | None) -> None:
    big = tmp_path / "big"
    make(big)
    if big.stat().st_blocks * 512 > 64 << 20:
        pytest.skip("this filesystem does not keep sparse files sparse")
    assert big.stat().st_size > GAP
    rss_small = _build_in_child(DSYM, tmp_path / "small.symc", None)
    rss_big = _build_in_child(big, tmp_path / "big.symc", arch)
    print(f"peak RSS: {rss_big >> 20} MiB for a {big.stat().st_size >> 20} MiB file "
          f"({rss_small >> 20} MiB for the original)")
    assert rss_big < MAX_RSS_BYTES
    assert rss_big < rss_small + (64 << 20)
    small, large = SymCache.open(tmp_path / "small.symc"), SymCache.open(tmp_path / "big.symc")
    try:
        frames = [large.lookup(a) for a in range(*TEXT)]
        assert frames == [small.lookup(a) for a in range(*TEXT)]
        assert sum(1 for fr in frames if fr and fr[0].line) > 1000  # DWARF lines, not just symbols
    finally:
        small.close()
        large.close()


def _patched(tmp_path: Path, section: str, field: int, value: int) -> Path:
    data = bytearray(DSYM.read_bytes())
    _seg, heads = _dwarf_section_headers(data)
    fmt = "<Q" if field == 40 else "<I"
    struct.pack_into(fmt, data, heads[section] + field, value)
    out = tmp_path / f"{section}-{field}-{value}"
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("section, field, value", [
    ("__debug_info", 48, 1 << 31),              # offset far past the end
    ("__debug_info", 40, 1 << 40),              # size far past the end
    ("__debug_str", 40, 0x7FFF_FFFF_FFFF_FFFF),  # offset + size overflows 64 bits in C
    ("__debug_line", 48, 17860 - 0x32B + 1),      # one byte past the end
])
def test_lying_section_offsets_are_malformed(tmp_path: Path, section: str, field: int, value: int) -> None:
    with pytest.raises(MalformedObject, match="runs past the end"):
        build(_patched(tmp_path, section, field, value))


def test_section_ending_exactly_at_the_end_of_the_file_is_read(tmp_path: Path) -> None:
    image, _ = open_slice(_patched(tmp_path, "__debug_line", 48, 17860 - 0x32B), None)
    assert macho_dwarf_sections(image)["debug_line"] == DSYM.read_bytes()[-0x32B:]


def test_symbol_table_past_the_end_is_malformed(tmp_path: Path) -> None:
    data = bytearray(DSYM.read_bytes())
    (symtab,) = [pos for pos, cmd, _ in _walk(data) if cmd == 0x2]
    struct.pack_into("<I", data, symtab + 12, 1 << 24)  # nsyms
    bad = tmp_path / "nsyms"
    bad.write_bytes(bytes(data))
    with pytest.raises(MalformedObject, match="symbol table"):
        build(bad)


def test_fat_slice_past_the_end_is_malformed(tmp_path: Path) -> None:
    data = DSYM.read_bytes()
    bad = tmp_path / "fat"
    bad.write_bytes(struct.pack(">II", 0xCAFEBABE, 1) + struct.pack(">iiIII", 0x0100000C, 0, 4096, len(data) + 1, 12)
                    + bytes(4096 - 28) + data)
    with pytest.raises(MalformedObject, match="outside the file"):
        build(bad)


def _hand_built(is64: bool, e: str, cputype: int) -> bytes:
    """A minimal object: `__TEXT,__text` at 0x1000 (0x100 bytes) and six `nlist` entries, four of
    which are not function symbols (a stab, an undefined import, one outside `__text`, a bad name)."""
    header = 32 if is64 else 28
    seg_size = 72 + 80 if is64 else 56 + 68
    cmds = seg_size + 24
    text_off = header + cmds
    symoff = text_off + 0x100
    strings = b"\0_foo\0_bar\0_stab\0_ext\0_data\0"
    entries = [(1, 0x0F, 1, 0x1000), (6, 0x0E, 1, 0x1040), (11, 0x24, 1, 0x1080), (17, 0x01, 0, 0),
               (22, 0x0F, 2, 0x2000), (len(strings) + 5, 0x0F, 1, 0x10C0)]
    nlist = e + ("IBBHQ" if is64 else "IBBHI")
    stroff = symoff + struct.calcsize(nlist) * len(entries)
    magic = 0xFEEDFACF if is64 else 0xFEEDFACE
    out = struct.pack(e + "IiiIIII", magic, cputype, 3, 2, 2, cmds, 0) + (b"\0" * 4 if is64 else b"")
    if is64:
        out += struct.pack(e + "II16sQQQQiiII", 0x19, seg_size, b"__TEXT", 0x1000, 0x1000, 0, symoff, 5, 5, 1, 0)
        out += struct.pack(e + "16s16sQQIIIIIIII", b"__text", b"__TEXT", 0x1000, 0x100, text_off, 2, 0, 0,
                           0x80000400, 0, 0, 0)
    else:
        out += struct.pack(e + "II16sIIIIiiII", 0x1, seg_size, b"__TEXT", 0x1000, 0x1000, 0, symoff, 5, 5, 1, 0)
        out += struct.pack(e + "16s16sIIIIIIIII", b"__text", b"__TEXT", 0x1000, 0x100, text_off, 2, 0, 0,
                           0x80000400, 0, 0)
    out += struct.pack(e + "IIIIII", 0x2, 24, symoff, len(entries), stroff, len(strings))
    out += b"\xc3" * 0x100
    out += b"".join(struct.pack(nlist, strx, n_type, sect, 0, value) for strx, n_type, sect, value in entries)
    return out + strings


@pytest.mark.parametrize("is64, e, cputype, arch", [
    (True, "<", 0x01000007, Arch.X86_64), (False, "<", 7, Arch.X86),
    (True, ">", 0x01000012, Arch.PPC64), (False, ">", 18, Arch.PPC),
], ids=["64-le", "32-le", "64-be", "32-be"])
def test_nlist_layouts_give_the_function_symbols(tmp_path: Path, is64: bool, e: str, cputype: int,
                                                 arch: Arch) -> None:
    path = tmp_path / "obj"
    path.write_bytes(_hand_built(is64, e, cputype))
    out = subprocess.run([LLVM_NM, "-p", "--defined-only", str(path)], check=True, capture_output=True, text=True)
    lines = out.stdout.splitlines()
    assert [line.split()[-1] for line in lines[:3]] == ["_foo", "_bar", "_data"] and "bad string index" in lines[3]
    image, found = open_slice(path, None)
    assert found == arch
    assert macho_symbols(image) == [Symbol(0x1000, 0x1040, "foo"), Symbol(0x1040, 0x1100, "bar")]
    cache = SymCache.from_bytes(build(path))
    assert [f.function for f in cache.lookup(0x1050)] == ["bar"]


def test_building_releases_the_mapping(tmp_path: Path) -> None:
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc")
    before = len(os.listdir(fds))
    for _ in range(5):
        build(MACHO / "app_fat.dSYM", "arm64")
    assert len(os.listdir(fds)) == before
