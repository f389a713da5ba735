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

from tests.test_dwarf_accuracy import normalise

WASM = Path(__file__).parent / "fixtures" / "wasm"
OUT = WASM / "out"
EXPECTED = json.loads((WASM / "expected.json").read_text())
REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "symbolicator", *args, "--no-cache"], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)


def llvm(offset: int) -> list[tuple[str | None, str | None, int | None]]:
    entry = next(a for a in EXPECTED["addresses"] if a["offset"] == offset)
    return [normalise(f["function"], f["file"], f["line"]) for f in entry["frames"]]


def chain(frames: list[dict[str, Any]], file_key: str = "file", line_key: str = "line") -> list[Any]:
    return [normalise(f.get("function"), f.get(file_key), f.get(line_key)) for f in frames]


def test_resolve_takes_module_offsets_like_a_runtime_reports() -> None:
    offsets = [a["offset"] for a in EXPECTED["addresses"] if a["frames"]]
    out = cli("resolve", "--debug-file", str(OUT / "app.debug.wasm"), "--json", *map(hex, offsets))
    assert out.returncode == 0, out.stderr
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    assert [chain(a["frames"]) for a in answers] == [llvm(o) for o in offsets]


def test_resolve_on_the_deployed_module_follows_external_debug_info(tmp_path: Path) -> None:
    """`app.wasm` names `app.debug.wasm` (same build_id) beside it; alone, only its `name` section answers."""
    trap = 0x132
    out = cli("resolve", "--debug-file", str(OUT / "app.wasm"), "--json", hex(trap))
    assert chain(json.loads(out.stdout)["frames"]) == llvm(trap)
    shutil.copy(OUT / "app.wasm", tmp_path / "app.wasm")
    alone = cli("resolve", "--debug-file", str(tmp_path / "app.wasm"), "--json", hex(trap))
    assert [(f["function"], f["line"]) for f in json.loads(alone.stdout)["frames"]] == [("outer", None)]
    (tmp_path / "app.debug.wasm").write_bytes((OUT / "app.debug.wasm").read_bytes().replace(
        bytes.fromhex(EXPECTED["build_id"]), bytes(16)))  # another build: not its debug file
    other = cli("resolve", "--debug-file", str(tmp_path / "app.wasm"), "--json", hex(trap))
    assert [(f["function"], f["line"]) for f in json.loads(other.stdout)["frames"]] == [("outer", None)]


def test_symbolicate_a_real_v8_trace() -> None:
    out = cli("symbolicate", str(WASM / "trace.txt"), "--symbols", str(OUT), "--json")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["modules"][0]["debug_status"] == "found"
    frames = body["stacktraces"][0]["frames"]
    got = [chain([f for f in frames if f["original_index"] == i], "abs_path", "lineno") for i in (0, 1)]
    assert got == [llvm(0x132), llvm(0x273)]

    text = cli("symbolicate", str(WASM / "trace.txt"), "--symbols", str(OUT))
    lines = text.stdout.splitlines()
    assert lines[2:6] == ["    at leaf (/fixtures/wasm/src/app.c:8)", "    at middle (/fixtures/wasm/src/app.c:14)",
                          "    at outer (/fixtures/wasm/src/app.c:18)", "    at run (/fixtures/wasm/src/app.c:46)"]
    assert lines[6].startswith("    at jsCaller (file://")  # JS frames stay as they were


def test_trace_without_names_and_with_an_unknown_module(tmp_path: Path) -> None:
    """V8's form for a module without a `name` section; a module that is not in the folders is reported."""
    nameless = "RuntimeError: unreachable\n    at wasm://wasm/3eb9ec7e:wasm-function[1]:0x132\n"
    (tmp_path / "t.txt").write_text(nameless)
    out = cli("symbolicate", str(tmp_path / "t.txt"), "--symbols", str(OUT))
    assert out.stdout.splitlines()[1:] == ["    at leaf (/fixtures/wasm/src/app.c:8)",
                                           "    at middle (/fixtures/wasm/src/app.c:14)",
                                           "    at outer (/fixtures/wasm/src/app.c:18)"]
    (tmp_path / "t.txt").write_text(nameless.replace("[1]:0x132", "[9]:0x132"))
    missing = cli("symbolicate", str(tmp_path / "t.txt"), "--symbols", str(OUT))
    assert missing.returncode == 0
    assert missing.stdout.splitlines()[1] == "    at wasm://wasm/3eb9ec7e:wasm-function[9]:0x132"
    assert "no wasm module in the folders has these functions" in missing.stderr


def test_caller_frames_are_not_adjusted(tmp_path: Path) -> None:
    """V8 reports a caller's `call` instruction itself: a caller frame at an offset whose byte before
    belongs to another line must answer for the offset as given (a −1 would give the other line)."""
    offsets = {a["offset"] for a in EXPECTED["addresses"] if a["frames"]}
    edge = next(o for o in sorted(offsets) if o - 1 in offsets and llvm(o - 1) != llvm(o) and o > 0x140)
    index = sum(1 for start in EXPECTED["functions"] if int(start) <= edge) - 1
    trace = ("RuntimeError: unreachable\n    at outer (wasm://wasm/504654ea:wasm-function[1]:0x132)\n"
             f"    at wasm://wasm/504654ea:wasm-function[{index}]:{edge:#x}\n")
    (tmp_path / "t.txt").write_text(trace)
    out = cli("symbolicate", str(tmp_path / "t.txt"), "--symbols", str(OUT), "--json")
    frames = json.loads(out.stdout)["stacktraces"][0]["frames"]
    assert chain([f for f in frames if f["original_index"] == 1], "abs_path", "lineno") == llvm(edge)
