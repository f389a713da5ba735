"""PE images through the service (issue 16): uploaded by the real sentry-cli (3.x and 2.x) and by
`symbolicator upload`, stored under their ids, found by debug id for `type: "pe"` modules, and
found on a `symstore` source, where a file of another GUID or a lower age is refused.

With no PDB the exe answers from its own exports (app.exe) and DWARF (mg.exe, MinGW): truth is
llvm-symbolizer on a copy of the exe whose CodeView entry is retyped, so that it reads the same
DWARF instead of asking for the PDB (`tests/test_pe.py::without_codeview`). What needs the PDB
reader is in tests/test_pe_service.py.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from symbolicator import keys
from symbolicator.types import CodeId, ObjectKind, Scope
from tests.support.native_service import (
    SCOPE,
    TOKEN,
    by_original_index,
    llvm_symbolize,
    native_settings,
    needs_llvm,
    ours,
    start_service,
    symbolicate,
)
from tests.support.service import ServiceProcess
from tests.support.tools import SENTRY_CLI, SENTRY_CLI_2
from tests.test_pe import without_codeview

PE = Path(__file__).parent / "fixtures" / "pe"
APP, MG = PE / "app.exe", PE / "mg.exe"
APP_DEBUG_ID, APP_CODE_ID = "58a7559e-63b7-40ac-4c4c-44205044422e-1", "a81e53c66000"
MG_DEBUG_ID, MG_CODE_ID = "54c5e736-53c3-1484-4c4c-44205044422e-1", "5d72a35b3c000"
IMAGE_BASE = 0x1_4000_0000
IMAGE_ADDR = 0x7FF6_A000_0000  # where Windows' ASLR put the image in the crashed process
EXPORTED_ENTRY = 0x10A0  # RVA, llvm-readobj --coff-exports


def pe_module(debug_id: str = APP_DEBUG_ID, code_id: str = APP_CODE_ID, name: str = "app",
              image_size: int = 0x6000) -> dict[str, Any]:
    """A module as a Windows minidump / Sentry's native SDK reports it."""
    return {"type": "pe", "debug_id": debug_id, "debug_file": f"C:\\build\\{name}.pdb", "code_id": code_id,
            "code_file": f"C:\\Program Files\\Demo\\{name}.exe", "image_addr": hex(IMAGE_ADDR),
            "image_size": image_size}


def request(module: dict[str, Any], rvas: list[int]) -> dict[str, Any]:
    return {"stacktraces": [{"frames": [{"instruction_addr": hex(IMAGE_ADDR + r), "adjust_instruction_addr": False}
                                        for r in rvas]}],
            "modules": [module], "options": {"dif_candidates": True}}


def run_upload(uploader: str, svc: ServiceProcess, work: Path, *files: Path) -> str:
    if uploader == "symbolicator":
        cmd = [sys.executable, "-m", "symbolicator", "upload", "--url", svc.url, "--token", TOKEN, "--scope", SCOPE,
               "--wait", "--no-progress", *map(str, files)]
        env = None
    else:
        cli = SENTRY_CLI if uploader == "sentry-cli" else SENTRY_CLI_2
        cmd = [*cli, "debug-files", "upload", "--wait", *map(str, files)]
        env = {"PATH": os.environ["PATH"], "HOME": str(work), "SENTRY_URL": svc.url, "SENTRY_AUTH_TOKEN": TOKEN,
               "SENTRY_ORG": "acme", "SENTRY_PROJECT": "web", "SENTRY_DISABLE_UPDATE_CHECK": "true",
               "SENTRY_NO_PROGRESS_BAR": "1", "SENTRY_LOAD_DOTENV": "0"}
    out = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True, timeout=180, check=False)
    assert out.returncode == 0, out.stdout + out.stderr + svc.log()
    return out.stdout + out.stderr


@needs_llvm
@pytest.mark.parametrize("uploader", ["sentry-cli", "sentry-cli-2", "symbolicator"])
def test_uploaded_exes_answer_from_exports_and_dwarf(uploader: str, tmp_path: Path) -> None:
    """sentry-cli 2.x uploads PE files only when the server's chunk-upload options list `pdbs`."""
    svc = start_service(tmp_path / "svc")
    try:
        printed = run_upload(uploader, svc, tmp_path, APP, MG)
        root = tmp_path / "svc" / "uploads"
        for debug_id in (APP_DEBUG_ID, MG_DEBUG_ID):
            stored_id = debug_id.replace("-", "")
            key = keys.debug_file(Scope(SCOPE), CodeId(stored_id), ObjectKind.EXECUTABLE)
            assert (root / key).is_file(), (key, printed)
        assert (root / keys.debug_file(Scope(SCOPE), CodeId("58a7559e63b740ac4c4c44205044422e1"),
                                       ObjectKind.EXECUTABLE)).read_bytes() == APP.read_bytes()

        rvas = [EXPORTED_ENTRY, EXPORTED_ENTRY + 0x28, 0x1129, 0x112A]
        app = symbolicate(svc, request(pe_module(), rvas)).json()
        (module,) = app["modules"]
        assert module["debug_status"] == "found", module
        assert module["features"] == {"has_debug_info": False, "has_unwind_info": True, "has_symbols": True,
                                      "has_sources": False}
        frames = app["stacktraces"][0]["frames"]
        assert [(f["status"], f.get("function")) for f in frames] == [
            ("symbolicated", "exported_entry"), ("symbolicated", "exported_entry"),
            ("symbolicated", "exported_entry"), ("missing_symbol", None)]  # .text ends at RVA 0x112A
        assert frames[1]["sym_addr"] == hex(IMAGE_ADDR + EXPORTED_ENTRY)

        text_rvas = list(range(0x1000, 0x7000, 0x61))
        mg = symbolicate(svc, request(pe_module(MG_DEBUG_ID, MG_CODE_ID, "mg", 0x3C000), text_rvas)).json()
    finally:
        svc.stop()
    assert mg["modules"][0]["debug_status"] == "found"
    assert mg["modules"][0]["features"]["has_debug_info"] is True
    truth = llvm_symbolize(without_codeview(MG, tmp_path / "mg.exe"), [IMAGE_BASE + r for r in text_rvas])
    groups = by_original_index(mg["stacktraces"][0]["frames"])
    compared = 0
    for i, want in enumerate(truth):
        if want:
            assert ours(groups[i]) == want, hex(text_rvas[i])
            compared += 1
    assert compared >= 50


# ------------------------------------------------------------------------------------------ symstore sources

def patched(data: bytes, *, guid_byte: int | None = None, age: int | None = None) -> bytes:
    """The exe with its CodeView record changed: one GUID byte flipped, or another age."""
    out = bytearray(data)
    at = out.index(b"RSDS")
    if guid_byte is not None:
        out[at + 4 + guid_byte] ^= 0xFF
    if age is not None:
        struct.pack_into("<I", out, at + 20, age)
    return bytes(out)


def symstore(root: Path, data: bytes) -> None:
    """app.exe where a Microsoft symbol server keeps it: `<name>/<TIMESTAMP><SizeOfImage>/<name>`."""
    target = root / "app.exe" / "A81E53C66000" / "app.exe"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


@pytest.mark.parametrize(("stored", "requested_age", "status"), [
    ("same", 1, "found"),
    ("age 2", 1, "found"),  # a later rebuild of the same PDB GUID: Microsoft's servers answer it, so does Symbolicator
    ("age 2", 3, "malformed"),  # a lower age than asked for: refused
    ("other guid", 1, "malformed"),
])
def test_symstore_source_refuses_another_guid_or_a_lower_age(service_factory: Any, tmp_path: Path, stored: str,
                                                            requested_age: int, status: str) -> None:
    data = APP.read_bytes()
    symstore(tmp_path / "symbols", {"same": data, "age 2": patched(data, age=2),
                                    "other guid": patched(data, guid_byte=3)}[stored])
    source = {"id": "winsyms", "type": "filesystem", "path": str(tmp_path / "symbols"), "layout": {"type": "symstore"}}
    svc = service_factory(native_settings(tmp_path / "svc", sources=[source]))
    debug_id = APP_DEBUG_ID[:-1] + f"{requested_age:x}"
    answer = symbolicate(svc, request(pe_module(debug_id), [EXPORTED_ENTRY])).json()
    (module,) = answer["modules"]
    assert module["debug_status"] == status, module
    looked = [c for c in module["candidates"] if c["source"] == "winsyms"]
    assert [c["location"] for c in looked][-1] == (tmp_path / "symbols/app.exe/A81E53C66000/app.exe").as_uri()
    frame = answer["stacktraces"][0]["frames"][0]
    if status == "found":
        assert frame["function"] == "exported_entry"
    else:
        assert frame["status"] == "malformed" and "function" not in frame
        (refused,) = [c for c in looked if c["download"]["status"] == "malformed"]
        assert f"debug_id={debug_id}" in refused["download"]["details"]


def test_pdb_is_asked_for_before_the_exe(service_factory: Any, tmp_path: Path) -> None:
    """PDB > PE, as Symbolicator prefers: the PDB path is tried first (nothing there), then the exe."""
    symstore(tmp_path / "symbols", APP.read_bytes())
    source = {"id": "winsyms", "type": "filesystem", "path": str(tmp_path / "symbols"), "layout": {"type": "symstore"}}
    svc = service_factory(native_settings(tmp_path / "svc", sources=[source]))
    (module,) = symbolicate(svc, request(pe_module(), [EXPORTED_ENTRY])).json()["modules"]
    locations = [c["location"] for c in module["candidates"] if c["source"] == "winsyms"]
    root = tmp_path / "symbols"
    assert locations == [(root / "app.pdb/58A7559E63B740AC4C4C44205044422E1/app.pdb").as_uri(),
                         (root / "app.exe/A81E53C66000/app.exe").as_uri()]
