"""The symcache build in bounded memory: spilled runs give the same bytes, and leave no files behind.

`limits.conversion_memory_bytes` bounds the rows a conversion holds; past it, sorted runs go to
unnamed files in the cache folder and are merged back by address window. A budget of a few KB
forces a spill after every compile unit and windows of a few dozen rows, so every fixture
(ELF, split debug file, dSYM, fat slices) crosses every window and run boundary the merge has.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from symbolicator.errors import MalformedObject
from symbolicator.native import symcache_build
from symbolicator.native.dwarf import InflateToFile
from symbolicator.native.spill import Budget
from symbolicator.native.symcache import SymCache
from symbolicator.native.symcache_build import build
from symbolicator.service.native.modules import convert_debug_file

OUT = Path(__file__).parent / "fixtures" / "native" / "out"
TINY = 256
WITH_DWARF = [
    ("elf/c_clang_O2_dwarf4", None), ("elf/c_gcc_O2_dwarf5", None), ("elf/cpp_clang_O2_dwarf5", None),
    ("elf/cpp_gcc_O2_dwarf4", None), ("elf/cpp_gcc_O3_dwarf5", None), ("elf/cpp_gcc_zlib", None),
    ("elf/cpp_gcc_zstd", None), ("elf/rust_v0", None), ("elf/rust_static_v0_zlib", None), ("elf/libfixture.so", None),
    ("elf/libfixture_aarch64.so", None), ("elf/crash", None), ("elf/split/cpp_gcc_split.debug", None),
    ("macho/app_arm64.dSYM", None), ("macho/app_x86_64.dSYM", None), ("macho/app_fat.dSYM", "arm64"),
    ("macho/app_fat.dSYM", "x86_64"), ("macho/libdylib_arm64.dylib.dSYM", None),
]


@pytest.mark.parametrize("name, arch", WITH_DWARF, ids=[f"{n}-{a}" if a else n for n, a in WITH_DWARF])
def test_spilled_build_is_byte_identical_to_the_in_memory_one(tmp_path: Path, name: str, arch: str | None) -> None:
    whole = build(OUT / name, arch)
    budget = Budget(TINY, tmp_path / "spill")
    spilled = build(OUT / name, arch, budget=budget)
    assert budget.spilled_runs >= 2, "the tiny budget should have spilled line rows and inline steps"
    assert spilled == whole
    assert list((tmp_path / "spill").iterdir()) == []
    assert len(SymCache.from_bytes(spilled)) > 0


def test_the_service_entry_point_passes_the_budget_and_the_spill_folder(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    src = OUT / "elf" / "cpp_gcc_O3_dwarf5"
    big, small = tmp_path / "big.symc", tmp_path / "small.symc"
    meta = convert_debug_file(str(src), str(big), None)
    budgets: list[Budget] = []

    class Recorded(Budget):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            budgets.append(self)

    monkeypatch.setattr(symcache_build, "Budget", Recorded)
    assert convert_debug_file(str(src), str(small), None, 4 << 30, TINY, str(tmp_path / "spill")) == meta
    assert small.read_bytes() == big.read_bytes()
    assert [(b.memory_bytes, b.spill_dir) for b in budgets] == [(TINY, str(tmp_path / "spill"))]
    assert budgets[0].spilled_runs >= 2
    not_a_folder = tmp_path / "file"
    not_a_folder.write_bytes(b"")
    with pytest.raises(MalformedObject, match="spill file"):
        convert_debug_file(str(src), str(small), None, 4 << 30, TINY, str(not_a_folder))


_CHILD = """
import sys, time
from symbolicator.native import spill

real_spill = spill.RunStore.spill

def spill_then_wait(self):
    real_spill(self)
    if self.runs:
        print("spilled", flush=True)
        time.sleep(600)

spill.RunStore.spill = spill_then_wait
from symbolicator.native.symcache_build import build
build(sys.argv[1], memory_bytes=4096, spill_dir=sys.argv[2])
"""


def _open_files_in(pid: int, folder: Path) -> list[str]:
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            continue
    return [t for t in targets if t.startswith(str(folder))]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_conversion_leaves_no_spill_file(tmp_path: Path, sig: signal.Signals) -> None:
    """Killed mid-build (after its first spilled run), the worker leaves the folder as it found it."""
    folder = tmp_path / "spill"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(OUT / "elf" / "cpp_gcc_O3_dwarf5"), str(folder)],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "spilled"
        held = _open_files_in(child.pid, folder)
        assert held and all(t.endswith("(deleted)") for t in held), held  # unnamed: in the folder, no name
        assert list(folder.iterdir()) == []
        child.send_signal(sig)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert list(folder.iterdir()) == []
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{child.pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{child.pid}/fd")


BOMBS = Path(__file__).parent / "fixtures" / "limits"


@pytest.mark.parametrize("name", ["zlib_inflates_past_claim", "zstd_inflates_past_claim"])
def test_a_bomb_inflated_into_a_spill_file_stops_at_its_claim(tmp_path: Path, name: str) -> None:
    """Big compressed sections are inflated into mapped spill files; a stream longer than its
    header says is refused there too, after at most one step past the claim, and leaves nothing."""
    budget = Budget(TINY, tmp_path / "spill")
    with pytest.raises(MalformedObject, match="differs from its header"):
        build(BOMBS / name, budget=budget)
    assert list((tmp_path / "spill").iterdir()) == []


def test_compressed_sections_inflated_into_spill_files_give_the_same_bytes(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = InflateToFile.inflate

    def counting(self: InflateToFile, name: str, *args: Any) -> bytes:
        calls.append(name)
        return real(self, name, *args)

    monkeypatch.setattr(InflateToFile, "inflate", counting)
    for name in ("cpp_gcc_zlib", "cpp_gcc_zstd", "cpp_gcc_zlib_gnu"):
        whole = build(OUT / "elf" / name)
        assert build(OUT / "elf" / name, budget=Budget(TINY, tmp_path)) == whole
    assert {".debug_info", ".debug_line", ".zdebug_info"} <= set(calls)


def test_the_service_converts_within_a_tiny_budget_and_answers_the_same(service_factory: Any, tmp_path: Path) -> None:
    """`limits.conversion_memory_bytes` reaches the worker: a service that must spill (and inflate
    the compressed sections into files) answers every frame as one with the default budget, and
    its cache folder keeps no spill file."""
    from tests.test_native_service import IMAGE_ADDR, elf_info, elf_module, native_settings, symbolicate, upload

    fixture = OUT / "elf" / "cpp_gcc_zlib"
    info = elf_info(fixture)
    lo, hi = info["text"]
    step = max(1, (hi - lo) // 40)
    frames = [{"instruction_addr": hex(IMAGE_ADDR + a - info["vmaddr"])} for a in range(lo + 1, hi, step)]
    body = {"stacktraces": [{"frames": frames}], "modules": [elf_module(fixture)]}
    answers = []
    for name, limits in (("default", {}), ("tiny", {"conversion_memory_bytes": TINY})):
        svc = service_factory(native_settings(tmp_path / name, limits=limits))
        upload(svc, fixture)
        answer = symbolicate(svc, body).json()
        assert answer["status"] == "completed" and answer["modules"][0]["debug_status"] == "found", answer
        answers.append(answer["stacktraces"])
        assert list((tmp_path / name / "cache" / "derived" / "tmp").iterdir()) == []
    assert answers[0] == answers[1]
    assert sum(len(f.get("function") or "") > 0 for f in answers[0][0]["frames"]) > 20
