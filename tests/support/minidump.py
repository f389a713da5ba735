"""The minidump fixtures as the tests use them: paths, the recorded `minidump-stackwalk` truth,
the tools that re-derive it, and how a walk or an answer is compared with it. Shared by every
test module that judges minidump answers (`tests/test_minidump*.py`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.native_service import SCOPE
from tests.support.service import ServiceProcess

MD = Path(__file__).resolve().parents[1] / "fixtures/minidump"
DUMPS = sorted(p.stem for p in (MD / "dumps").glob("*.dmp"))
X86_BINARIES = [MD / "out/crasher", MD / "out/libcrashlib.so", MD / "out/crasher-breakpad", MD / "out/crasher-core",
                MD / "out/sysroot/libc.so.6", MD / "out/sysroot/ld-linux-x86-64.so.2"]
ARM64_BINARIES = [MD / "out/arm64/crasher-arm64", MD / "out/arm64/libcrashlib.so", MD / "out/arm64/sysroot/libc.so.6",
                  MD / "out/arm64/sysroot/ld-linux-aarch64.so.1"]
BINARIES = X86_BINARIES + ARM64_BINARIES
TOOLS = MD.parents[2] / "tools/minidump"
STACKWALK, DUMP_SYMS = TOOLS / "minidump-stackwalk", TOOLS / "dump_syms"
needs_stackwalk = pytest.mark.skipif(not STACKWALK.exists() or not DUMP_SYMS.exists(),
                                     reason="run scripts/fetch-minidump-tools (scripts/install-test-deps does)")


def truth(name: str) -> dict[str, Any]:
    return json.loads((MD / "truth" / f"{name}.json").read_text())  # type: ignore[no-any-return]


def walked_addresses(frames: list[dict[str, Any]], name: str = "") -> list[tuple[int, str]]:
    """minidump-stackwalk's frames as (address as walked, trust): its `offset` of a caller frame is
    the return address − 1 on x86_64 and − 4 on arm64, ours the return address itself (Symbolicator's)."""
    step = 4 if name.startswith("arm64") else 1
    return [(int(f["offset"], 16) + (0 if i == 0 else step), f["trust"]) for i, f in enumerate(frames)]


def score(ours: list[list[tuple[int, str]]], theirs: list[list[tuple[int, str]]]) -> tuple[int, int]:
    """(frames equal at the same position, frames in the longer of each pair of walks)."""
    good = total = 0
    for a, b in zip(ours, theirs, strict=True):
        total += max(len(a), len(b))
        good += sum(1 for x, y in zip(a, b) if x == y)
    return good, total


def post_dump(svc: ServiceProcess, data: bytes, **fields: Any) -> requests.Response:
    files: dict[str, Any] = {"upload_file_minidump": ("crash.dmp", data)}
    for key, value in fields.items():
        files[key] = (None, json.dumps(value))
    return requests.post(f"{svc.url}/minidump", params={"scope": SCOPE}, files=files, timeout=120)


def answer_addresses(trace: dict[str, Any]) -> list[tuple[int, str]]:
    """One (address, trust) per walked frame: inlined frames share their `original_index`."""
    seen: dict[int, tuple[int, str]] = {}
    for f in trace["frames"]:
        seen.setdefault(f["original_index"], (int(f["instruction_addr"], 16), f["trust"]))
    return [seen[i] for i in sorted(seen)]


def truth_chain(frame: dict[str, Any]) -> list[tuple[Any, Any, Any]]:
    """minidump-stackwalk's frame as an inline chain, innermost first: (function, file, line)."""
    chain = [(i.get("function"), i.get("file"), i.get("line")) for i in frame.get("inlines", [])]
    return chain + [(frame.get("function"), frame.get("file"), frame.get("line"))]


def assert_like_stackwalk(name: str, body: dict[str, Any]) -> int:
    """Every thread of the answer equals minidump-stackwalk's on the same `.sym` files: address,
    trust, function, file, line and inline chain; returns how many named frames were compared."""
    compared = 0
    for ours, theirs in zip(body["stacktraces"], truth(name)["threads"], strict=True):
        assert answer_addresses(ours) == walked_addresses(theirs["frames"], name)
        groups: dict[int, list[dict[str, Any]]] = {}
        for f in ours["frames"]:
            groups.setdefault(f["original_index"], []).append(f)
        for index, frame in enumerate(theirs["frames"]):
            if frame.get("function") is None:
                continue
            got = [(f.get("function"), f.get("abs_path"), f.get("lineno")) for f in groups[index]]
            assert got == truth_chain(frame), (name, index)
            compared += 1
    return compared
