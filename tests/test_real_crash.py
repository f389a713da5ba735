"""A real crash, symbolicated through the HTTP API.

`tests/fixtures/native/out/elf/crash` segfaults on purpose; its SIGSEGV handler
prints where the executable was loaded, the faulting pc and glibc's
`backtrace()` (see `tests/fixtures/native/README.md`). From that output we build
the request a crash reporter would send: frame 0 the exact pc, every other
frame a return address, `signal: 11`, `registers: {"rip": pc}`. The binary is
uploaded through the upload endpoint; the expectations are llvm-symbolizer's
answers for the addresses Symbolicator's caller heuristic looks up (the pc
itself, every return address − 1).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elftools.elf.elffile import ELFFile

from tests.support.service import ServiceProcess
from tests.support.native_service import (
    ELF,
    by_original_index,
    elf_module,
    llvm_symbolize,
    needs_llvm,
    ours,
    start_service,
    symbolicate,
    upload,
)

CRASH = ELF / "crash"


def run_crash() -> tuple[int, int, list[int]]:
    """(image_addr, pc, the backtrace from the faulting frame on)."""
    proc = subprocess.run([str(CRASH)], check=False, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    values: dict[str, list[int]] = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        values.setdefault(key, []).append(int(value, 16))
    image_addr, pc, frames = values["image_addr"][0], values["pc"][0], values["frame"]
    assert pc in frames, "backtrace() should pass through the faulting frame"
    return image_addr, pc, frames[frames.index(pc):]


def image_size(path: Path) -> int:
    with open(path, "rb") as f:
        loads = [s for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD"]
        return max(s["p_vaddr"] + s["p_memsz"] for s in loads) - min(s["p_vaddr"] for s in loads)


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    service = start_service(tmp_path_factory.mktemp("real-crash"))
    try:
        upload(service, CRASH)
        yield service
    finally:
        service.stop()


@needs_llvm
def test_a_real_segfault_symbolicates_like_llvm_symbolizer(svc: ServiceProcess) -> None:
    image_addr, pc, stack = run_crash()
    module = elf_module(CRASH, image_addr, image_size=image_size(CRASH), code_file=str(CRASH))
    body: dict[str, Any] = {
        "platform": "native",
        "signal": 11,
        "stacktraces": [{"registers": {"rip": hex(pc)}, "is_requesting": True,
                         "frames": [{"instruction_addr": hex(a)} for a in stack]}],
        "modules": [module],
    }
    answer = symbolicate(svc, body).json()
    assert answer["status"] == "completed", answer
    frames = by_original_index(answer["stacktraces"][0]["frames"])
    assert sorted(frames) == list(range(len(stack)))

    in_image = [i for i, a in enumerate(stack) if image_addr <= a < image_addr + module["image_size"]]
    lookups = [stack[i] - image_addr - (0 if i == 0 else 1) for i in in_image]
    expected = llvm_symbolize(CRASH, lookups)
    for i, want in zip(in_image, expected):
        assert ours(frames[i]) == want, (i, hex(stack[i]))
    for i in set(range(len(stack))) - set(in_image):
        assert [f["status"] for f in frames[i]] == ["unknown_image"]  # libc: no module sent for it

    names = [f["function"] for i in in_image[:4] for f in frames[i]]
    assert names == ["poke", "deep_write", "middle", "outer", "main"]
    crashing = frames[0]
    assert [f["status"] for f in crashing] == ["symbolicated", "symbolicated"]
    assert crashing[0]["abs_path"].endswith("crash.c") and crashing[0]["lineno"] == expected[0][0]["lineno"]
    assert "sym_addr" not in crashing[0] and crashing[1]["sym_addr"].startswith("0x")
    assert all(f["instruction_addr"] == hex(pc) for f in crashing)
    assert answer["modules"][0]["debug_status"] == "found"
    assert answer["signal"] == 11
    assert answer["stacktraces"][0]["registers"] == {"rip": hex(pc)}
