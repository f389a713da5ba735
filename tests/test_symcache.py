"""The symcache format, its lookups, demangling, the symbol-table fallback and split debug files.

Everything runs on the committed native fixtures (real gcc/clang/rustc/ld64.lld
output); the accuracy against llvm-symbolizer lives in test_dwarf_accuracy.py.
"""

from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path
from typing import Any, Callable, cast

import pytest

from symbolicator.errors import MalformedObject
from symbolicator.native import symcache as fmt
from symbolicator.native.debuglink import find_debug_file
from symbolicator.native.demangle import demangle
from symbolicator.native.dwarf.macho import ArchitectureRequired
from symbolicator.native.symcache import Frame, SymCache
from symbolicator.native.symcache_build import build, build_to_file

OUT = Path(__file__).parent / "fixtures" / "native" / "out"
CPP_O3 = OUT / "elf" / "cpp_gcc_O3_dwarf5"


def _first_inlined_address(cache: SymCache, lo: int, hi: int) -> int:
    for addr in range(lo, hi):
        if len(cache.lookup(addr)) >= 3:
            return addr
    raise AssertionError("no address with an inline chain")


def test_build_to_file_then_mmap_lookup_gives_the_inline_chain(tmp_path: Path) -> None:
    out = tmp_path / "cpp.symc"
    size = build_to_file(CPP_O3, out)
    assert size == out.stat().st_size and out.read_bytes()[:8] == fmt.MAGIC
    cache = SymCache.open(out)
    try:
        addr = _first_inlined_address(cache, 0x1000, 0x3000)
        frames = cache.lookup(addr)
        assert all(f.inlined for f in frames[:-1]) and not frames[-1].inlined
        assert frames[-1].sym_addr is not None and frames[-1].sym_addr <= addr
        for f in frames:
            assert f.file and f.file.startswith("/") and ".." not in f.file.split("/")
            assert f.line is None or f.line > 0
    finally:
        cache.close()


def test_outermost_frame_keeps_the_raw_mangled_symbol() -> None:
    cache = SymCache.from_bytes(build(OUT / "elf" / "cpp_clang_O2_dwarf5"))
    seen = False
    for addr in range(0x1000, 0x4000):
        frames = cache.lookup(addr)
        if frames and frames[-1].symbol and frames[-1].symbol.startswith("_Z"):
            assert frames[-1].function and not frames[-1].function.startswith("_Z")
            seen = True
            break
    assert seen


def test_uncovered_addresses_give_no_frames() -> None:
    cache = SymCache.from_bytes(build(CPP_O3))
    assert cache.lookup(0) == []
    assert cache.lookup(0xFFFF_FFFF_FFFF) == []


def test_frame_json_has_exactly_the_api_fields() -> None:
    frame = Frame("f", "_Z1fv", "/a.c", 3, None, False, 0x10)
    assert frame.to_json() == {"function": "f", "symbol": "_Z1fv", "file": "/a.c", "line": 3, "column": None,
                               "inlined": False}


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"NOTCACHE" + b[8:], "magic"),
    (lambda b: b[:8] + struct.pack("<I", fmt.SYMCACHE_VERSION + 1) + b[12:], "version"),
    (lambda b: b[:-1], "size"),
    (lambda b: b[:48], "size"),
    (lambda b: b[:20], "short"),
])
def test_corrupt_or_outdated_symcache_is_rejected_on_open(tmp_path: Path, mutate: Callable[[bytes], bytes],
                                                          message: str) -> None:
    data = build(OUT / "elf" / "c_gcc_O2_dwarf5")
    path = tmp_path / "bad.symc"
    path.write_bytes(mutate(data))
    with pytest.raises(MalformedObject, match=message):
        SymCache.open(path)


def test_empty_symcache_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.symc"
    path.write_bytes(b"")
    with pytest.raises(MalformedObject):
        SymCache.open(path)


@pytest.mark.parametrize("mangled, expected", [
    ("_ZN3foo3barIiEEvT_", "void foo::bar<int>(int)"),
    ("_ZN4core3fmt9Formatter3pad17h0123456789abcdefE", "core::fmt::Formatter::pad"),
    ("_ZN3std2rt10lang_start28_$u7b$$u7b$closure$u7d$$u7d$17hdbee5a3fa7ab6636E", "std::rt::lang_start::{{closure}}"),
    ("_RNvNtCsbmNqQUJIY6D_4core3fmt5write", "core::fmt::write"),
    ("$s4main3FooV3baryyF", "main.Foo.bar() -> ()"),
    ("_$s4main3FooV3baryyF", "main.Foo.bar() -> ()"),
    ("main", "main"),
    ("_Znot_really_mangled", "_Znot_really_mangled"),
    ("", ""),
])
def test_demangle(mangled: str, expected: str) -> None:
    assert demangle(mangled) == expected


def test_rust_frames_are_demangled_without_hash_and_keep_the_raw_symbol() -> None:
    for name in ("rust_legacy", "rust_v0"):
        cache = SymCache.from_bytes(build(OUT / "elf" / name))
        frames = [f for a in range(0x2000, 0x4000, 3) for f in cache.lookup(a) if f.symbol and "histogram" in f.symbol]
        assert frames, name
        for f in frames:
            assert f.function and "histogram" in f.function and "$" not in f.function
            assert not re.search(r"::h[0-9a-f]{16}$", f.function)
            assert f.symbol and f.symbol.startswith(("_ZN", "_R"))


def test_symtab_only_binary_names_functions_without_lines() -> None:
    cache = SymCache.from_bytes(build(OUT / "elf" / "cpp_gcc_symtab_only"))
    named = [cache.lookup(a) for a in range(0x1000, 0x3000, 7)]
    hits = [fr[0] for fr in named if fr]
    assert any(f.function == "main" for f in hits)
    assert all(f.line is None and not f.inlined for f in hits)


def test_dynsym_only_library_still_names_exported_functions() -> None:
    cache = SymCache.from_bytes(build(OUT / "elf" / "libfixture_stripped.so"))
    names = {f.function for a in range(0x1000, 0x2000) for f in cache.lookup(a)}
    assert any(n and n.startswith("lib_") for n in names)


def test_fat_file_needs_an_arch_and_each_slice_resolves() -> None:
    dsym = OUT / "macho" / "app_fat.dSYM"
    with pytest.raises(ArchitectureRequired) as info:
        build(dsym)
    assert sorted(info.value.arches) == ["arm64", "x86_64"]
    for arch in ("arm64", "x86_64"):
        cache = SymCache.from_bytes(build(dsym, arch))
        assert cache.arch == arch
        assert any(cache.lookup(a) for a in range(0x1_0000_0000, 0x1_0000_8000, 4))


def test_split_debug_file_is_found_by_debuglink_and_by_build_id(tmp_path: Path) -> None:
    stripped = OUT / "elf" / "split" / "cpp_gcc_split"
    assert find_debug_file(stripped).name == "cpp_gcc_split.debug"
    # build-id layout only: copy the binary alone, the debug file under .build-id/ab/cdef….debug
    lone = tmp_path / "bin" / "app"
    lone.parent.mkdir()
    shutil.copy(stripped, lone)
    from elftools.elf.elffile import ELFFile

    with open(stripped, "rb") as fh:
        note = next(n for s in ELFFile(fh).iter_sections() if s["sh_type"] == "SHT_NOTE"
                    for n in cast(Any, s).iter_notes() if n["n_type"] == "NT_GNU_BUILD_ID")
    build_id = note["n_desc"]
    target = tmp_path / "debug" / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"
    target.parent.mkdir(parents=True)
    shutil.copy(OUT / "elf" / "split" / "cpp_gcc_split.debug", target)
    assert find_debug_file(lone, roots=(tmp_path / "debug",)) == target
    assert find_debug_file(lone, roots=()) == lone


def test_debuglink_with_wrong_crc_is_ignored(tmp_path: Path) -> None:
    shutil.copy(OUT / "elf" / "split" / "cpp_gcc_split", tmp_path / "app")
    (tmp_path / "cpp_gcc_split.debug").write_bytes(b"not the debug file")
    assert find_debug_file(tmp_path / "app", roots=()) == tmp_path / "app"


def test_compressed_debug_sections_decode_like_plain_ones() -> None:
    plain = SymCache.from_bytes(build(OUT / "elf" / "cpp_gcc_zlib"))
    for name in ("cpp_gcc_zstd", "cpp_gcc_zlib_gnu"):
        other = SymCache.from_bytes(build(OUT / "elf" / name))
        for addr in range(0x1000, 0x2800, 5):
            assert other.lookup(addr) == plain.lookup(addr), (name, hex(addr))
