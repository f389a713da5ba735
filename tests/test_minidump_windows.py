"""Windows x64 minidumps: PE unwind tables, a PDB's code map, the walk, `POST /minidump`, the CLI.

Judged on real dumps (`tests/fixtures/minidump_windows/`, see its `build.sh`): a MinGW program
and DLL built with clang -O2 -gcodeview + lld (PDBs), crashed under wine on a worker thread and
on the main thread, each dumped by dbghelp's `MiniDumpWriteDump` from its unhandled-exception
filter. Truth: `minidump-stackwalk` on the `.sym` files `dump_syms` writes from the PDBs (with
their PE unwind tables as `STACK CFI`), recorded in `truth/*.json` and re-derived when the tools
are there; the unwind rows against `dump_syms` (final rules of every function, wine's own DLLs
too when wine is installed) and `llvm-readobj --unwind` (the prolog, code by code).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbolicator.errors import FormatError, MalformedObject
from symbolicator.native.cfi.breakpad_cfi import build_from_sym
from symbolicator.native.cfi.build import build, build_from_pe
from symbolicator.native.cfi.cache import CfiCache
from symbolicator.native.minidump.reader import parse_minidump
from symbolicator.native.minidump.walker import Stack, Walker, WalkModule
from symbolicator.native.objects import identify
from symbolicator.native.pdb.code_map import function_ranges
from symbolicator.native.pe import read_pe
from tests.support.minidump import DUMP_SYMS, STACKWALK, needs_stackwalk, post_dump, score, walked_addresses
from tests.support.native_service import start_service
from tests.support.service import ServiceProcess
from tests.support.tools import sentry_cli

W = Path(__file__).resolve().parent / "fixtures/minidump_windows"
DUMPS = ["worker", "main"]
IMAGES = [W / "out/crasher.exe", W / "out/crashlib.dll"]
PDBS = [W / "out/crasher.pdb", W / "out/crashlib.pdb"]
WINE_DLLS = [Path("/usr/lib/x86_64-linux-gnu/wine/x86_64-windows") / n
             for n in ("ntdll.dll", "kernelbase.dll", "kernel32.dll", "msvcrt.dll", "ucrtbase.dll", "dbghelp.dll")]
LLVM_READOBJ = shutil.which("llvm-readobj") or shutil.which("llvm-readobj-14")
needs_dump_syms = pytest.mark.skipif(not DUMP_SYMS.exists(), reason="run scripts/fetch-minidump-tools")


def truth(name: str) -> dict[str, Any]:
    return json.loads((W / "truth" / f"{name}.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def caches() -> dict[Any, tuple[CfiCache, CfiCache]]:
    """By debug id: the image's CFI cache and the PDB's code map."""
    out = {}
    for image, pdb in zip(IMAGES, PDBS, strict=True):
        out[identify(image)[0].debug_id] = (CfiCache(build(image)[0]), CfiCache(build(pdb)[0]))
    return out


Caches = dict[Any, tuple[CfiCache, CfiCache]]


def walk(name: str, caches: Caches, code_maps: bool = True) -> list[list[tuple[int, str]]]:
    dump = parse_minidump((W / "dumps" / f"{name}.dmp").read_bytes())
    modules = []
    for m in dump.modules:
        cfi, code = caches.get(m.debug_id, (None, None))
        check = (lambda c: lambda offset: c.covers(offset))(code) if code is not None and code_maps else None
        modules.append(WalkModule(m.base, m.size, cfi, check))
    walker = Walker(dump.arch, modules, frame_pointers=False)  # off on Windows, as in process.walk
    out = []
    for thread in dump.threads:
        registers, memory = dump.start_context(thread)
        stack = Stack(thread.stack_start, memory)
        out.append([(f.instruction, f.trust) for f in walker.walk(registers, stack)])
    return out


def theirs(name: str) -> list[list[tuple[int, str]]]:
    return [walked_addresses(t["frames"]) for t in truth(name)["threads"]]


# ------------------------------------------------------------------------------------ reader

@pytest.mark.parametrize("name", DUMPS)
def test_reader_agrees_with_stackwalk(name: str) -> None:
    dump = parse_minidump((W / "dumps" / f"{name}.dmp").read_bytes())
    t = truth(name)
    assert dump.system_info is not None and dump.system_info.os_name == "Windows"
    assert f"{dump.system_info.os_version} {dump.system_info.os_build}" == t["system_info"]["os_ver"]
    assert dump.crash_reason == t["crash_info"]["type"] == "EXCEPTION_ACCESS_VIOLATION_WRITE"
    assert dump.crash_address == int(t["crash_info"]["address"], 16)
    assert [th.thread_id for th in dump.threads] == [th["thread_id"] for th in t["threads"]]
    assert dump.exception is not None
    assert [i for i, th in enumerate(dump.threads) if th.thread_id == dump.exception.thread_id] == \
        [t["crash_info"]["crashing_thread"]]
    for m, expected in zip(dump.modules, t["modules"], strict=True):
        assert (m.base, m.base + m.size) == (int(expected["base_addr"], 16), int(expected["end_addr"], 16))
        assert str(m.code_id) == expected["code_id"]
        # wine's own DLLs have no RSDS record (stackwalk prints zeros); ours come from their PDBs
        assert (m.debug_id.breakpad if m.debug_id else "0" * 33) == expected["debug_id"]


# ------------------------------------------------------------------------------------ unwind rows

def _final_rules_compared(image: Path, tmp: Path) -> int:
    """Every `STACK CFI INIT` dump_syms writes for `image`: our rule set at its last byte is the same."""
    sym = tmp / f"{image.name}.sym"
    sym.write_text(subprocess.run([str(DUMP_SYMS), str(image)], check=True, capture_output=True, text=True).stdout)
    ours, theirs_ = CfiCache(build_from_pe(image)[0]), CfiCache(build_from_sym(sym)[0])
    n = 0
    for line in sym.read_text().splitlines():
        if line.startswith("STACK CFI INIT "):
            start, size = (int(x, 16) for x in line.split()[3:5])
            assert ours.lookup(ours.image_vmaddr + start + size - 1) == theirs_.lookup(start + size - 1), line
            n += 1
    return n


@needs_dump_syms
def test_pe_unwind_rules_equal_dump_syms(tmp_path: Path) -> None:
    assert sum(_final_rules_compared(image, tmp_path) for image in IMAGES) > 120


@needs_dump_syms
@pytest.mark.skipif(not all(p.exists() for p in WINE_DLLS), reason="wine64 is not installed")
def test_pe_unwind_rules_equal_dump_syms_on_wines_dlls(tmp_path: Path) -> None:
    """GCC-built DLLs with SAVE_NONVOL, ALLOC_LARGE, SET_FPREG and a PUSH_MACHFRAME (ntdll's
    exception dispatcher: the caller's rsp and rip come from the machine frame)."""
    assert sum(_final_rules_compared(dll, tmp_path) for dll in WINE_DLLS) > 6000


_READOBJ_CODE = re.compile(
    r"0x([0-9A-F]+): (\w+)(?: reg=(\w+))?(?:,? (?:size|offset)=(0x[0-9A-F]+|\d+))?(?: errcode=(\w+))?")
_DWARF = {"RAX": 0, "RDX": 1, "RCX": 2, "RBX": 3, "RSI": 4, "RDI": 5, "RBP": 6, "RSP": 7,
          **{f"R{i}": i for i in range(8, 16)}}


def _readobj_functions(image: Path) -> Iterator[tuple[int, int, list[tuple[int, str, str | None, int]]]]:
    """(start, prolog size, codes in array order) per RuntimeFunction, as llvm-readobj decodes them."""
    assert LLVM_READOBJ is not None
    out = subprocess.run([LLVM_READOBJ, "--unwind", str(image)], check=True, capture_output=True, text=True).stdout
    for block in out.split("RuntimeFunction {")[1:]:
        start = int(re.search(r"StartAddress: .*?\(0x([0-9A-F]+)\)", block).group(1), 16)  # type: ignore[union-attr]
        prolog = int(re.search(r"PrologSize: (\d+)", block).group(1))  # type: ignore[union-attr]
        codes = []
        for m in _READOBJ_CODE.finditer(block):
            value = m.group(4)
            codes.append((int(m.group(1), 16), m.group(2), m.group(3),
                          (int(value, 0) if value else 0) or (8 if m.group(5) == "yes" else 0)))
        yield start, prolog, codes


@pytest.mark.skipif(LLVM_READOBJ is None, reason="llvm-readobj is not installed")
@pytest.mark.parametrize("image", IMAGES + [p for p in WINE_DLLS[:2] if p.exists()], ids=lambda p: p.name)
def test_prolog_rows_follow_llvm_readobj(image: Path) -> None:
    """Inside the prolog, the CFA at each code's offset is rsp + 8 + what LLVM's decoding of the
    codes up to there allocates (or the frame register from SET_FPREG on)."""
    cache = CfiCache(build_from_pe(image)[0])
    checked = 0
    for start, prolog, codes in _readobj_functions(image):
        for at in sorted({min(c[0], prolog) for c in codes} | {0}):
            size, cfa = 8, None
            for offset, op, reg, value in reversed(codes):
                if min(offset, prolog) > at:
                    continue
                if op == "PUSH_NONVOL":
                    size += 8
                elif op in ("ALLOC_SMALL", "ALLOC_LARGE"):
                    size += value
                elif op == "PUSH_MACHFRAME":
                    size += 40 + value
                elif op == "SET_FPREG":
                    cfa = (_DWARF[reg or ""], size - value)
            rules = cache.lookup(start + at)
            assert rules is not None and (rules.cfa_reg, rules.cfa_offset) == (cfa or (7, size)), (hex(start), at)
            checked += 1
    assert checked > 100


def test_pdb_code_map_is_what_dump_syms_writes(tmp_path: Path) -> None:
    """The PDB's procedures and executable publics equal dump_syms' FUNC ranges and PUBLIC addresses."""
    if not DUMP_SYMS.exists():
        pytest.skip("run scripts/fetch-minidump-tools")
    for pdb in PDBS:
        sym = subprocess.run([str(DUMP_SYMS), str(pdb)], check=True, capture_output=True, text=True).stdout
        funcs, publics = set(), set()
        for line in sym.splitlines():
            words = [w for w in line.split() if w != "m"] or [""]
            if words[0] == "FUNC":
                funcs.add((int(words[1], 16), int(words[1], 16) + int(words[2], 16)))
            elif words[0] == "PUBLIC" and "<unknown in " not in line:
                publics.add(int(words[1], 16))  # dump_syms ends the last public with an `<unknown in …>` one
        ours_funcs, ours_publics = function_ranges(pdb)
        assert set(ours_funcs) == funcs
        assert set(ours_publics) - {s for s, _ in ours_funcs} == publics


def test_hostile_unwind_tables_give_typed_errors(tmp_path: Path) -> None:
    image = IMAGES[1].read_bytes()
    pe = read_pe(image)
    pdata = pe.section(".pdata")
    assert pdata is not None
    bad = bytearray(image)
    for i in range(pdata.file_size // 12):  # every UNWIND_INFO gets version 7
        (unwind,) = struct.unpack_from("<I", image, pdata.file_offset + 12 * i + 8)
        home = next(s for s in pe.sections if s.rva <= unwind < s.rva + s.file_size)
        bad[home.file_offset + unwind - home.rva] = 0x07
    path = tmp_path / "bad.dll"
    path.write_bytes(bytes(bad))
    with pytest.raises(MalformedObject):
        build_from_pe(path)
    cut = tmp_path / "cut.dll"
    cut.write_bytes(image[:pdata.file_offset + 8])
    with pytest.raises(FormatError):
        build_from_pe(cut)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), min_size=1, max_size=24))
def test_edited_unwind_tables_give_typed_errors_or_caches(tmp_path: Path, edits: list[tuple[int, int]]) -> None:
    """Hypothesis smoke (the long run is fuzz/targets/minidump.py): bytes of `.pdata` and of the
    unwind infos replaced, the conversion ends in a cache or a typed error."""
    image = bytearray(IMAGES[1].read_bytes())
    pe = read_pe(bytes(image))
    sections = [s for s in (pe.section(".pdata"), pe.section(".rdata")) if s is not None]  # lld puts .xdata in .rdata
    for at, value in edits:
        s = sections[at % len(sections)]
        image[s.file_offset + at % s.file_size] = value
    path = tmp_path / "edited.dll"
    path.write_bytes(bytes(image))
    try:
        data, meta = build_from_pe(path)
    except FormatError:
        return
    cache = CfiCache(data)
    assert cache.rows == meta["rows"]


# ------------------------------------------------------------------------------------ walker

def test_every_thread_walks_like_minidump_stackwalk(caches: Caches) -> None:
    """Both dumps, every thread: address and trust at the same position, ≥ 99 %."""
    good = total = 0
    for name in DUMPS:
        g, t = score(walk(name, caches), theirs(name))
        good, total = good + g, total + t
    assert total > 60
    assert good / total >= 0.99, f"{good} of {total}"


def test_the_crashed_worker_unwinds_by_pe_unwind_info(caches: Caches) -> None:
    """The leaf lib_store is left by scanning, lib_scale (a 5 KB frame: ALLOC_LARGE) and
    lib_compute (no frame pointer) by CFI; without the PE unwind tables (as before them) the
    walk of that thread differs from minidump-stackwalk's."""
    crashed = truth("worker")["crash_info"]["crashing_thread"]
    ours = walk("worker", caches)[crashed]
    assert [trust for _, trust in ours[:4]] == ["context", "scan", "cfi", "cfi"]
    assert ours == theirs("worker")[crashed]
    without = walk("worker", {k: (None, code) for k, (_, code) in caches.items()})[crashed]  # type: ignore[misc]
    assert without != theirs("worker")[crashed]


def test_scanning_asks_the_pdbs_code_map(caches: Caches) -> None:
    """Without the PDB's code map (only the image's unwind rows, which leave leaf functions out)
    scanning takes pointers into padding for return addresses: the idle threads walk differently."""
    g, t = score(walk("worker", caches, code_maps=False), theirs("worker"))
    assert g / t < 0.99


@needs_stackwalk
@pytest.mark.parametrize("name", DUMPS)
def test_truth_rederived_from_the_tools(name: str, tmp_path: Path) -> None:
    for pdb in PDBS:
        sym = subprocess.run([str(DUMP_SYMS), str(pdb)], check=True, capture_output=True, text=True).stdout
        _, _, _, debug_id, debug_file = sym.splitlines()[0].split()
        folder = tmp_path / debug_file / debug_id
        folder.mkdir(parents=True)
        (folder / debug_file.replace(".pdb", ".sym")).write_text(sym)
    out = subprocess.run([str(STACKWALK), "--json", "--symbols-path", str(tmp_path), str(W / "dumps" / f"{name}.dmp")],
                         check=True, capture_output=True, text=True).stdout
    assert [walked_addresses(t["frames"]) for t in json.loads(out)["threads"]] == theirs(name)


# ------------------------------------------------------------------------------------ answers

def assert_answer_like_stackwalk(name: str, body: dict[str, Any]) -> None:
    """Every answered frame equals minidump-stackwalk's at its position (address, trust; function
    without the parameter list dump_syms adds from the PDB's types, and line); a frame the answer
    leaves out is a scanned one that names nothing (Symbolicator's post-filter), and at most 1 %."""
    t = truth(name)
    assert body["crash_reason"] == t["crash_info"]["type"]
    assert body["system_info"]["os_name"] == "Windows" and body["system_info"]["cpu_arch"] == "x86_64"
    traces = body["stacktraces"]
    assert [x["thread_id"] for x in traces] == [x["thread_id"] for x in t["threads"]]
    assert [x["is_requesting"] for x in traces] == [i == t["crash_info"]["crashing_thread"] for i in range(len(traces))]
    equal = total = named = 0
    for ours, th in zip(traces, t["threads"], strict=True):
        by_index: dict[int, dict[str, Any]] = {}
        for f in ours["frames"]:
            by_index.setdefault(f["original_index"], f)
        assert max(by_index, default=-1) < len(th["frames"])
        for i, (frame, walked) in enumerate(zip(th["frames"], walked_addresses(th["frames"]), strict=True)):
            total += 1
            got = by_index.get(i)
            if got is None:
                assert walked[1] == "scan" and (frame.get("function") or "<unknown").startswith("<unknown"), (name, i)
                continue
            assert (int(got["instruction_addr"], 16), got["trust"]) == walked, (name, i)
            equal += 1
            if frame.get("function") and not frame["function"].startswith("<unknown"):
                assert ((got.get("function") or "").split("(")[0], got.get("lineno")) == \
                    (frame["function"].split("(")[0], frame.get("line"))
                named += 1
    assert equal / total >= 0.99 or total - equal <= 1, f"{equal} of {total}"
    assert named >= 5
    modules = {Path(m["code_file"].replace("\\", "/")).name: m for m in body["modules"]}
    for exe in ("crasher.exe", "crashlib.dll"):
        assert modules[exe]["type"] == "pe" and modules[exe]["unwind_status"] == "found"
    assert modules["crasher.exe"]["debug_status"] == "found"
    assert modules["ntdll.dll"]["unwind_status"] == "missing"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The images and PDBs uploaded by sentry-cli, as a Windows build's are."""
    work = tmp_path_factory.mktemp("minidump-windows")
    rights = {"scopes": ["acme/web"], "rights": ["upload", "symbolicate"]}
    service = start_service(work / "svc", auth={"tokens": {"sntryu_test": rights}})  # tools.sentry_cli's token
    try:
        out = sentry_cli(service, work, "debug-files", "upload", "--wait", str(W / "out"))
        assert all(p.name in out for p in IMAGES + PDBS), out
        yield service
    finally:
        service.stop()


@pytest.mark.parametrize("name", DUMPS)
def test_minidump_endpoint(svc: ServiceProcess, name: str) -> None:
    r = post_dump(svc, (W / "dumps" / f"{name}.dmp").read_bytes())
    assert r.status_code == 200, r.text
    assert_answer_like_stackwalk(name, r.json())


def test_cli(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "symbolicator", "symbolicate", str(W / "dumps/worker.dmp"),
                          "--symbols", str(W / "out"), "--json"], check=True, capture_output=True, text=True).stdout
    assert_answer_like_stackwalk("worker", json.loads(out))


@needs_dump_syms
def test_cli_with_only_sym_files(tmp_path: Path) -> None:
    """Only dump_syms' `.sym` files (STACK CFI from the PE unwind tables, FUNC/PUBLIC from the
    PDBs): the same frames and names as minidump-stackwalk on the same files."""
    for pdb in PDBS:
        sym = subprocess.run([str(DUMP_SYMS), str(pdb)], check=True, capture_output=True, text=True).stdout
        (tmp_path / pdb.with_suffix(".sym").name).write_text(sym)
    for name in DUMPS:
        out = subprocess.run([sys.executable, "-m", "symbolicator", "symbolicate", str(W / "dumps" / f"{name}.dmp"),
                              "--symbols", str(tmp_path), "--json"], check=True, capture_output=True, text=True).stdout
        assert_answer_like_stackwalk(name, json.loads(out))
