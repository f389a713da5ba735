"""`POST /symbolicate-any` and `symbolicator symbolicate`: one React Native event, JS and native frames merged.

The event interleaves native frames of a real ELF fixture (`tests/fixtures/native`, uploaded through
the upload endpoint) with the Hermes frames of the React Native fixture (`tests/fixtures/rn`,
uploaded by `sentry-cli react-native gradle`), in crash order. Expectations: `llvm-symbolizer` for
the native frames, `metro-symbolicate` (`tests/fixtures/rn/expected/`) for the JS ones.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.native_service import (
    ELF,
    elf_info,
    elf_module,
    llvm_symbolize,
    needs_llvm,
    ours,
    sample_addresses,
    upload,
)
from tests.support.service import ServiceProcess, local_settings
from tests.support.tools import sentry_cli
from tests.test_js_react_native import (
    RN,
    assert_as_metro_symbolicate,
    expected,
    hermes_frames,
)

REPO = Path(__file__).resolve().parent.parent
NATIVE = ELF / "c_gcc_O2_dwarf5"
IMAGE_ADDR = 0x7F00_0000_0000


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    work = tmp_path_factory.mktemp("symbolicate-any")
    svc = ServiceProcess(work, local_settings(work, scope_aliases={"42": "acme/web"}))
    with svc:
        upload(svc, NATIVE)
        shutil.copytree(RN / "out/hermes", work / "hermes")
        sentry_cli(svc, work, "react-native", "gradle", "--bundle", str(work / "hermes/index.android.bundle"),
                   "--sourcemap", str(work / "hermes/index.android.bundle.map"), "--release", "rn-any",
                   "--dist", "1", "--wait")
        yield svc


def native_addresses() -> list[int]:
    """Three file addresses inside `.text` of the ELF fixture (deterministic)."""
    return sample_addresses(NATIVE, 40)[5:40:12]


def native_frame(addr: int) -> dict[str, Any]:
    return {"platform": "native", "instruction_addr": hex(IMAGE_ADDR + addr), "adjust_instruction_addr": False}


def event(js: list[dict[str, Any]], native: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """Caller first: a native frame, the JS frames with the other native frames between them. Kinds in order."""
    frames = [native[0], *js[:3], native[1], *js[3:], native[2]]
    kinds = ["native", "js", "js", "js", "native"] + ["js"] * (len(js) - 3) + ["native"]
    module = elf_module(NATIVE, IMAGE_ADDR)
    body = {"platform": "javascript", "release": "rn-any", "dist": "1", "modules": [module],
            "stacktraces": [{"thread_id": 1, "is_requesting": True, "frames": frames}]}
    return body, kinds


def vmaddr_adjusted(addrs: list[int]) -> list[int]:
    """File addresses as offsets from the lowest PT_LOAD (what `image_addr` is the load address of)."""
    return [a - elf_info(NATIVE)["vmaddr"] for a in addrs]


def check(answer: dict[str, Any], kinds: list[str], js_want: list[dict[str, Any]], addrs: list[int]) -> None:
    frames = answer["stacktraces"][0]["frames"]
    assert sorted({f["original_index"] for f in frames}) == list(range(len(kinds)))
    js_frames = [f for f in frames if kinds[f["original_index"]] == "js"]
    assert [f["platform"] for f in js_frames] == ["javascript"] * len(js_frames)
    assert_as_metro_symbolicate(js_frames, js_want)
    native_indices = [i for i, k in enumerate(kinds) if k == "native"]
    expected_native = llvm_symbolize(NATIVE, addrs)
    for index, want in zip(native_indices, expected_native, strict=True):
        got = [f for f in frames if f["original_index"] == index][::-1]  # caller first: inlined chains outer first
        assert ours(got) == want, (index, got, want)
    assert [m["debug_status"] for m in answer["modules"]] == ["found"]
    raw = answer["raw_stacktraces"][0]["frames"]
    assert [f["original_index"] for f in raw] == list(range(len(kinds)))


@needs_llvm
def test_one_event_with_hermes_and_native_frames(service: ServiceProcess) -> None:
    js_want = expected("hermes")
    addrs = native_addresses()
    body, kinds = event(hermes_frames(js_want), [native_frame(a) for a in vmaddr_adjusted(addrs)])
    r = requests.post(f"{service.url}/symbolicate-any", params={"scope": "42"}, json=body, timeout=60)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "completed", (answer, service.log())
    assert answer["errors"] == []
    assert {a["status"] for a in answer["scraping_attempts"]} == {"not_attempted"}
    check(answer, kinds, js_want, addrs)
    # The halves answer as their own endpoints do.
    js_only = requests.post(f"{service.url}/symbolicate-js", params={"scope": "42"}, timeout=60, json={
        "release": "rn-any", "dist": "1", "stacktraces": [{"frames": hermes_frames(js_want)}]}).json()
    merged_js = [f for f in answer["stacktraces"][0]["frames"] if kinds[f["original_index"]] == "js"]
    assert [{k: v for k, v in f.items() if k != "original_index"} for f in merged_js] == \
        js_only["stacktraces"][0]["frames"]


def test_bad_frames_are_422_and_js_errors_stay_per_frame(service: ServiceProcess) -> None:
    url = f"{service.url}/symbolicate-any"
    bad_native = {"stacktraces": [{"frames": [{"platform": "native", "instruction_addr": "0xzz"}]}]}
    assert requests.post(url, params={"scope": "42"}, json=bad_native, timeout=30).status_code == 422
    # Symbolicator's stored form (tests/test_symbolicate_any_stored.py): an attachment that cannot be
    # fetched fails the job; a `symbolicate` of the wrong shape is 422.
    stored = {"symbolicate": {"type": "minidump", "storage_url": "http://127.0.0.1:1/x"}}
    assert requests.post(url, params={"scope": "42"}, json=stored, timeout=30).json()["status"] == "failed"
    stored["symbolicate"]["type"] = "jvm"
    assert requests.post(url, params={"scope": "42"}, json=stored, timeout=30).status_code == 422
    missing = {"stacktraces": [{"frames": [{"platform": "javascript", "abs_path": "app:///nope.bundle",
                                            "lineno": 1, "colno": 5}]}]}
    answer = requests.post(url, params={"scope": "42"}, json=missing, timeout=30).json()
    assert answer["status"] == "completed"
    assert answer["errors"] == [{"abs_path": "app:///nope.bundle", "type": "missing_source"}]
    assert answer["stacktraces"][0]["frames"][0]["original_index"] == 0 and answer["modules"] == []


@needs_llvm
def test_cli_symbolicate_takes_the_same_json(tmp_path: Path) -> None:
    """Offline, from folders: the Metro JS bundle (function maps kept) and the ELF fixture."""
    symbols = tmp_path / "symbols"
    shutil.copytree(RN / "out/metro", symbols / "metro")
    shutil.copy(NATIVE, symbols / NATIVE.name)
    js_want = expected("metro")
    js = [{"platform": "javascript", "abs_path": "app:///index.android.bundle", "lineno": f["line"],
           "colno": f["column"]} for f in reversed(js_want)]
    addrs = native_addresses()
    body, kinds = event(js, [native_frame(a) for a in vmaddr_adjusted(addrs)])
    (tmp_path / "event.json").write_text(json.dumps(body))
    out = subprocess.run([sys.executable, "-m", "symbolicator", "symbolicate", str(tmp_path / "event.json"),
                          "--symbols", str(symbols), "--json"], capture_output=True, text=True, timeout=300,
                         cwd=REPO, check=False)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["status"] == "completed" and answer["errors"] == []
    check(answer, kinds, js_want, addrs)


def test_frames_without_platform_go_by_their_content(service: ServiceProcess) -> None:
    """No `platform` on the frames: `instruction_addr` makes a frame native; both get a platform back."""
    body = {"platform": "javascript", "stacktraces": [{"frames": [
        {"instruction_addr": "0x1000"},
        {"abs_path": "app:///index.android.bundle", "lineno": 1, "colno": expected("hermes")[0]["offset"] + 1},
    ]}], "release": "rn-any", "dist": "1"}
    answer = requests.post(f"{service.url}/symbolicate-any", params={"scope": "42"}, json=body, timeout=60).json()
    assert answer["status"] == "completed", answer
    native, js = answer["stacktraces"][0]["frames"]
    assert (native["platform"], native["status"], native["original_index"]) == ("native", "unknown_image", 0)
    assert (js["platform"], js["data"]["symbolicated"], js["original_index"]) == ("javascript", True, 1)
    assert js["function"] == expected("hermes")[0]["original"]["function"]
