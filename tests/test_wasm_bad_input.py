"""Truncated and hostile WebAssembly modules: typed errors, bounded work, nothing stored (issue 16).

Every prefix of the fixture either reads as the module it still is (a cut at a section
boundary) or is `MalformedObject`; sizes, counts and LEB128s that claim more than the file
holds are refused before anything is allocated; an upload of a broken module is refused with
the reason, and nothing is stored. A short hypothesis pass over
random section edits (the `wasm` fuzz target's strategy) keeps the contract in CI; the long
campaigns are `python -m fuzz --target wasm`.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings

from fuzz.targets import wasm as wasm_target
from symbolicator.errors import FormatError, MalformedObject, UnsupportedFormat
from symbolicator.native.objects import identify
from symbolicator.native.wasm.module import read_module
from symbolicator.service.native.modules import convert_debug_file
from tests.support.native_service import TOKEN, start_service
from tests.support.wasm import OUT

DEBUG = (OUT / "app.debug.wasm").read_bytes()
HEADER = b"\0asm\x01\x00\x00\x00"


def convert(tmp_path: Path, data: bytes) -> dict[str, Any]:
    src = tmp_path / "m.wasm"
    src.write_bytes(data)
    identify(src)
    return convert_debug_file(str(src), str(tmp_path / "m.symcache"), None)


def test_every_prefix_is_a_module_or_malformed(tmp_path: Path) -> None:
    boundaries = {8} | {s.end for s in read_module(DEBUG).sections}
    for cut in range(0, len(DEBUG), 3):
        data = DEBUG[:cut]
        try:
            convert(tmp_path, data)
        except MalformedObject as exc:  # the container is cut, or (at a boundary) the DWARF lacks a section
            assert cut not in boundaries or "malformed wasm module" not in str(exc), (cut, exc)
        except UnsupportedFormat as exc:  # no magic yet, or cut before the code and DWARF: nothing to convert
            assert cut < 4 or "no DWARF and no symbol table" in str(exc), (cut, exc)
        else:
            assert cut in boundaries, cut


@pytest.mark.parametrize(("data", "why"), [
    (HEADER + b"\x0a\xff\xff\xff\xff\x0f", "claims 4294967295 bytes"),
    (HEADER + b"\x0a\x05\xff\xff\xff\xff\x0f", "a vector of 4294967295 entries"),
    (HEADER + b"\x00\x07\x80\x80\x80\x80\x80\x80\x01", "LEB128 longer than a u32"),
    (HEADER + b"\x00\x06\xff\xff\xff\xff\x7f\x00", "LEB128 value over 32 bits"),
    (HEADER + b"\x0e\x00", "unknown section id 14"),
    (b"\0asm\x02\x00\x00\x00", "version 2"),
    (b"\0asm\x01\x00", "truncated wasm module"),
    (HEADER + b"\x0a\x02\x00\x00" + b"\x0a\x02\x00\x00", "two code sections"),
    (HEADER + b"\x02\x06\x01\x00\x00\x07\x00\x00", "unknown import kind 7"),
    (HEADER + b"\x0a\x04\x01\x05\x00\x0b", "claims 5 bytes"),
])
def test_hostile_headers_are_refused_with_a_reason(tmp_path: Path, data: bytes, why: str) -> None:
    started = time.monotonic()
    with pytest.raises(MalformedObject, match=why):
        convert(tmp_path, data)
    assert time.monotonic() - started < 1


def test_a_module_with_every_import_kind_reads_like_wasm_objdump(tmp_path: Path) -> None:
    """The hand-assembled fuzz seed: wabt's reader (an independent tool) lists what ours counts."""
    data = wasm_target.imports_module()
    (tmp_path / "i.wasm").write_bytes(data)
    subprocess.run(["wasm-validate", "--enable-all", str(tmp_path / "i.wasm")], check=True)
    dump = subprocess.run(["wasm-objdump", "-x", str(tmp_path / "i.wasm")], check=True, capture_output=True,
                          text=True).stdout
    module = read_module(data, bodies=True, names=True)
    assert module.imported_functions == len(re.findall(r"^ - func\[\d+\] sig=\d+ <\w+> <- ", dump, re.M)) == 1
    assert len(module.bodies) == int(re.search(r"^Code\[(\d+)\]:", dump, re.M).group(1))  # type: ignore[union-attr]
    names = dump.split('- name: "name"')[1]
    assert module.function_names == {int(i): n for i, n in re.findall(r"^ - func\[(\d+)\] <(\w+)>$", names, re.M)}


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(wasm_target.inputs())
def test_section_edits_only_raise_typed_errors(data: bytes) -> None:
    try:
        wasm_target.run(data)
    except FormatError:
        pass


def test_a_broken_module_upload_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    """A module cut inside `.debug_info` (the section claims more bytes than are left) is a 4xx
    naming the reason; nothing lands in storage, and the whole module is taken afterwards."""
    svc = start_service(tmp_path / "svc")
    url = f"{svc.url}/api/0/projects/acme/web/files/dsyms/"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        cut = next(s.start + 3 for s in read_module(DEBUG).sections if s.name == ".debug_info")
        r = requests.post(url, files={"file": ("app.debug.wasm", DEBUG[:cut])}, headers=auth, timeout=60)
        assert 400 <= r.status_code < 500 and "malformed wasm module" in r.json()["detail"], r.text
        uploads = Path(svc.settings["storage"]["local_dir"])
        assert not uploads.exists() or not [p for p in uploads.rglob("*") if p.is_file()]
        fine = requests.post(url, files={"file": ("app.debug.wasm", DEBUG)}, headers=auth, timeout=60)
        assert fine.status_code == 201, fine.text
    finally:
        svc.stop()


def test_a_module_without_build_id_has_no_ids_and_cannot_be_stored(tmp_path: Path) -> None:
    from symbolicator.artifacts.debug_files import storage_id

    data = wasm_target.imports_module()
    cut = next(s.start for s in read_module(data).sections if s.name == "build_id")
    (tmp_path / "m.wasm").write_bytes(data[:cut - len(b"\x00\x19\x08build_id")])
    info = identify(tmp_path / "m.wasm")[0]
    assert info.code_id is None and info.debug_id is None and info.features.has_symbols
    with pytest.raises(MalformedObject, match="no code id"):
        storage_id(info)


def test_an_oversized_build_id_is_refused(tmp_path: Path) -> None:
    """A `build_id` section is an id, not a payload: one of a megabyte is not read into memory."""
    name = b"\x08build_id"
    body = name + bytes(1 << 20)
    data = HEADER + b"\x00" + bytes([0x80 | (len(body) & 0x7F), 0x80 | (len(body) >> 7 & 0x7F), len(body) >> 14]) + body
    with pytest.raises(MalformedObject, match="a build_id of 1048576 bytes"):
        convert(tmp_path, data)
