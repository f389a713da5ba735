"""WebAssembly conversion beside PyPI `symbolic`, one run, and agreement at scale (issue 16).

The input is generated C (`N` functions, each calling two of 200 `static inline` helpers in a
loop) compiled by clang 14 for wasm32 at `-O2 -g` and linked by wasm-ld in a separate step
(FORMATS-NOTES.md §2), built once into `bench/work/wasm/`. The figures are native_scale's rows
(`_rows`: whole process and engine only, alternating fresh processes, best time and median RSS
of each side), and a sample of code offsets (every instruction, `wasm-objdump -d`) looked up in
our symcache beside llvm-symbolizer 14 at the DWARF address and symbolic at the module offset.

    python -m bench.wasm_scale [--quick]
"""

from __future__ import annotations

import json
import random
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from bench.inputs import WORK, NativeInput
from bench.native_scale import REPEATS, _rows
from bench.report import Row, Section, section_main

SIZES = {True: 400, False: 4000}
SAMPLE = {True: 500, False: 4000}
SEED = 20261207
LLVM = Path("/usr/lib/llvm-14/bin")


def _source(n: int) -> str:
    helpers = [f"static inline int h{i}(int x) {{ return (x * {i * 7 + 1}) ^ (x >> 3); }}" for i in range(200)]
    funcs = [f"__attribute__((noinline)) int f{i}(int x) {{ int s = 0; for (int k = 0; k < x; k++) "
             f"s += h{i % 200}(k) + h{i * 13 % 200}(s); return s; }}" for i in range(n)]
    return "\n".join(helpers + funcs) + "\n"


def wasm_input(quick: bool) -> NativeInput:
    """The generated module with DWARF (built unless the same size already is)."""
    n = SIZES[quick]
    out = WORK / "wasm" / f"f{n}"
    module = out / "big.wasm"
    if not module.exists():
        out.mkdir(parents=True, exist_ok=True)
        (out / "big.c").write_text(_source(n))
        subprocess.run(["clang", "--target=wasm32-unknown-unknown", "-g", "-O2", "-c", "big.c", "-o", "big.o"],
                       cwd=out, check=True)
        subprocess.run(["wasm-ld", "--no-entry", "--export-all", "big.o", "-o", "big.wasm"], cwd=out, check=True)
    dump = subprocess.run(["wasm-objdump", "-h", str(module)], capture_output=True, text=True, check=True).stdout
    dwarf = sum(int(m, 16) for m in re.findall(r'size=0x([0-9a-f]+)\) "\.debug_', dump))
    return NativeInput(module, dwarf, module, "wasm32")


def agreement(module: Path, sample: int) -> tuple[int, int, int]:
    """(offsets looked up, differing from llvm-symbolizer, differing from symbolic): function, file, line, chain."""
    from symbolic.debuginfo import Archive

    from symbolicator.native.symcache import SymCache
    from symbolicator.native.symcache_build import build
    from tests.test_dwarf_accuracy import normalise

    head = subprocess.run(["wasm-objdump", "-h", str(module)], capture_output=True, text=True, check=True).stdout
    start_match = re.search(r"Code start=0x([0-9a-f]+)", head)
    assert start_match is not None
    start = int(start_match.group(1), 16)
    text = subprocess.run(["wasm-objdump", "-d", str(module)], capture_output=True, text=True, check=True).stdout
    offsets = sorted(random.Random(SEED).sample([int(h, 16) for h in re.findall(r"^ ([0-9a-f]{6,}): ", text, re.M)],
                                                sample))
    answers = subprocess.run([str(LLVM / "llvm-symbolizer"), "--output-style=JSON", "--inlines", f"--obj={module}"],
                             input="".join(f"0x{o - start:x}\n" for o in offsets), capture_output=True, text=True,
                             check=True).stdout.splitlines()
    ours = SymCache.from_bytes(build(module))
    theirs = Archive.open(str(module)).get_object(arch="wasm32").make_symcache()
    llvm_bad = symbolic_bad = 0
    for offset, line in zip(offsets, answers, strict=True):
        got = [normalise(f.function, f.file, f.line) for f in ours.lookup(offset)]
        want = [normalise(s["FunctionName"], s["FileName"], s["Line"]) for s in json.loads(line).get("Symbol", [])]
        llvm_bad += want != got
        symbolic_bad += [normalise(x.symbol, x.full_path, x.line) for x in theirs.lookup(offset)] != got
    return len(offsets), llvm_bad, symbolic_bad


def run(quick: bool, log: Callable[[str], None]) -> Section:
    inp = wasm_input(quick)
    log(f"wasm-scale: {inp.binary} ({inp.binary.stat().st_size / 2**20:.1f} MiB)")
    rows, raw = _rows(f"wasm, {inp.dwarf_bytes / 2**20:.1f} MiB DWARF", inp, REPEATS[quick], None, True)
    n, llvm_bad, symbolic_bad = agreement(inp.binary, SAMPLE[quick])
    rows.append(Row(f"agreement at {n} sampled code offsets (function, file, line, inline chain)",
                    f"{n - llvm_bad}/{n} with llvm-symbolizer", f"{n - symbolic_bad}/{n} with symbolic", "—",
                    "≥ 99.5 %", (n - llvm_bad) / n >= 0.995 and (n - symbolic_bad) / n >= 0.995))
    notes = [f"Input: generated C, {SIZES[quick]} functions over 200 inline helpers, clang 14 `-O2 -g` for wasm32, "
             f"wasm-ld ({inp.binary.stat().st_size / 2**20:.1f} MiB module). Times are the best sample of each side, "
             "RSS the median; the machine is shared, so only ratios of one run mean much."]
    return Section("WebAssembly conversion (issue 16, `bench/wasm_scale.py`)", notes, rows, samples=raw)


if __name__ == "__main__":
    raise SystemExit(section_main("python -m bench.wasm_scale", __doc__, "400 functions instead of 4000", run))
