"""`symbolicator resolve` as a user runs it: a real subprocess, real fixtures, API.md §4's output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "fixtures" / "native" / "out"
EXPECTED = Path(__file__).parent / "fixtures" / "native" / "expected"


def resolve(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "symbolicator", "resolve", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def _inlined_address(name: str, depth: int = 3) -> tuple[str, list[dict[str, Any]]]:
    """An address whose recorded llvm-symbolizer answer has `depth` frames or more, frames decoded."""
    doc = json.loads((EXPECTED / f"{name}.json").read_text())
    strings = doc["strings"]
    for entry in doc["lookups"]:
        if len(entry["frames"]) >= depth:
            frames = [{"function": strings[f], "file": strings[p], "line": line, "column": col}
                      for f, p, line, col in entry["frames"]]
            return entry["address"], frames
    raise AssertionError(f"{name}: no inline chain of depth {depth}")


def test_json_lines_match_the_contract_for_an_inline_chain() -> None:
    address, truth = _inlined_address("cpp_gcc_O3_dwarf5")
    plain = address[2:].upper()  # no 0x, upper case: still a hex address
    run = resolve("--debug-file", str(OUT / "elf" / "cpp_gcc_O3_dwarf5"), "--json", plain, "0x0")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["address"] == address and second == {"address": "0x0", "frames": []}
    frames = first["frames"]
    assert [f["line"] for f in frames] == [t["line"] or None for t in truth]
    assert [f["inlined"] for f in frames] == [True] * (len(frames) - 1) + [False]
    for f in frames:
        assert set(f) == {"function", "symbol", "file", "line", "column", "inlined"}
        assert f["column"] is None or f["column"] > 0


def test_addresses_from_stdin_in_input_order() -> None:
    run = resolve("--debug-file", str(OUT / "elf" / "c_gcc_O2_dwarf5"), "--json", stdin="0x0\n\n  0x10  \n0x0\n")
    assert run.returncode == 0
    assert [json.loads(x)["address"] for x in run.stdout.splitlines()] == ["0x0", "0x10", "0x0"]


def test_plain_output_looks_like_llvm_symbolizer() -> None:
    address, truth = _inlined_address("c_clang_O2_dwarf5", depth=2)
    run = resolve("--debug-file", str(OUT / "elf" / "c_clang_O2_dwarf5"), address, "0x0")
    assert run.returncode == 0
    blocks = run.stdout.split("\n\n")
    lines = blocks[0].splitlines()
    assert lines[0] == truth[0]["function"]
    assert lines[1].endswith(f":{truth[0]['line']}:{truth[0]['column']}")
    assert len(lines) == 2 * len(truth)
    assert blocks[1].splitlines() == ["??", "??:0:0"]


def test_fat_file_without_arch_is_a_usage_error_listing_the_arches() -> None:
    run = resolve("--debug-file", str(OUT / "macho" / "app_fat.dSYM"), "0x100004000")
    assert run.returncode == 2
    assert "x86_64" in run.stderr and "arm64" in run.stderr
    ok = resolve("--debug-file", str(OUT / "macho" / "app_fat.dSYM"), "--arch", "arm64", "--json", "0x100004000")
    assert ok.returncode == 0 and json.loads(ok.stdout)["frames"]


def test_macho_binary_finds_its_dsym_beside_it() -> None:
    address, truth = _inlined_address("app_arm64")
    run = resolve("--debug-file", str(OUT / "macho" / "app_arm64"), "--json", address)
    assert run.returncode == 0
    assert [f["function"] for f in json.loads(run.stdout)["frames"]] == [t["function"] for t in truth]


def test_stripped_binary_follows_its_debuglink() -> None:
    address, truth = _inlined_address("cpp_gcc_split")
    run = resolve("--debug-file", str(OUT / "elf" / "split" / "cpp_gcc_split"), "--json", address)
    assert run.returncode == 0
    assert [f["line"] for f in json.loads(run.stdout)["frames"]] == [t["line"] or None for t in truth]


def test_exit_codes() -> None:
    elf = str(OUT / "elf" / "c_gcc_O2_dwarf5")
    assert resolve("--debug-file", elf, "0xnothex").returncode == 1  # bad input, not usage (issue 17 item 7)
    assert resolve("--debug-file", elf, "--arch", "z80", "0x1").returncode == 2
    assert resolve("0x1").returncode == 2
    missing = resolve("--debug-file", "/nonexistent/file", "0x1")
    assert missing.returncode == 1 and "nonexistent" in missing.stderr
    not_an_object = resolve("--debug-file", str(EXPECTED / "crash.json"), "0x1")
    assert not_an_object.returncode == 1 and "Traceback" not in not_an_object.stderr


def test_malformed_debug_file_exits_1_without_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.write_bytes((OUT / "elf" / "c_gcc_O2_dwarf5").read_bytes()[:3000])
    run = resolve("--debug-file", str(broken), "0x1")
    assert run.returncode == 1 and "Traceback" not in run.stderr and run.stderr.strip()
