"""WebAssembly through the real service: uploaded with the real sentry-cli and `symbolicator upload`,
found by debug id, symbolicated as Sentry's JS SDK sends wasm frames (issue 16, WebAssembly).

The event is the one `@sentry/wasm` builds from V8's trace of the fixture (`trace.txt`): one
module `{type: "wasm", code_id: <build_id hex>, debug_id: <first 32 hex digits> + "0",
code_file: <module URL>, debug_file: <external_debug_info URL>}` with no `image_addr`, and
frames whose `instruction_addr` is the module offset V8 printed, `addr_mode: "rel:0"`. With the
image at 0 Symbolicator applies no caller adjustment (V8 reports the call instruction itself),
so neither do we. Truth: llvm-symbolizer's answers at those offsets (`expected.json`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from symbolicator import keys
from symbolicator.types import CodeId, ObjectKind
from tests.support.native_service import SCOPE, TOKEN, native_settings, start_service, symbolicate
from tests.support.service import ServiceProcess
from tests.support.tools import SENTRY_CLI
from tests.support.wasm import WASM, expected, key, llvm_at, trace_text

EXPECTED = expected()
BUILD_ID = EXPECTED["build_id"]
V8_FRAME = re.compile(r"^\s*at (?:(\S+) \()?wasm://wasm/[0-9a-f]+:wasm-function\[(\d+)\]:(0x[0-9a-f]+)\)?$")


def v8_frames() -> list[tuple[str | None, int]]:
    """(name, module offset) of each wasm frame of the committed V8 trace, innermost first."""
    out = []
    for line in trace_text().splitlines():
        if m := V8_FRAME.match(line):
            out.append((m.group(1), int(m.group(3), 16)))
    assert len(out) == 2
    return out


def sdk_event() -> dict[str, Any]:
    return {
        "platform": "native",
        "stacktraces": [{"frames": [{"instruction_addr": hex(off), "addr_mode": "rel:0", "function": name}
                                    for name, off in v8_frames()]}],
        "modules": [{"type": "wasm", "code_id": BUILD_ID, "debug_id": BUILD_ID + "0",
                     "code_file": "http://127.0.0.1:1/app.wasm", "debug_file": "http://127.0.0.1:1/app.debug.wasm"}],
    }


def upload_with(uploader: str, svc: ServiceProcess, folder: Path, work: Path) -> str:
    if uploader == "sentry-cli":
        env = {"PATH": os.environ["PATH"], "HOME": str(work), "SENTRY_URL": svc.url, "SENTRY_AUTH_TOKEN": TOKEN,
               "SENTRY_ORG": "acme", "SENTRY_PROJECT": "web", "SENTRY_DISABLE_UPDATE_CHECK": "true",
               "SENTRY_NO_PROGRESS_BAR": "1", "SENTRY_LOAD_DOTENV": "0"}
        cmd = [*SENTRY_CLI, "debug-files", "upload", "--wait", str(folder)]
    else:
        env = {**os.environ}
        cmd = [sys.executable, "-m", "symbolicator", "upload", "--url", svc.url, "--token", TOKEN, "--scope", SCOPE,
               "--wait", "--no-progress", str(folder)]
    out = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True, timeout=180, check=False)
    assert out.returncode == 0, out.stdout + out.stderr + svc.log()
    return out.stdout + out.stderr


@pytest.fixture(params=["sentry-cli", "symbolicator"])
def uploaded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServiceProcess]:
    svc = start_service(tmp_path / "svc")
    try:
        upload_with(request.param, svc, WASM / "out", tmp_path)
        yield svc
    finally:
        svc.stop()


def test_uploaded_and_symbolicated_like_llvm_symbolizer(uploaded: ServiceProcess) -> None:
    svc = uploaded
    root = Path(svc.settings["storage"]["local_dir"])
    assert (root / keys.debug_file(SCOPE, CodeId(BUILD_ID), ObjectKind.DEBUGINFO)).is_file()
    assert (root / keys.debug_file(SCOPE, CodeId(BUILD_ID), ObjectKind.EXECUTABLE)).is_file()
    r = symbolicate(svc, sdk_event())
    assert r.status_code == 200, r.text
    body = r.json()
    module = body["modules"][0]
    assert module["debug_status"] == "found" and module["arch"] == "wasm32", module
    assert module["features"]["has_debug_info"] is True
    frames = body["stacktraces"][0]["frames"]
    for index, (_name, offset) in enumerate(v8_frames()):
        group = [f for f in frames if f["original_index"] == index]
        got = [key(f.get("function"), f.get("abs_path"), f.get("lineno")) for f in group]
        assert got == llvm_at(offset), (hex(offset), group)
        assert all(f["instruction_addr"] == hex(offset) and f["addr_mode"] == "rel:0" for f in group)
        assert all(f["status"] == "symbolicated" and f["package"].endswith("app.wasm") for f in group)
    assert len([f for f in frames if f["original_index"] == 0]) == 3  # leaf → middle → outer
    starts = {name: int(offset) for offset, name in EXPECTED["functions"].items()}
    assert [f.get("sym_addr") for f in frames] == [None, None, hex(starts["outer"]), hex(starts["run"])]


def test_only_the_deployed_module_gives_names_without_lines(tmp_path: Path) -> None:
    """With only the stripped module uploaded (its `name` section, no DWARF), frames get the function
    names V8 printed and no file or line, like symbolic."""
    svc = start_service(tmp_path / "svc")
    try:
        only = tmp_path / "only"
        only.mkdir()
        (only / "app.wasm").write_bytes((WASM / "out" / "app.wasm").read_bytes())
        upload_with("symbolicator", svc, only, tmp_path)
        body = symbolicate(svc, sdk_event()).json()
    finally:
        svc.stop()
    frames = body["stacktraces"][0]["frames"]
    assert [(f.get("function"), f.get("lineno")) for f in frames] == [(n, None) for n, _ in v8_frames()]
    assert body["modules"][0]["features"] == {"has_debug_info": False, "has_unwind_info": False,
                                              "has_symbols": True, "has_sources": False}


@pytest.mark.parametrize(("layout", "rel"), [
    ("native", f"{BUILD_ID[:2]}/{BUILD_ID[2:]}.debug"),  # GDB build-id path, as Symbolicator's paths.rs for wasm
    ("unified", f"{BUILD_ID[:2]}/{BUILD_ID[2:]}/debuginfo"),
])
def test_found_on_an_external_source(service_factory: Any, tmp_path: Path, layout: str, rel: str) -> None:
    """A module nobody uploaded, on a configured folder source laid out by hand from the documented rule."""
    target = tmp_path / "symbols" / rel
    target.parent.mkdir(parents=True)
    target.write_bytes((WASM / "out" / "app.debug.wasm").read_bytes())
    source = {"id": "wasm-symbols", "type": "filesystem", "path": str(tmp_path / "symbols"), "layout": {"type": layout}}
    svc = service_factory(native_settings(tmp_path / "svc", sources=[source]))
    body = {**sdk_event(), "options": {"dif_candidates": True}}
    answer = symbolicate(svc, body).json()
    module = answer["modules"][0]
    assert module["debug_status"] == "found", module
    assert module["candidates"][-1]["location"] == target.as_uri()
    frames = answer["stacktraces"][0]["frames"]
    assert [key(f.get("function"), f.get("abs_path"), f.get("lineno")) for f in frames] == \
        llvm_at(v8_frames()[0][1]) + llvm_at(v8_frames()[1][1])
