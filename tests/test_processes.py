"""`serve --processes N` (issue 11, item 6): N processes on one port, one disk cache, one conversion.

The real service runs as users start it. Its children share the port (SO_REUSEPORT,
so the kernel spreads connections) and the cache folder; `/metrics` sums the
processes' counters, and `symbolicator_process_http_requests` says which process
answered how many requests. Answers are checked against llvm-symbolizer (native)
and the frames `node --enable-source-maps` printed (JS).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
import requests

from tests.support.service import ServiceProcess, child_pids
from tests.test_two_instances import upload_bundle
from tests.support.native_service import (
    ELF,
    IMAGE_ADDR,
    by_original_index,
    elf_info,
    elf_module,
    llvm_symbolize,
    metric,
    native_settings,
    needs_llvm,
    ours,
    symbolicate,
    upload,
)

PROCESSES = 2
BURST = 30
NODE = json.loads((Path(__file__).parent / "fixtures/js/expected/esbuild.node.json").read_text())["frames"]


def per_process(svc: ServiceProcess) -> dict[str, float]:
    text = requests.get(f"{svc.url}/metrics", timeout=10).text
    return {pid: float(v) for pid, v in re.findall(
        r'^symbolicator_process_http_requests\{pid="(\d+)"\} ([0-9.e+]+)$', text, re.MULTILINE)}


def wait_for_all_processes(svc: ServiceProcess, timeout: float = 60.0) -> None:
    """Until every child has answered something (each new connection may land on any of them)."""
    deadline = time.monotonic() + timeout
    while sum(1 for n in per_process(svc).values() if n > 0) < PROCESSES:
        assert time.monotonic() < deadline, f"not every process answered:\n{svc.log()}"
        requests.get(f"{svc.url}/healthcheck", timeout=5)


def gone(pids: list[int], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0].lower()
    except (OSError, IndexError):
        return "zombie"


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        kids = child_pids(todo.pop())
        found += kids
        todo += kids
    return found


@pytest.fixture
def multi(tmp_path: Path) -> ServiceProcess:
    svc = ServiceProcess(tmp_path, native_settings(tmp_path), args=("--processes", str(PROCESSES))).start()
    try:
        wait_for_all_processes(svc)
        yield svc
    finally:
        svc.stop()


def js_event(svc: ServiceProcess) -> requests.Response:
    body = {"release": "1.0", "scraping": {"enabled": False}, "stacktraces": [{"frames": [
        {"abs_path": "https://shop.example/static/app.js", "lineno": f["line"], "colno": f["column"]} for f in NODE]}]}
    return requests.post(f"{svc.url}/symbolicate-js", params={"scope": "acme/web"}, json=body, timeout=120)


@needs_llvm
def test_concurrent_first_requests_over_the_processes_convert_once_then_sigterm_stops_all(
        multi: ServiceProcess, tmp_path: Path) -> None:
    path = ELF / "cpp_gcc_O2_dwarf5"
    upload(multi, path)
    upload_bundle(multi, tmp_path, "1.0")
    lo, hi = elf_info(path)["text"]
    addrs = list(range(lo, hi, max(1, (hi - lo) // 20)))[:20]
    body = {"stacktraces": [{"frames": [{"instruction_addr": hex(IMAGE_ADDR + a), "adjust_instruction_addr": False}
                                        for a in addrs]}],
            "modules": [elf_module(path)]}
    before = per_process(multi)
    with concurrent.futures.ThreadPoolExecutor(2 * BURST) as pool:  # one connection per request
        js_answers = pool.map(lambda _: js_event(multi), range(BURST))
        answers = list(pool.map(lambda _: symbolicate(multi, body), range(BURST)))
        js_answers = list(js_answers)
    after = per_process(multi)

    assert all(a.status_code == 200 for a in answers + js_answers)
    assert len({json.dumps(a.json()) for a in js_answers}) == 1
    for frame, want in zip(js_answers[0].json()["stacktraces"][0]["frames"], NODE, strict=True):
        assert frame["abs_path"].endswith(want["original"]["file"]), frame
        assert (frame["lineno"], frame["colno"]) == (want["original"]["line"], want["original"]["column"])
    assert len({json.dumps(a.json()) for a in answers}) == 1
    answer = answers[0].json()
    assert answer["modules"][0]["debug_status"] == "found"
    got = by_original_index(answer["stacktraces"][0]["frames"])
    expected = llvm_symbolize(path, addrs)
    assert [ours(got.get(i, [])) for i, exp in enumerate(expected) if exp] == [exp for exp in expected if exp]

    served = {pid: after.get(pid, 0) - before.get(pid, 0) for pid in after}
    assert len(served) == PROCESSES and all(n >= 2 for n in served.values()), served  # spread over both
    assert metric(multi, "symbolicator_native_conversions_total") == 1
    assert metric(multi, "symbolicator_native_downloads_total") == 1
    assert metric(multi, "symbolicator_js_conversions_total") == 1

    assert multi.proc is not None
    family = descendants(multi.proc.pid)
    assert len(child_pids(multi.proc.pid)) == PROCESSES
    multi.proc.send_signal(signal.SIGTERM)
    assert multi.proc.wait(30) == 0
    assert gone(family), f"left running: {[p for p in family if Path(f'/proc/{p}').exists()]}"


def test_a_dead_child_is_replaced_and_all_die_when_the_supervisor_is_killed(multi: ServiceProcess) -> None:
    assert multi.proc is not None
    first = child_pids(multi.proc.pid)
    os.kill(first[0], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not (len(now := child_pids(multi.proc.pid)) == PROCESSES and first[0] not in now):
        assert time.monotonic() < deadline, f"no replacement for {first[0]}:\n{multi.log()}"
        time.sleep(0.1)
    replacement = next(pid for pid in now if pid not in first)
    while per_process(multi).get(str(replacement), 0) == 0:  # it serves: new connections reach it too
        assert time.monotonic() < deadline, f"{replacement} never answered:\n{multi.log()}"
        requests.get(f"{multi.url}/healthcheck", timeout=5)

    family = descendants(multi.proc.pid)
    os.kill(multi.proc.pid, signal.SIGKILL)
    multi.proc.wait(10)
    assert gone(family), f"orphans: {[p for p in family if Path(f'/proc/{p}').exists()]}"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{multi.url}/healthcheck", timeout=2)
