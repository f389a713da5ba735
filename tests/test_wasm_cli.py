"""The offline CLI on WebAssembly: `resolve --debug-file` and `symbolicate trace.txt` (issue 16).

Truth: llvm-symbolizer's answers at each module offset (`fixtures/wasm/expected.json`) and the
real V8 trace node printed for the deployed module (`fixtures/wasm/trace.txt`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.wasm import OUT, WASM, expected, key, llvm_at, trace_offset, trace_text

EXPECTED = expected()
REPO = Path(__file__).resolve().parents[1]
TRAP = trace_offset(1)  # V8's `unreachable` in `outer`


@pytest.fixture
def one_build(tmp_path: Path) -> Path:
    """The deployed module and its debug file, without the DWARF 5 build of the same code (which
    fits the same frames: `symbolicate` cannot tell them apart and says so)."""
    folder = tmp_path / "symbols"
    folder.mkdir()
    for name in ("app.wasm", "app.debug.wasm"):
        shutil.copy(OUT / name, folder / name)
    return folder


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "symbolicator", *args, "--no-cache"], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)


def v8_lines(offset: int) -> list[str]:
    """llvm-symbolizer's frames at `offset` written as `symbolicate` writes a resolved V8 frame."""
    entry = next(a for a in EXPECTED["addresses"] if a["offset"] == offset)
    return [f"    at {f['function']} ({f['file']}:{f['line']})" for f in entry["frames"]]


def chain(frames: list[dict[str, Any]], file_key: str = "file", line_key: str = "line") -> list[Any]:
    return [key(f.get("function"), f.get(file_key), f.get(line_key)) for f in frames]


def test_resolve_takes_module_offsets_like_a_runtime_reports() -> None:
    offsets = [a["offset"] for a in EXPECTED["addresses"] if a["frames"]]
    out = cli("resolve", "--debug-file", str(OUT / "app.debug.wasm"), "--json", *map(hex, offsets))
    assert out.returncode == 0, out.stderr
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    assert [chain(a["frames"]) for a in answers] == [llvm_at(o) for o in offsets]


def test_resolve_on_the_deployed_module_follows_external_debug_info(tmp_path: Path) -> None:
    """`app.wasm` names `app.debug.wasm` (same build_id) beside it; alone, only its `name` section answers."""
    trap = TRAP
    out = cli("resolve", "--debug-file", str(OUT / "app.wasm"), "--json", hex(trap))
    assert chain(json.loads(out.stdout)["frames"]) == llvm_at(trap)
    shutil.copy(OUT / "app.wasm", tmp_path / "app.wasm")
    alone = cli("resolve", "--debug-file", str(tmp_path / "app.wasm"), "--json", hex(trap))
    assert [(f["function"], f["line"]) for f in json.loads(alone.stdout)["frames"]] == [("outer", None)]
    (tmp_path / "app.debug.wasm").write_bytes((OUT / "app.debug.wasm").read_bytes().replace(
        bytes.fromhex(EXPECTED["build_id"]), bytes(16)))  # another build: not its debug file
    other = cli("resolve", "--debug-file", str(tmp_path / "app.wasm"), "--json", hex(trap))
    assert [(f["function"], f["line"]) for f in json.loads(other.stdout)["frames"]] == [("outer", None)]


def test_symbolicate_a_real_v8_trace(one_build: Path) -> None:
    out = cli("symbolicate", str(WASM / "trace.txt"), "--symbols", str(one_build), "--json")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["modules"][0]["debug_status"] == "found"
    frames = body["stacktraces"][0]["frames"]
    got = [chain([f for f in frames if f["original_index"] == i], "abs_path", "lineno") for i in (0, 1)]
    assert got == [llvm_at(TRAP), llvm_at(trace_offset(4))]

    text = cli("symbolicate", str(WASM / "trace.txt"), "--symbols", str(one_build))
    lines = text.stdout.splitlines()
    caller = trace_offset(4)
    assert lines[2:6] == v8_lines(TRAP) + v8_lines(caller)
    assert [f.split(" (")[0] for f in lines[2:6]] == ["    at leaf", "    at middle", "    at outer", "    at run"]
    assert lines[6].startswith("    at jsCaller (file://")  # JS frames stay as they were


def test_trace_without_names_and_with_an_unknown_module(tmp_path: Path, one_build: Path) -> None:
    """V8's form for a module without a `name` section; a module that is not in the folders is reported."""
    nameless = f"RuntimeError: unreachable\n    at wasm://wasm/3eb9ec7e:wasm-function[1]:{TRAP:#x}\n"
    (tmp_path / "t.txt").write_text(nameless)
    out = cli("symbolicate", str(tmp_path / "t.txt"), "--symbols", str(one_build))
    assert out.stdout.splitlines()[1:] == v8_lines(TRAP)
    (tmp_path / "t.txt").write_text(nameless.replace("[1]:", "[99]:"))
    missing = cli("symbolicate", str(tmp_path / "t.txt"), "--symbols", str(one_build))
    assert missing.returncode == 0
    assert missing.stdout.splitlines()[1] == f"    at wasm://wasm/3eb9ec7e:wasm-function[99]:{TRAP:#x}"
    assert "no wasm module in the folders has these functions" in missing.stderr


def test_two_builds_of_the_same_code_are_not_guessed_between() -> None:
    """`out/` also holds the DWARF 5 build: the same bodies at the same offsets, another build id."""
    out = cli("symbolicate", str(WASM / "trace.txt"), "--symbols", str(OUT))
    assert out.returncode == 0
    assert "2 wasm builds in the folders fit its frames" in out.stderr
    assert out.stdout == trace_text()


def test_caller_frames_are_not_adjusted(tmp_path: Path, one_build: Path) -> None:
    """V8 reports a caller's `call` instruction itself: a caller frame at an offset whose byte before
    belongs to another line must answer for the offset as given (a −1 would give the other line)."""
    offsets = {a["offset"] for a in EXPECTED["addresses"] if a["frames"]}
    outer_end = min(int(start) for start, name in EXPECTED["functions"].items() if int(start) > TRAP)
    edge = next(o for o in sorted(offsets) if o - 1 in offsets and llvm_at(o - 1) != llvm_at(o) and o > outer_end)
    index = sum(1 for start in EXPECTED["functions"] if int(start) <= edge) - 1
    trace = (f"RuntimeError: unreachable\n    at outer (wasm://wasm/504654ea:wasm-function[1]:{TRAP:#x})\n"
             f"    at wasm://wasm/504654ea:wasm-function[{index}]:{edge:#x}\n")
    (tmp_path / "t.txt").write_text(trace)
    out = cli("symbolicate", str(tmp_path / "t.txt"), "--symbols", str(one_build), "--json")
    frames = json.loads(out.stdout)["stacktraces"][0]["frames"]
    assert chain([f for f in frames if f["original_index"] == 1], "abs_path", "lineno") == llvm_at(edge)


def test_v8_names_with_spaces_and_parentheses() -> None:
    """A demangled C++ name in the `name` section is printed as is: the URL is the last `(`."""
    from symbolicator.native.wasm.trace import parse_wasm_frames

    text = "    at ns::f(int) const (anonymous namespace) (wasm://wasm/app-1a2b3c4d:wasm-function[12]:0x1f0)\n"
    frame = parse_wasm_frames(text)[0]
    assert (frame.name, frame.module_url, frame.function_index, frame.offset) == \
        ("ns::f(int) const (anonymous namespace)", "wasm://wasm/app-1a2b3c4d", 12, 0x1F0)
