"""`POST /applecrashreport` with the `.crash` and `.ips` fixtures, after uploading the real dSYMs.

The reports point at the Mach-O fixtures' real UUIDs (`tests/fixtures/apple/README.md`);
`expected.json` lists what the reports contain. Frames are compared with
llvm-symbolizer on the dSYM at `file_vaddr = addr − image_addr + image_vmaddr`, callers at
the previous instruction (arm64: align to 4, then −4).
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from symbolicator.cli import main
from tests.support.service import ServiceProcess
from tests.support.native_service import (
    NATIVE,
    SCOPE,
    by_original_index,
    elf_module,
    llvm_symbolize,
    native_settings,
    needs_llvm,
    ours,
    start_service,
    upload,
)

APPLE = Path(__file__).resolve().parent / "fixtures/apple"
EXPECTED = json.loads((APPLE / "expected.json").read_text())
DSYMS = {
    "App": NATIVE / "macho/app_arm64.dSYM/Contents/Resources/DWARF/app_arm64",
    "libdylib.dylib": NATIVE / "macho/libdylib_arm64.dylib.dSYM/Contents/Resources/DWARF/libdylib_arm64.dylib",
}


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    service = start_service(tmp_path_factory.mktemp("apple"))
    try:
        for path in DSYMS.values():
            upload(service, path)
        yield service
    finally:
        service.stop()


def post_report(svc: ServiceProcess, name: str, data: bytes | None = None, **fields: Any) -> requests.Response:
    files: dict[str, Any] = {"apple_crash_report": (name, data if data is not None else (APPLE / name).read_bytes())}
    for key, value in fields.items():
        files[key] = (None, value if isinstance(value, str) else json.dumps(value))
    return requests.post(f"{svc.url}/applecrashreport", params={"scope": SCOPE}, files=files, timeout=60)


@needs_llvm
@pytest.mark.parametrize("name", ["app-arm64.crash", "app-arm64.ips"])
def test_every_thread_symbolicated_like_llvm_symbolizer(svc: ServiceProcess, name: str) -> None:
    r = post_report(svc, name, options={"dif_candidates": True})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "completed"
    assert answer["crashed"] is True
    assert answer["crash_reason"] == f"{EXPECTED['exception_type']} ({EXPECTED['exception_signal']})"
    assert answer["crash_details"] == EXPECTED["exception_subtype"]
    assert answer["timestamp"] == EXPECTED["timestamp"]
    assert answer["system_info"] == {"os_name": "iOS", "os_version": "17.1.2", "os_build": EXPECTED["os_build"],
                                     "cpu_arch": "arm64", "device_model": EXPECTED["model"]}
    threads = answer["stacktraces"]
    assert [t["thread_id"] for t in threads] == [t["id"] for t in EXPECTED["threads"]]
    assert [t["is_requesting"] for t in threads] == [t["crashed"] for t in EXPECTED["threads"]]
    assert threads[0]["thread_name"] == "com.apple.main-thread" and threads[2]["thread_name"] == "com.example.worker"
    assert threads[0]["registers"]["pc"] == hex(EXPECTED["threads"][0]["registers"]["pc"])

    images = {i["name"]: i for i in EXPECTED["images"]}
    app_frames = 0
    for thread, want in zip(threads, EXPECTED["threads"]):
        got = by_original_index(thread["frames"])
        assert sorted(got) == list(range(len(want["frames"])))
        for index, frame in enumerate(want["frames"]):
            out = got[index]
            assert all(f["instruction_addr"] == hex(frame["instruction_addr"]) for f in out)
            if frame["image"] not in DSYMS:
                assert [f["status"] for f in out] == ["missing"]
                assert out[0]["symbol"] == frame["symbol"]
                continue
            app_frames += 1
            addr = frame["instruction_addr"] - images[frame["image"]]["image_addr"] + frame["vmaddr"]
            if index > 0:
                addr = (addr & ~3) - 4
            assert ours(out) == llvm_symbolize(DSYMS[frame["image"]], [addr])[0]
            assert out[-1]["function"] == frame["function"]
    assert app_frames == 5

    modules = {m["code_file"].rsplit("/", 1)[-1]: m for m in answer["modules"]}
    assert modules["App"]["debug_status"] == "found" and modules["App"]["arch"] == "arm64"
    assert modules["libdylib.dylib"]["debug_status"] == "found"
    assert modules["libsystem_kernel.dylib"]["debug_status"] == "missing"
    assert modules["App"]["candidates"][0]["download"]["status"] == "ok"


@pytest.mark.parametrize("name", ["garbage.crash", "truncated.ips", "body-not-json.ips"])
def test_broken_reports_are_400(svc: ServiceProcess, name: str) -> None:
    r = post_report(svc, name)
    assert r.status_code == 400, r.text
    assert r.json()["detail"]


def test_bad_multipart(svc: ServiceProcess) -> None:
    url = f"{svc.url}/applecrashreport"
    assert requests.post(url, data=b"{}", headers={"Content-Type": "application/json"}, timeout=10).status_code == 400
    no_report = requests.post(url, files={"options": (None, "{}")}, timeout=10)
    assert no_report.status_code == 400 and "apple_crash_report" in no_report.json()["detail"]
    bad_json = post_report(svc, "app-arm64.crash", options="{nope")
    assert bad_json.status_code == 400
    bad_shape = post_report(svc, "app-arm64.crash", sources={"not": "a list"})
    assert bad_shape.status_code == 422


def test_sentry_style_multipart_with_sources_and_timeout(svc: ServiceProcess) -> None:
    """Sentry sends `sources`, `platform` and `options` as JSON fields, and `?timeout=`."""
    files = {
        "apple_crash_report": ("crash.ips", (APPLE / "app-arm64.ips").read_bytes()),
        "sources": (None, json.dumps([{"type": "sentry", "id": "sentry:project", "url": "http://x.invalid/", "token": "t"}])),
        "platform": (None, json.dumps("cocoa")),
        "options": (None, json.dumps({"dif_candidates": True})),
    }
    r = requests.post(f"{svc.url}/applecrashreport", params={"scope": "42", "timeout": 5}, files=files, timeout=30)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "completed"
    app = next(m for m in answer["modules"] if m["code_file"].endswith("/App"))
    assert app["candidates"][0]["source"] == "sentry:project"
    assert answer["stacktraces"][0]["frames"][0]["function"] == "compute"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`symbolicator symbolicate ARGS…` in this process (the same `cli.main` the console script runs)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["symbolicate", *args])
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@pytest.mark.parametrize("name", ["app-arm64.crash", "app-arm64.ips"])
def test_offline_cli_prints_what_the_endpoint_answers(svc: ServiceProcess, name: str) -> None:
    http = post_report(svc, name)
    assert http.status_code == 200
    cli = run_cli(str(APPLE / name), "--symbols", str(NATIVE / "macho"), "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == http.json()
    if name.endswith(".crash"):
        return
    text = run_cli(str(APPLE / name), "--symbols", str(NATIVE / "macho"))
    assert text.returncode == 0, text.stderr
    assert "Thread 0 (com.apple.main-thread) crashed" in text.stdout
    assert "compute (app.c:" in text.stdout and "dylib_entry (dylib.c:" in text.stdout
    assert "EXC_BAD_ACCESS (SIGSEGV)" in text.stdout


def test_offline_cli_on_a_symbolicator_request_and_bad_input(tmp_path: Path) -> None:
    elf = NATIVE / "elf/c_gcc_O2_dwarf5"
    request = {"stacktraces": [{"frames": [{"instruction_addr": "0x555555555234", "adjust_instruction_addr": False}]}],
               "modules": [elf_module(elf, 0x555555554000)]}
    (tmp_path / "request.json").write_text(json.dumps(request))
    cli = run_cli(str(tmp_path / "request.json"), "--symbols", str(NATIVE / "elf"), "--json")
    assert cli.returncode == 0, cli.stderr
    frames = json.loads(cli.stdout)["stacktraces"][0]["frames"]
    assert [f["function"] for f in frames] == [f["function"] for f in llvm_symbolize(elf, [0x1234])[0]]
    garbage = run_cli(str(APPLE / "garbage.crash"), "--symbols", str(tmp_path))
    assert garbage.returncode == 1 and "not an Apple crash report" in garbage.stderr


def test_fat_dsym_slices_are_found_per_architecture(service_factory: Any, tmp_path: Path) -> None:
    """A universal dSYM is stored slice by slice; each UUID finds its own arch."""
    svc = service_factory(native_settings(tmp_path))
    upload(svc, NATIVE / "macho/app_fat.dSYM/Contents/Resources/DWARF/app_fat")
    answer = post_report(svc, "app-arm64.crash").json()
    app = next(m for m in answer["modules"] if m["code_file"].endswith("/App"))
    assert (app["debug_status"], app["arch"]) == ("found", "arm64")
    assert answer["stacktraces"][0]["frames"][0]["function"] == "compute"
    x86 = {"type": "macho", "debug_id": "4c4c4411-5555-3144-a148-c5b8627c3537", "image_addr": "0x100000000",
           "image_size": 0x10000}
    body = {"stacktraces": [{"frames": [{"instruction_addr": "0x100004000"}]}], "modules": [x86]}
    r = requests.post(f"{svc.url}/symbolicate", params={"scope": SCOPE}, json=body, timeout=30).json()
    assert (r["modules"][0]["debug_status"], r["modules"][0]["arch"]) == ("found", "x86_64")
