"""PE images (issue 16): identification, their own symbols, hostile headers, symbol-server paths.

Truth comes from independent readers of the committed fixtures (tests/fixtures/pe/, built by
its build.sh with clang + lld-link): `llvm-readobj --coff-debug-directory` and PyPI `symbolic`
for the ids, `symbolic`'s symcache (RVAs) for what the exe alone answers, and
llvm-symbolizer (VAs) and `symbolic` for MinGW's DWARF. Tests that need the PDB reader are in
tests/test_pe_service.py.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from symbolicator.errors import FormatError, MalformedObject, UnsupportedFormat
from symbolicator.native.objects import check_magic, identify
from symbolicator.native.pe import read_exports, read_pe
from symbolicator.native.symcache import SymCache
from symbolicator.native.symcache_build import build
from symbolicator.sources.config import Layout
from symbolicator.sources.layouts import ModuleQuery, candidate_paths
from symbolicator.types import Arch, CodeId, DebugId
from tests.support.native_service import llvm_symbolize, needs_llvm, ours

PE = Path(__file__).parent / "fixtures" / "pe"
APP, MG = PE / "app.exe", PE / "mg.exe"
READOBJ = shutil.which("llvm-readobj") or shutil.which("llvm-readobj-14")
symbolic = pytest.importorskip("symbolic")


def readobj(path: Path) -> dict[str, Any]:
    """TimeDateStamp, SizeOfImage, ImageBase and the CodeView record as llvm-readobj prints them."""
    assert READOBJ is not None
    text = subprocess.run([READOBJ, "--file-headers", "--coff-debug-directory", str(path)], check=True,
                          capture_output=True, text=True).stdout
    guid = re.search(r"PDBGUID: \(([0-9A-F ]+)\)", text)
    assert guid is not None
    return {
        "timestamp": int(re.search(r"TimeDateStamp: .*\(0x([0-9A-F]+)\)", text).group(1), 16),  # type: ignore[union-attr]
        "size_of_image": int(re.search(r"SizeOfImage: (\d+)", text).group(1)),  # type: ignore[union-attr]
        "image_base": int(re.search(r"ImageBase: 0x([0-9A-F]+)", text).group(1), 16),  # type: ignore[union-attr]
        "guid_le": bytes.fromhex(guid.group(1).replace(" ", "")),
        "age": int(re.search(r"PDBAge: (\d+)", text).group(1)),  # type: ignore[union-attr]
        "pdb": re.search(r"PDBFileName: (\S+)", text).group(1),  # type: ignore[union-attr]
    }


def symbolic_object(path: Path) -> Any:
    return symbolic.debuginfo.Archive.open(str(path)).get_object(arch="x86_64")


# ------------------------------------------------------------------------------------------ identification

@pytest.mark.skipif(READOBJ is None, reason="llvm-readobj is not installed")
@pytest.mark.parametrize("path", [APP, MG, PE / "app_x86.exe", PE / "app_arm64.exe"], ids=lambda p: p.name)
def test_ids_agree_with_llvm_readobj_and_symbolic(path: Path) -> None:
    """x86_64 (MSVC ABI and MinGW), x86 (PE32) and arm64 images."""
    import uuid

    (info,) = identify(path)
    truth = readobj(path)
    (theirs,) = symbolic.debuginfo.Archive.open(str(path)).iter_objects()
    assert info.file_format == "pe" and info.object_type == "executable"
    assert info.arch.value == theirs.arch
    assert info.code_id == CodeId(f"{truth['timestamp']:08X}{truth['size_of_image']:x}".lower())
    assert info.debug_id == DebugId(uuid.UUID(bytes_le=truth["guid_le"]), truth["age"])
    assert info.debug_link == truth["pdb"] == f"{path.stem}.pdb"
    assert info.image_vmaddr == truth["image_base"] == (0x400000 if "x86." in path.name else 0x140000000)
    assert str(info.code_id) == theirs.code_id and str(info.debug_id) == theirs.debug_id
    assert theirs.file_format == "pe" and theirs.kind == "exe"
    names = {"symtab": info.features.has_symbols, "debug": info.features.has_debug_info,
             "unwind": info.features.has_unwind_info}
    assert {k for k, v in names.items() if v} == set(theirs.features)


def test_the_documented_fixture_ids() -> None:
    """The values docs/formats.md quotes, so a rebuilt fixture that changes them is noticed."""
    app, mg = identify(APP)[0], identify(MG)[0]
    assert (str(app.code_id), str(app.debug_id)) == ("a81e53c66000", "58a7559e-63b7-40ac-4c4c-44205044422e-1")
    assert (str(mg.code_id), str(mg.debug_id)) == ("5d72a35b3c000", "54c5e736-53c3-1484-4c4c-44205044422e-1")
    assert app.object_name == "app.exe" and mg.object_name is None  # the export directory's DLL name
    assert read_pe(APP.read_bytes()).section(".pdata") is not None


def test_upload_sniffing_accepts_pe() -> None:
    check_magic(APP.read_bytes()[:32], APP.stat().st_size)


# ------------------------------------------------------------------------------------------ own symbols

def test_exports_name_the_code_symbolic_names_from_the_exe_alone() -> None:
    """Without a PDB the export table names its functions, as symbolic's symcache of the exe does
    (RVAs there, ImageBase + RVA here). Past the export's section we answer nothing; symbolic lets
    the last export run on forever (docs/formats.md)."""
    pe = read_pe(APP.read_bytes())
    assert read_exports(APP.read_bytes(), pe) == [(0x10A0, "exported_entry")]
    ours = SymCache.from_bytes(build(APP))
    theirs = symbolic_object(APP).make_symcache()
    text = pe.section(".text")
    assert text is not None
    compared = 0
    for rva in range(text.rva, text.rva + text.virtual_size):
        want = [(s.symbol, s.sym_addr) for s in theirs.lookup(rva)]
        got = [(f.symbol, f.sym_addr - pe.image_base) for f in ours.lookup(pe.image_base + rva)
               if f.sym_addr is not None]
        assert got == want, hex(rva)
        compared += bool(want)
    assert compared == text.rva + text.virtual_size - 0x10A0
    assert ours.lookup(pe.image_base + text.rva + text.virtual_size) == []
    assert [s.symbol for s in theirs.lookup(0x2000)] == ["exported_entry"]  # .rdata: symbolic's run-on


def without_codeview(path: Path, dest: Path) -> Path:
    """A copy of the exe whose CodeView debug entry is retyped (type 2 → 0): llvm-symbolizer then
    reads the exe's own DWARF instead of insisting on the PDB. Code and DWARF bytes are unchanged."""
    data = bytearray(path.read_bytes())
    at = data.index(b"RSDS")
    entry = data.index(struct.pack("<I", at)) - 24  # the debug entry whose PointerToRawData is the record
    assert struct.unpack_from("<I", data, entry + 12) == (2,)
    struct.pack_into("<I", data, entry + 12, 0)
    dest.write_bytes(bytes(data))
    return dest


@needs_llvm
def test_mingw_dwarf_in_the_exe_agrees_with_llvm_symbolizer_and_symbolic(tmp_path: Path) -> None:
    """mg.exe carries DWARF from the MinGW CRT objects. Read at VAs like ELF's, every 3rd byte of
    .text answers the function, file, line and whole inline chain llvm-symbolizer gives on the same
    DWARF, and the files and lines of symbolic's chain (RVAs) where symbolic answers. A line row
    outside every function (CRT glue) gives a file and line without a function, as llvm-symbolizer
    prints it; symbolic drops those rows (docs/formats.md)."""
    pe = read_pe(MG.read_bytes())
    cache = SymCache.from_bytes(build(MG))
    theirs = symbolic_object(MG).make_symcache()
    text = pe.section(".text")
    assert text is not None
    addrs = [pe.image_base + rva for rva in range(text.rva, text.rva + text.virtual_size, 3)]
    truth = llvm_symbolize(without_codeview(MG, tmp_path / "mg.exe"), addrs)
    compared = agreed = agreed_symbolic = answered_symbolic = 0
    for address, want in zip(addrs, truth, strict=True):
        if not want:
            continue
        got = [{"function": f.function or "", "abs_path": posixpath.normpath(f.file) if f.file else None,
                "lineno": f.line, "status": "symbolicated"} for f in cache.lookup(address)]
        compared += 1
        agreed += ours(got) == want
        sym = [(Path(s.full_path or "").name, s.line) for s in theirs.lookup(address - pe.image_base)]
        if sym:
            answered_symbolic += 1
            agreed_symbolic += sym == [(Path(f["abs_path"] or "").name, f["lineno"]) for f in got]
    assert compared >= 1000 and answered_symbolic >= 0.9 * compared
    assert agreed / compared >= 0.995, (agreed, compared)
    assert agreed_symbolic / answered_symbolic >= 0.995, (agreed_symbolic, answered_symbolic)


# ------------------------------------------------------------------------------------------ hostile input

def _patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def test_every_truncation_of_the_headers_is_a_typed_error(tmp_path: Path) -> None:
    data = APP.read_bytes()
    target = tmp_path / "cut.exe"
    for size in list(range(2, 0x400, 3)) + [0x640, 0x65F, 0x800, len(data) - 1]:
        target.write_bytes(data[:size])
        try:
            identify(target)
        except FormatError:
            continue
        # what survives a cut must still be the same image (only data after the headers was cut)
        assert size >= 0x660, size


@pytest.mark.parametrize(("offset", "fmt", "value", "error", "message"), [
    (0x3C, "<I", 0x7FFF_FFF0, UnsupportedFormat, "without a PE/COFF header"),
    (0x78 + 4 + 2, "<H", 0xFFFF, MalformedObject, "section"),  # NumberOfSections
    (0x78 + 24, "<H", 0x1234, MalformedObject, "optional header magic"),
    (0x78 + 4 + 16, "<H", 8, MalformedObject, "optional header of 8 bytes"),
    (0x608 + 24, "<I", 0xFFFF_FF00, MalformedObject, "CodeView"),  # debug entry PointerToRawData
    (0x78 + 24 + 112 + 6 * 8, "<I", 0x7000_0000, MalformedObject, "debug directory"),  # debug dir RVA
    (0x78 + 24 + 112, "<I", 0x0FFF_FFF0, MalformedObject, "export directory"),  # export dir RVA
])
def test_hostile_headers_are_typed_errors(tmp_path: Path, offset: int, fmt: str, value: int,
                                          error: type[Exception], message: str) -> None:
    target = tmp_path / "bad.exe"
    target.write_bytes(_patched(APP.read_bytes(), offset, fmt, value))
    with pytest.raises(error, match=message):
        identify(target)
    with pytest.raises(FormatError):
        build(target)


def test_a_codeview_path_without_nul_and_a_dos_program(tmp_path: Path) -> None:
    data = bytearray(APP.read_bytes())
    pe = read_pe(bytes(data))
    assert pe.codeview is not None
    at = data.index(b"RSDS")
    data[at + 24:at + 32] = b"x" * 8  # `app.pdb\0` without its NUL, and the record's size ends there
    (tmp_path / "nul.exe").write_bytes(bytes(data))
    with pytest.raises(MalformedObject, match="no terminating NUL"):
        identify(tmp_path / "nul.exe")
    (tmp_path / "dos.exe").write_bytes(b"MZ" + b"\0" * 62)
    with pytest.raises(UnsupportedFormat, match="DOS. program without a PE/COFF header"):
        identify(tmp_path / "dos.exe")


def test_export_ordinal_out_of_range(tmp_path: Path) -> None:
    data = APP.read_bytes()
    pe = read_pe(data)
    export_rva = pe.export_dir[0]
    rdata = pe.section(".rdata")
    assert rdata is not None
    directory = rdata.file_offset + export_rva - rdata.rva
    ordinals_rva = struct.unpack_from("<I", data, directory + 36)[0]
    bad = _patched(data, rdata.file_offset + ordinals_rva - rdata.rva, "<H", 7)
    with pytest.raises(MalformedObject, match="export ordinal 7"):
        read_exports(bad, read_pe(bad))


# ------------------------------------------------------------------------------------------ symbol-server paths

PE_MODULE = ModuleQuery("pe", DebugId.parse("58a7559e-63b7-40ac-4c4c-44205044422e-1"), CodeId.parse("a81e53c66000"),
                         Arch.X86_64, "C:\\Program Files\\Demo\\App.exe", "C:\\build\\App.pdb")


@pytest.mark.parametrize(("layout", "file_type", "expected"), [
    ("symstore", "pdb", ["App.pdb/58A7559E63B740AC4C4C44205044422E1/App.pdb"]),
    ("symstore", "pe", ["App.exe/A81E53C66000/App.exe"]),
    ("native", "pdb", ["App.pdb/58A7559E63B740AC4C4C44205044422E1/App.pdb"]),
    ("native", "pe", ["App.exe/A81E53C66000/App.exe"]),
    ("ssqp", "pdb", ["app.pdb/58a7559e63b740ac4c4c44205044422e1/app.pdb"]),
    ("ssqp", "pe", ["app.exe/a81e53c66000/app.exe"]),
    ("symstore_index2", "pdb", ["Ap/App.pdb/58A7559E63B740AC4C4C44205044422E1/App.pdb"]),
    ("unified", "pdb", ["58/a7559e63b740ac4c4c44205044422e1/debuginfo"]),
    ("unified", "pe", ["58/a7559e63b740ac4c4c44205044422e1/executable"]),
    ("debuginfod", "pdb", []),
    ("symstore", "elf_code", []),
    ("symstore", "sourcebundle", []),
])
def test_pe_and_pdb_paths_follow_the_symbol_server_rules(layout: str, file_type: str, expected: list[str]) -> None:
    """Written from the rules (Microsoft symstore: `<name>/<GUID upper><age hex>/<name>` and
    `<name>/<TIMESTAMP upper><SizeOfImage lower>/<name>`; unified: the lowercase breakpad id)."""
    assert candidate_paths(Layout(type=layout), file_type, PE_MODULE) == expected  # type: ignore[arg-type]


def test_lowercase_casing_reaches_the_pe_paths() -> None:
    assert candidate_paths(Layout(type="symstore", casing="lowercase"), "pe", PE_MODULE) == [
        "app.exe/a81e53c66000/app.exe"]


# ------------------------------------------------------------------------------------------ resolve, offline

def resolve(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "symbolicator", "resolve", "--no-cache", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})


def test_resolve_an_exe_alone_takes_vas_and_rvas(tmp_path: Path) -> None:
    """No PDB beside it: the exe's exports answer, for a VA (what llvm-symbolizer takes) and an RVA alike."""
    shutil.copyfile(APP, tmp_path / "app.exe")
    out = resolve("--debug-file", str(tmp_path / "app.exe"), "--json", "0x1400010a8", "0x10a8", "0x140001058",
                  "0x112a")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["address"] for line in lines] == ["0x1400010a8", "0x10a8", "0x140001058", "0x112a"]
    assert [[f["function"] for f in line["frames"]] for line in lines] == [
        ["exported_entry"], ["exported_entry"], [], []]
    assert "PDB" not in out.stderr  # nothing was found, so nothing was refused


@needs_llvm
def test_resolve_a_mingw_exe_alone_equals_llvm_symbolizer_on_its_dwarf(tmp_path: Path) -> None:
    exe = shutil.copyfile(MG, tmp_path / "mg.exe")
    pe = read_pe(MG.read_bytes())
    text = pe.section(".text")
    assert text is not None
    vas = [pe.image_base + rva for rva in range(text.rva, text.rva + 0x800, 0x2B)]
    out = resolve("--debug-file", str(exe), "--json", *map(hex, vas))
    assert out.returncode == 0, out.stderr
    got = [[{**f, "abs_path": f["file"], "lineno": f["line"], "status": "symbolicated"} for f in
            json.loads(line)["frames"]] for line in out.stdout.splitlines()]
    want = llvm_symbolize(without_codeview(MG, tmp_path / "truth.exe"), vas)
    assert sum(1 for w in want if w) >= 30
    assert [ours(g) for g in got] == want


def test_symbolicate_a_request_with_a_pe_module_offline(tmp_path: Path) -> None:
    """`symbolicate request.json --symbols DIR` finds the exe by the module's debug id among the files."""
    symbols = tmp_path / "symbols"
    symbols.mkdir()
    shutil.copyfile(APP, symbols / "app.exe")
    body = {"stacktraces": [{"frames": [{"instruction_addr": hex(0x7FF6_A000_0000 + 0x10A8)}]}],
            "modules": [{"type": "pe", "debug_id": "58a7559e-63b7-40ac-4c4c-44205044422e-1", "code_id": "a81e53c66000",
                         "code_file": "C:\\app\\app.exe", "debug_file": "app.pdb", "image_addr": "0x7ff6a0000000",
                         "image_size": 24576}]}
    (tmp_path / "request.json").write_text(json.dumps(body))
    out = subprocess.run([sys.executable, "-m", "symbolicator", "symbolicate", str(tmp_path / "request.json"),
                          "--symbols", str(symbols), "--json", "--no-cache"], capture_output=True, text=True,
                         timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["modules"][0]["debug_status"] == "found"
    assert answer["stacktraces"][0]["frames"][0]["function"] == "exported_entry"


def synthetic_pe(n_sections: int, n_names: int) -> bytes:
    """A PE32+ image with `n_sections` section headers and an export table of `n_names` names, the kind
    of header a hostile upload can carry: every section but the last maps the same 512 bytes at its
    own RVA, and the export directory and its tables fill the last one."""
    data_at = (0x148 + 40 * n_sections + 0x1FF) & ~0x1FF
    last_rva = 0x1000 * n_sections
    names_rva, ordinals_rva, name_rva = last_rva + 0x40, last_rva + 0x40 + 4 * n_names, last_rva + 0x40 + 6 * n_names
    block = bytearray(0x40 + 6 * n_names + 16)
    struct.pack_into("<IIHHIIIIIII", block, 0, 0, 0, 0, 0, name_rva, 1, 1, n_names, last_rva + 0x28, names_rva,
                     ordinals_rva)
    struct.pack_into("<I", block, 0x28, last_rva + 0x30)  # the one function, at an RVA inside the block
    struct.pack_into(f"<{n_names}I", block, 0x40, *([name_rva] * n_names))
    block[6 * n_names + 0x40:6 * n_names + 0x42] = b"f\0"
    head = bytearray(data_at)
    head[:2] = b"MZ"
    struct.pack_into("<I", head, 0x3C, 0x40)
    head[0x40:0x44] = b"PE\0\0"
    struct.pack_into("<HHIIIHH", head, 0x44, 0x8664, n_sections, 0, 0, 0, 240, 0x22)
    struct.pack_into("<HxxxxxxxxxxxxxxxxxxxxxxQ", head, 0x58, 0x20B, IMAGE_BASE)
    struct.pack_into("<I", head, 0x58 + 56, last_rva + 0x1000)
    struct.pack_into("<III", head, 0x58 + 108, 16, last_rva, 0x28)  # the directory alone: no forwarders
    for i in range(n_sections - 1):
        struct.pack_into("<8sIIII", head, 0x148 + 40 * i, b".s", 0x200, 0x1000 * (i + 1), 0x200, data_at)
    struct.pack_into("<8sIIII", head, 0x148 + 40 * (n_sections - 1), b".edata", len(block), last_rva, len(block),
                     data_at + 0x200)
    return bytes(head + bytes(0x200) + block)


IMAGE_BASE = 0x1_4000_0000


def test_many_sections_and_exports_stay_cheap(tmp_path: Path) -> None:
    """65,535 section headers and 50,000 export names (a 3 MB file): header reading and the export
    symbols are O((sections + exports) · log sections), not their product (an hour before)."""
    import time

    target = tmp_path / "wide.exe"
    target.write_bytes(synthetic_pe(65_535, 50_000))
    start = time.monotonic()
    (info,) = identify(target)
    pe = read_pe(target.read_bytes())
    assert len(pe.sections) == 65_535 and info.features.has_symbols
    exports = read_exports(target.read_bytes(), pe)
    assert len(exports) == 50_000 and exports[0] == (0x1000 * 65_535 + 0x30, "f")
    SymCache.from_bytes(build(target))
    assert time.monotonic() - start < 60
