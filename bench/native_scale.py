"""Native conversion at real iOS scale (issue 11 items 1-2): ours beside PyPI `symbolic`, in one run.

Two inputs: the native bench's C++ program (`inputs.native_input`, ~60 MiB of DWARF) and a
debug file of >= 1 GiB of DWARF (`big_input`). For each, alternating fresh processes:

- *whole process*: `python -c` that imports the engine, converts the file and writes the cache
  (`build_to_file` vs `Archive.open(...).get_object(...).make_symcache().dump_into(...)`), timed
  from process start to exit, peak RSS from `wait4`;
- *engine only* (the bench program only: a second pass over the big file would take the
  shared machine for another quarter hour): the same conversion as a `bench.child` task
  (imports untimed), peak RSS of the whole child (`VmHWM`).

The big input: a real clang build cannot make 1 GiB of DWARF in reasonable time on 2 shared
cores (the bench program's 27 units take ~10 minutes for 60 MiB), so `big_input` reuses the
bench program's object files as compiled by clang++ and links `copies` of them into one
executable with lld, each copy's defined global symbols renamed with `objcopy
--redefine-syms` (suffix `.copyN`, still demanglable). Every byte of DWARF is clang's, every
address relocated by lld; the copies differ only in their addresses.

    python -m bench.native_scale [--quick]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.child import Sample, run_command, run_task
from bench.inputs import WORK, NativeInput, dwarf_size, native_input
from bench.report import GiB, Pairs, Row, Section, interleave, mib, ms, section_main

HERE = "bench.native_scale"
REPEATS = {True: 2, False: 3}
BIG_REPEATS = 1
BIG_TARGET = 1 << 30
BIG_VERSION = 2

_OURS = ("from symbolicator.native.symcache_build import build_to_file; import sys; "
         "build_to_file(sys.argv[1], sys.argv[2], sys.argv[3] or None)")
_SYMBOLIC = ("from symbolic.debuginfo import Archive; import sys; "
             "c = Archive.open(sys.argv[1]).get_object(arch=sys.argv[3]).make_symcache(); "
             "c.dump_into(open(sys.argv[2], 'wb'))")


# --- tasks: run inside bench.child -----------------------------------------------------------

def ours_build_file(a: Mapping[str, Any]) -> Callable[[], Any]:
    from symbolicator.native.symcache_build import build_to_file

    return lambda: {"bytes": build_to_file(a["binary"], a["out"])}


def symbolic_build_file(a: Mapping[str, Any]) -> Callable[[], Any]:
    from symbolic.debuginfo import Archive

    def work() -> None:
        cache = Archive.open(a["binary"]).get_object(arch=a["arch"]).make_symcache()
        with open(a["out"], "wb") as fh:
            cache.dump_into(fh)

    return work


# --- the big input ----------------------------------------------------------------------------

def _defined_globals(obj: Path) -> list[str]:
    out = subprocess.run(["llvm-nm", "--defined-only", "--extern-only", "--format=just-symbols", str(obj)],
                         check=True, capture_output=True, text=True).stdout
    return [s for s in out.split() if s != "main"]


def _string_bytes(binary: Path) -> int:
    from elftools.elf.elffile import ELFFile

    with open(binary, "rb") as fh:
        return sum(s["sh_size"] for s in ELFFile(fh).iter_sections() if s.name in (".debug_str", ".debug_line_str"))


def _objects(base: NativeInput, out: Path) -> list[Path]:
    """The bench program's objects, compiled once and kept (the native bench deletes its own)."""
    objs = out / "objs"
    objs.mkdir(parents=True, exist_ok=True)
    sources = sorted(base.binary.parent.glob("*.cpp"))

    def compile_one(src: Path) -> Path:
        obj = objs / (src.name + ".o")
        if not obj.exists():
            tmp = obj.with_suffix(".tmp")
            subprocess.run(["clang++", "-O1", "-g", "-std=c++17", "-c", str(src), "-o", str(tmp)], check=True)
            tmp.replace(obj)
        return obj

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(compile_one, sources))


def big_input(target: int = BIG_TARGET) -> NativeInput:
    """Link enough renamed copies of the bench program's objects for `target` bytes of DWARF."""
    base = native_input(False, 1)
    out = WORK / "native" / "big"
    binary = out / "big_program"
    stamp = out / "stamp.json"
    # A copy adds all of the program's DWARF but its strings, which lld merges with the first's.
    per_copy = base.dwarf_bytes - _string_bytes(base.binary)
    copies = 1 + max(0, -(-(target - base.dwarf_bytes) // per_copy))
    params = {"v": BIG_VERSION, "copies": copies, "base": json.loads((base.binary.parent / "stamp.json").read_text())}
    if not (stamp.exists() and json.loads(stamp.read_text()) == params and binary.exists()):
        objects = _objects(base, out)
        main = [o for o in objects if o.name == "main.cpp.o"]
        units = [o for o in objects if o.name != "main.cpp.o"]
        linked = list(main) + list(units)
        copy_dir = out / "copies"
        shutil.rmtree(copy_dir, ignore_errors=True)
        copy_dir.mkdir()
        for k in range(1, copies):
            for obj in units:
                renames = copy_dir / f"{obj.name}.{k}.map"
                renames.write_text("".join(f"{s} {s}.copy{k}\n" for s in _defined_globals(obj)))
                dest = copy_dir / f"{obj.name}.{k}.o"
                subprocess.run(["objcopy", f"--redefine-syms={renames}", str(obj), str(dest)], check=True)
                linked.append(dest)
        subprocess.run(["clang++", "-fuse-ld=lld", "-Wl,--build-id=sha1", *map(str, linked), "-o", str(binary)],
                       check=True)
        shutil.rmtree(copy_dir)
        stamp.write_text(json.dumps(params))
    return NativeInput(binary, dwarf_size(binary), out / "unused.json", "x86_64")


# --- the section ------------------------------------------------------------------------------

def _whole(script: str, binary: Path, out: Path, arch: str) -> Callable[[], Sample]:
    return lambda: run_command([sys.executable, "-c", script, str(binary), str(out), arch], b"")


def _rows(label: str, inp: NativeInput, reps: int, rss_cap: float | None,
          engine_only: bool) -> tuple[list[Row], dict[str, str]]:
    out = inp.binary.parent
    ours_out, peer_out = out / "scale-ours.symcache", out / "scale-symbolic.symcache"
    whole = interleave(_whole(_OURS, inp.binary, ours_out, ""), _whole(_SYMBOLIC, inp.binary, peer_out, inp.arch),
                       reps)
    rows = [_time_row(f"{label}: whole process, time", whole, "≤ 4×", 4.0),
            _rss_row(f"{label}: whole process, peak RSS", whole, rss_cap)]
    raw = {f"{label} whole": whole.raw()}
    if engine_only:
        args = {"binary": str(inp.binary), "arch": inp.arch}
        engine = interleave(lambda: run_task(f"{HERE}:ours_build_file", {**args, "out": str(ours_out)}),
                            lambda: run_task(f"{HERE}:symbolic_build_file", {**args, "out": str(peer_out)}), reps)
        rows += [_time_row(f"{label}: engine only (imports untimed), time", engine, "info", None),
                 _rss_row(f"{label}: engine only, peak RSS", engine, None, info=True)]
        raw[f"{label} engine"] = engine.raw()
    rows.append(Row(f"{label}: symcache size", mib(ours_out.stat().st_size), mib(peer_out.stat().st_size),
                    f"{ours_out.stat().st_size / peer_out.stat().st_size:.2f}×", "info", None))
    return rows, raw


def _time_row(figure: str, p: Pairs, target: str, cap: float | None) -> Row:
    r = p.time_ratio()
    return Row(figure, ms(p.best_seconds("ours")), ms(p.best_seconds("peer")), f"{r:.1f}×", target,
               None if cap is None else r <= cap)


def _rss_row(figure: str, p: Pairs, cap: float | None, info: bool = False) -> Row:
    ours, peer = p.median_rss("ours"), p.median_rss("peer")
    if info:
        return Row(figure, mib(ours), mib(peer), f"{ours / peer:.2f}×", "info", None)
    if cap is None:
        return Row(figure, mib(ours), mib(peer), f"{ours / peer:.2f}×", "≤ 1.5×", ours / peer <= 1.5)
    return Row(figure, mib(ours), mib(peer), f"{ours / peer:.2f}×", f"≤ {cap / GiB:.1f} GiB (ours)", ours <= cap)


def run(quick: bool, log: Callable[[str], None]) -> Section:
    log("native-scale: the bench program (bench/work/native)")
    base = native_input(quick, 1)
    rows, raw = _rows(f"{base.dwarf_bytes / 2**20:.0f} MiB DWARF", base, REPEATS[quick], None, True)
    notes = [f"Inputs: the native bench's C++ program ({base.dwarf_bytes / 2**20:.1f} MiB of DWARF)"]
    if not quick:
        log("native-scale: the >= 1 GiB-DWARF file (bench/work/native/big; built once)")
        big = big_input()
        big_rows, big_raw = _rows(f"{big.dwarf_bytes / 2**30:.2f} GiB DWARF", big, BIG_REPEATS, 1.5 * GiB, False)
        rows += big_rows
        raw.update(big_raw)
        notes[0] += (f" and `big_input` ({big.dwarf_bytes / 2**30:.2f} GiB of DWARF in a "
                     f"{big.binary.stat().st_size / 2**30:.2f} GiB ELF: the program's clang objects linked "
                     "several times by lld under renamed symbols)")
    notes[0] += "; ours with the default `limits.conversion_memory_bytes` (1 GiB)."
    notes.append("Whole process = interpreter start, imports, conversion, cache written, exit; engine only = "
                 "the conversion and write in a `bench.child` whose imports are untimed. Times are the best "
                 "sample of each side, RSS the median; the machine is shared, so only ratios of one run mean much.")
    return Section("Native conversion at scale (issue 11 items 1-2, `bench/native_scale.py`)", notes, rows,
                   samples=raw)


if __name__ == "__main__":
    raise SystemExit(section_main("python -m bench.native_scale", __doc__, "the bench's quick program only", run))
