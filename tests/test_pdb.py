"""PDB reading (issue 16): identity, agreement with llvm-symbolizer on every instruction, bad input.

Truth is re-derived here from the fixtures (tests/fixtures/pe, rebuilt by build.sh): the GUID
and age from `llvm-pdbutil` and from the exe's CodeView record (`llvm-readobj`), the debug id
from PyPI `symbolic`, the instruction starts from `llvm-objdump`, the frames from
`llvm-symbolizer --inlines` at VAs. llvm-symbolizer does not check that the PDB matches the
exe, so identity is asserted first.

Agreement: at each instruction start, our whole inline chain (function, file, line per frame)
must equal llvm-symbolizer's, `> >` spelled `>>` (LLVM 14's demangler spaces closing template
brackets). LLVM 14's inline-line reader (`NativeInlineSiteSymbol::getLineOffset`) gives an
inlined frame the line of the *next* annotation row when a ChangeLineOffset comes without a code
offset change (`demo::leaf` :11 at 0x1006, where the row, symbolic and the source say :7); an
address where we differ from llvm-symbolizer counts as agreeing only when llvm-symbolizer has
the same function names and PyPI `symbolic` (an independent reader) has exactly our files and
lines. Both figures are printed; the combined one must reach 99.5 %.
"""

from __future__ import annotations

import re
import struct
import subprocess
import uuid
from functools import cache
from pathlib import Path

import pytest

from symbolicator.errors import FormatError, MalformedObject
from symbolicator.native import pdb
from symbolicator.native.demangle import demangle
from symbolicator.native.objects import identify
from symbolicator.native.symcache import SymCache
from tests.support.pdb_truth import Key, image_base, instruction_vas, pdbutil_identity, symbolize

PE = Path(__file__).parent / "fixtures" / "pe"
TARGET = 0.995
_CLOSE_TEMPLATES = re.compile(r">\s+(?=>)")
_CODEVIEW = re.compile(r"PDBGUID: \(([0-9A-F ]+)\)\s+PDBAge: (\d+)", re.S)


def _norm(chain: list[Key]) -> list[Key]:
    return [(_CLOSE_TEMPLATES.sub(">", f) if f else f, file, line) for f, file, line in chain]


def _exe_codeview(exe: Path) -> tuple[uuid.UUID, int]:
    out = subprocess.run(["llvm-readobj", "--coff-debug-directory", str(exe)], capture_output=True, text=True,
                         check=True).stdout
    m = _CODEVIEW.search(out)
    assert m, out
    return uuid.UUID(bytes_le=bytes.fromhex(m.group(1).replace(" ", ""))), int(m.group(2))


@cache
def _symcache(name: str) -> SymCache:
    return SymCache.from_bytes(pdb.build_symcache(PE / f"{name}.pdb"))


@pytest.mark.parametrize("name", ["app", "mg"])
def test_identity_matches_llvm_pdbutil_the_exe_and_symbolic(name: str) -> None:
    symbolic = pytest.importorskip("symbolic")
    path = PE / f"{name}.pdb"
    guid, age = pdb.identity(path)
    assert (guid, age) == pdbutil_identity(path) == _exe_codeview(PE / f"{name}.exe")
    info = identify(path)[0]
    theirs = symbolic.Archive.open(str(path)).get_object(arch="x86_64")
    assert str(info.debug_id) == theirs.debug_id == f"{guid}-{age:x}"
    assert (info.file_format, info.arch.value, info.object_kind.value) == ("pdb", "x86_64", "debuginfo")
    assert info.features.has_debug_info and info.features.has_symbols
    assert {"debug", "symtab"} <= set(theirs.features)


@pytest.mark.parametrize("name", ["app", "mg"])
def test_agreement_with_llvm_symbolizer_on_every_instruction(name: str) -> None:
    symbolic = pytest.importorskip("symbolic")
    exe, path = PE / f"{name}.exe", PE / f"{name}.pdb"
    assert pdbutil_identity(path) == _exe_codeview(exe), "llvm-symbolizer would read a PDB that does not match"
    base = image_base(exe)
    vas = instruction_vas(exe)
    assert len(vas) > 50
    truth = symbolize(exe, vas)
    other = symbolic.Archive.open(str(path)).get_object(arch="x86_64").make_symcache()
    ours_cache = _symcache(name)
    same = refereed = 0
    wrong: list[str] = []
    for va in vas:
        ours = _norm([(f.function, f.file, f.line) for f in ours_cache.lookup(va - base)])
        llvm = _norm(truth[va])
        if ours == llvm:
            same += 1
            continue
        theirs = [(loc.full_path or None, loc.line or None) for loc in other.lookup(va - base)]
        if [f for f, _, _ in ours] == [f for f, _, _ in llvm] and [(p, li) for _, p, li in ours] == theirs:
            refereed += 1
            continue
        wrong.append(f"{va:#x}\n  llvm-symbolizer {llvm}\n  symbolic        {theirs}\n  ours            {ours}")
    print(f"{name}: {len(vas)} instructions, same as llvm-symbolizer {same / len(vas):.4f}, "
          f"with symbolic as referee {(same + refereed) / len(vas):.4f}")
    assert (same + refereed) / len(vas) >= TARGET, "\n".join(wrong[:20])
    assert same / len(vas) >= (0.99 if name == "mg" else 0.9)


def test_inline_chain_and_names_at_the_crash_site() -> None:
    """The null store in app.cpp's `leaf`, inlined twice; names as llvm-symbolizer prints them."""
    frames = _symcache("app").lookup(0x1030)
    assert [(f.function, f.line, f.inlined) for f in frames] == [
        ("demo::leaf", 7, True), ("demo::middle", 14, True), ("demo::outer(int)", 16, False)]
    assert frames[-1].symbol == "?outer@demo@@YAHH@Z" and frames[-1].sym_addr == 0x1000
    assert demangle("?area@Square@demo@@UEBAHXZ") == "demo::Square::area(void) const"
    assert demangle("?get@?$Box@H@demo@@QEBAHXZ") == "demo::Box<int>::get(void) const"


def _superblock(data: bytes) -> tuple[int, ...]:
    return struct.unpack_from("<IIIIII", data, 32)


def _damaged(tmp_path: Path, edit: str) -> Path:
    data = bytearray((PE / "mg.pdb").read_bytes())
    bs, _fpm, n_blocks, dir_bytes, _u, map_addr = _superblock(bytes(data))
    first_dir_block = struct.unpack_from("<I", data, map_addr * bs)[0]
    directory = first_dir_block * bs
    n_streams = struct.unpack_from("<I", data, directory)[0]
    first_block_entry = directory + 4 + 4 * n_streams  # stream 0's first block, then stream 1's ...
    sizes = struct.unpack_from(f"<{n_streams}I", data, directory + 4)
    blocks = [0 if s == 0xFFFFFFFF else -(-s // bs) for s in sizes]
    big = next(i for i, n in enumerate(blocks) if n >= 2)  # a stream of two blocks or more
    at = first_block_entry + 4 * sum(blocks[:big])  # the directory entry of its first block
    if edit == "truncated":
        del data[len(data) // 2:]
    elif edit == "block out of range":
        struct.pack_into("<I", data, at, n_blocks + 7)
    elif edit == "loop":
        struct.pack_into("<I", data, at + 4, struct.unpack_from("<I", data, at)[0])
    elif edit == "directory past the end":
        struct.pack_into("<I", data, 44, 1 << 30)
    elif edit == "block size":
        struct.pack_into("<I", data, 32, 4000)
    out = tmp_path / "bad.pdb"
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("edit", ["truncated", "block out of range", "loop", "directory past the end", "block size"])
def test_damaged_msf_is_a_typed_error(edit: str, tmp_path: Path) -> None:
    path = _damaged(tmp_path, edit)
    with pytest.raises(MalformedObject):
        pdb.build_symcache(path)
    try:  # identification reads the headers only: it may not reach the damage, but never fails untyped
        identify(path)
    except FormatError:
        pass


def test_caller_line_changes_inside_one_inlined_call() -> None:
    """In mg.exe an inlined `push_back` spans two lines of `main` (27 and 30): the caller's line is taken
    at each address, as llvm-symbolizer and symbolic both report it, not once per inlined call."""
    symbolic = pytest.importorskip("symbolic")
    exe = PE / "mg.exe"
    base = image_base(exe)
    vas = [0x1400016DA, 0x1400016E1, 0x1400016E6, 0x1400016E9, 0x1400016EB]
    truth = symbolize(exe, vas)
    other = symbolic.Archive.open(str(PE / "mg.pdb")).get_object(arch="x86_64").make_symcache()
    for va in vas:
        ours = _norm([(f.function, f.file, f.line) for f in _symcache("mg").lookup(va - base)])
        assert ours == _norm(truth[va])
        assert [(p, li) for _, p, li in ours] == [(loc.full_path, loc.line) for loc in other.lookup(va - base)]
        assert ours[-1][0] == "main" and ours[-1][2] == truth[va][-1][2]


def test_inline_nesting_is_bounded() -> None:
    """A hostile module nesting 100,000 inline sites keeps 255 levels (the symcache reader's depth): the
    conversion's work per address stays bounded by that depth, not by the nesting the file claims."""
    from symbolicator.native.pdb.modules import (
        MAX_INLINE_DEPTH,
        S_END,
        S_GPROC32,
        S_INLINESITE,
        S_INLINESITE_END,
        read_module,
    )

    def record(kind: int, body: bytes) -> bytes:
        body += b"\0" * ((-len(body) - 4) % 4)
        return struct.pack("<HH", len(body) + 2, kind) + body

    proc = record(S_GPROC32, struct.pack("<IIIIIIIIHB", 0, 0, 0, 0x100, 0, 0, 0, 0, 1, 0) + b"f\0")
    site = record(S_INLINESITE, struct.pack("<III", 0, 0, 0x1000) + bytes([3, 0, 4, 0x7F]))  # one row [0, 0x7f)
    n = 100_000
    stream = struct.pack("<I", 4) + proc + site * n + record(S_INLINESITE_END, b"") * n + record(S_END, b"")
    sites = read_module(stream, len(stream), 0, 0).procedures[0].sites
    assert len(sites) == MAX_INLINE_DEPTH and sites[-1].depth == MAX_INLINE_DEPTH
    assert sites[0].rows == [(0, 0x7F, -1, 0)]


@pytest.mark.parametrize(("stream", "age", "expected"), [(1, 5, 1), (3, 7, 7)])
def test_debug_id_age_is_the_dbi_age(stream: int, age: int, expected: int, tmp_path: Path) -> None:
    """The info stream's age counts edits of the PDB; the DBI age is the one the exe's CodeView record
    holds. With the two made different (app.pdb, one of them rewritten), symbolic's debug id follows the
    DBI age, and so do we; llvm-pdbutil's summary prints the info stream's."""
    symbolic = pytest.importorskip("symbolic")
    from symbolicator.native.pdb.msf import Msf

    data = bytearray((PE / "app.pdb").read_bytes())
    msf = Msf(bytes(data))
    edited = msf.require(stream, "edited")
    struct.pack_into("<I", data, edited.blocks[0] * msf.block_size + 8, age)  # both keep the age at offset 8
    path = tmp_path / "app.pdb"
    path.write_bytes(bytes(data))
    guid, ours = pdb.identity(path)
    assert ours == expected
    assert symbolic.Archive.open(str(path)).get_object(arch="x86_64").debug_id == f"{guid}-{expected:x}"
    assert str(identify(path)[0].debug_id) == f"{guid}-{expected:x}"
    assert pdbutil_identity(path)[1] == (age if stream == 1 else 1)


def test_msvc_names_as_llvm_symbolizer_prints_them(tmp_path: Path) -> None:
    """Every MSVC-mangled name clang gives tests/fixtures/pe/names.cpp (constructors, operators, templates,
    function and member pointers, `__stdcall`, anonymous namespaces, RTTI data) demangles as
    `llvm-undname` does with the flags llvm-symbolizer passes (no access, member kind, return type or
    calling convention)."""
    obj = tmp_path / "names.obj"
    subprocess.run(["clang++", "--target=x86_64-pc-windows-msvc", "-c", str(PE / "names.cpp"), "-o", str(obj)],
                   check=True)
    nm = subprocess.run(["llvm-nm", "--defined-only", str(obj)], capture_output=True, text=True, check=True).stdout
    names = sorted({line.split()[-1] for line in nm.splitlines() if line.split() and line.split()[-1][0] == "?"})
    assert len(names) >= 25
    out = subprocess.run(["llvm-undname", "--no-calling-convention", "--no-return-type", "--no-access-specifier",
                          "--no-member-type", *names], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    expected = {lines[i]: lines[i + 1] for i in range(0, len(lines) - 1, 3)}
    assert set(expected) == set(names)
    assert {n: demangle(n) for n in names} == expected


def test_worker_conversion_of_a_pdb(tmp_path: Path) -> None:
    """The worker-pool job (`convert_debug_file`) identifies a PDB and converts it: RVAs, image_vmaddr 0."""
    from symbolicator.service.native.modules import convert_debug_file

    out = tmp_path / "app.symcache"
    meta = convert_debug_file(str(PE / "app.pdb"), str(out), None)
    assert (meta["arch"], meta["image_vmaddr"], meta["file_format"]) == ("x86_64", 0, "pdb")
    assert meta["features"]["has_debug_info"] and meta["features"]["has_symbols"]
    cache = SymCache.open(out)
    try:
        assert [f.function for f in cache.lookup(0x1030)] == ["demo::leaf", "demo::middle", "demo::outer(int)"]
    finally:
        cache.close()
