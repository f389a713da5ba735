"""WebAssembly debug files against llvm-symbolizer and symbolic (issue 16, WebAssembly).

`tests/fixtures/wasm/expected.json` (DWARF 4), `expected-dwarf5.json` and `expected-gc.json` (only
`run` exported, unused code collected) hold llvm-symbolizer's answers at every instruction offset
and function start of the fixture's three debug files (two compile units each; recorded by
`record.py`, re-derived in CI by the check-mode test below). Our symcache is looked up at the
*module offset*, llvm-symbolizer was asked at the DWARF address (offset − code payload start),
so these tests also pin the address shift. PyPI
`symbolic` (Sentry's library, a test oracle only) takes module offsets too: it must agree.
"""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from typing import Any

import pytest

from symbolicator.native.symcache import Frame, SymCache
from symbolicator.native.symcache_build import build
from tests.support.wasm import VARIANTS, WASM, Key, expected, key

TARGET = 0.995


@cache
def symcache(name: str = "expected.json") -> SymCache:
    return SymCache.from_bytes(build(WASM / expected(name)["debug_file"]))


def llvm_chain(frames: list[dict[str, Any]]) -> list[Key]:
    return [key(f["function"], f["file"], f["line"]) for f in frames]


def our_chain(frames: list[Frame]) -> list[Key]:
    return [key(f.function, f.file, f.line) for f in frames]


def test_expectations_are_current() -> None:
    """CI re-derives the trace (node) and the answers (llvm-symbolizer) from the committed files."""
    out = subprocess.run([sys.executable, str(WASM / "record.py"), "--check"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]


@pytest.mark.parametrize("name", VARIANTS)
def test_every_code_offset_agrees_with_llvm_symbolizer(name: str) -> None:
    doc = expected(name)
    lookups = [a for a in doc["addresses"] if a["frames"]]
    assert len(lookups) > 500  # every instruction of the functions that have DWARF
    first = chain = 0
    misses = []
    for entry in doc["addresses"]:
        want = llvm_chain(entry["frames"])
        got = our_chain(symcache(name).lookup(entry["offset"]))
        if not want:
            continue  # llvm-symbolizer knows nothing (no DWARF): checked against symbolic below
        first += want[:1] == got[:1]
        chain += want == got
        if want != got:
            misses.append(f"{entry['offset']:#x}: llvm {want} ours {got}")
    n = len(lookups)
    assert first / n >= TARGET and chain / n >= TARGET, "\n".join(misses[:20])
    assert any(len(e["frames"]) >= 4 for e in lookups)  # the fixture really has inline chains
    assert len({e["frames"][-1]["file"] for e in lookups}) == 2  # and two compile units


def test_the_shift_is_the_code_payload_offset() -> None:
    """A DWARF address looked up as if it were a module offset misses or lands elsewhere."""
    doc = expected()
    deep = next(e for e in doc["addresses"] if len(e["frames"]) >= 3)
    assert our_chain(symcache().lookup(deep["offset"])) == llvm_chain(deep["frames"])
    assert our_chain(symcache().lookup(deep["offset"] - doc["code_start"])) != llvm_chain(deep["frames"])


@pytest.mark.parametrize("name", VARIANTS)
def test_columns_and_function_starts(name: str) -> None:
    """Columns as llvm-symbolizer gives them; a function start (the locals declaration) is the function."""
    doc = expected(name)
    for entry in doc["addresses"]:
        if entry["frames"]:
            got = symcache(name).lookup(entry["offset"])
            assert [f.column or 0 for f in got] == [f["column"] for f in entry["frames"]], hex(entry["offset"])
    for offset, function in doc["functions"].items():
        got = symcache(name).lookup(int(offset))
        assert got and got[-1].function == function and got[-1].sym_addr == int(offset)


@pytest.mark.parametrize("name", VARIANTS)
def test_agrees_with_symbolic(name: str) -> None:
    """symbolic (a test oracle) at every offset: the same chain, including `__wasm_call_ctors`,
    which has no DWARF and is named by the `name` section alone."""
    symbolic = pytest.importorskip("symbolic")
    obj = next(symbolic.Archive.open(str(WASM / expected(name)["debug_file"])).iter_objects())
    theirs = obj.make_symcache()
    differ = []
    for entry in expected(name)["addresses"]:
        off = entry["offset"]
        want = [key(x.symbol, x.full_path, x.line) for x in theirs.lookup(off)]
        got = our_chain(symcache(name).lookup(off))
        if want != got:
            differ.append(f"{off:#x}: symbolic {want} ours {got}")
        if want and got:
            assert symcache(name).lookup(off)[-1].sym_addr == theirs.lookup(off)[-1].sym_addr, hex(off)
    assert not differ, "\n".join(differ[:20])


def test_collected_functions_never_answer() -> None:
    """`never_called` is dropped by wasm-ld in the gc build; its DWARF stays with a tombstone address
    (llvm-dwarfdump: "dead code"). No offset may be answered with it, and the shift must not move the
    tombstone onto real code."""
    dump = subprocess.run(["llvm-dwarfdump-14", "--debug-info", str(WASM / "out" / "app-gc.debug.wasm")],
                          capture_output=True, text=True, check=True).stdout
    entry = dump[dump.index('DW_AT_name\t("never_called")') - 400:dump.index('DW_AT_name\t("never_called")')]
    assert "DW_AT_low_pc\t(dead code)" in entry
    assert "never_called" in expected("expected.json")["functions"].values()
    assert "never_called" not in expected("expected-gc.json")["functions"].values()
    for e in expected("expected-gc.json")["addresses"]:
        assert all(f.function != "never_called" for f in symcache("expected-gc.json").lookup(e["offset"]))
