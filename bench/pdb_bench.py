"""PDB → symcache conversion (issue 16), ours beside PyPI `symbolic`, whole process, in one run.

Two inputs: the MinGW fixture `tests/fixtures/pe/mg.pdb` (140 KB) and a bigger PDB made here
from the native bench's generated C++ program (`inputs._cpp_file`: std::vector / std::map /
std::function / lambdas and `always_inline` template chains, six structs × six instantiations
per unit) compiled by clang++ 14 for `x86_64-w64-mingw32` with `-O1 -g -gcodeview` against
Debian's MinGW libstdc++ headers and linked by lld with `--pdb` (the MSVC triple has no C++
headers here). Quick: one unit; full: `FULL_UNITS` units. Built once into `bench/work/pdb/`.

Whole process, alternating fresh processes, best time and median peak RSS of each side:
`python -m symbolicator.native.pdb IN OUT` against `python -c` running
`Archive.open(IN).get_object(arch=…).make_symcache().dump_into(OUT)`. A sanity line gives the
share of sampled instructions (every `SAMPLE_STEP`-th instruction start from llvm-objdump) where
the two caches give the same (file, line) at every inline depth.

    python -m bench.pdb_bench [--quick]
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.child import Sample, run_command
from bench.inputs import WORK, _cpp_file, _main_file
from bench.report import Pairs, Row, Section, interleave, mib, ms, section_main

REPEATS = {True: 3, False: 5}
FULL_UNITS = 6
SAMPLE_STEP = 7
FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "pe" / "mg.pdb"
MINGW_GCC = "/usr/lib/gcc/x86_64-w64-mingw32/12-win32"
_SYMBOLIC = ("from symbolic.debuginfo import Archive; import sys; "
             "c = Archive.open(sys.argv[1]).get_object(arch='x86_64').make_symcache(); "
             "c.dump_into(open(sys.argv[2], 'wb'))")
_INSN = re.compile(r"^\s*([0-9a-f]+):\s", re.M)


def big_pdb(units: int, jobs: int = 2) -> Path:
    """The generated program built for MinGW with a PDB (once per source digest); returns the PDB path."""
    out = WORK / "pdb" / f"units-{units}"
    out.mkdir(parents=True, exist_ok=True)
    sources = {f"gen{f}.cpp": _cpp_file(f, 6, 6) for f in range(units)}
    sources["main.cpp"] = _main_file(units)
    digest = hashlib.sha256("".join(sources.values()).encode()).hexdigest()[:16]
    stamp, pdb = out / "stamp.json", out / "program.pdb"
    if pdb.exists() and stamp.exists() and json.loads(stamp.read_text()).get("sources") == digest:
        return pdb
    for name, text in sources.items():
        (out / name).write_text(text)
    flags = ["--target=x86_64-w64-mingw32", "-O1", "-g", "-gcodeview", "-std=c++17", "-nostdinc++",
             "-isystem", f"{MINGW_GCC}/include/c++", "-isystem", f"{MINGW_GCC}/include/c++/x86_64-w64-mingw32"]

    def compile_one(name: str) -> Path:
        obj = out / (name + ".o")
        subprocess.run(["clang++", *flags, "-c", str(out / name), "-o", str(obj)], check=True, cwd=out)
        return obj

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        objects = list(pool.map(compile_one, sorted(sources)))
    subprocess.run(["clang++", "--target=x86_64-w64-mingw32", "-fuse-ld=lld", f"-Wl,--pdb={pdb}", f"-L{MINGW_GCC}",
                    *map(str, objects), "-o", str(out / "program.exe")], check=True, cwd=out)
    for obj in objects:
        obj.unlink()
    stamp.write_text(json.dumps({"sources": digest}))
    return pdb


def _agreement(exe: Path, base: int, ours: Path, theirs: Path) -> tuple[float, int]:
    """Share of sampled instruction starts where both caches give the same (file, line) chain."""
    from symbolic.symcache import SymCache as TheirCache

    from symbolicator.native.symcache import SymCache

    text = subprocess.run(["llvm-objdump", "-d", "--no-show-raw-insn", str(exe)], capture_output=True, text=True,
                          check=True).stdout
    rvas = sorted({int(m.group(1), 16) - base for m in _INSN.finditer(text)})[::SAMPLE_STEP]
    a, b = SymCache.open(ours), TheirCache.open(str(theirs))
    try:
        same = sum([(f.file, f.line) for f in a.lookup(r)] == [(loc.full_path or None, loc.line or None)
                                                                   for loc in b.lookup(r)] for r in rvas)
    finally:
        a.close()
    return same / max(len(rvas), 1), len(rvas)


def _whole(argv: list[str]) -> Callable[[], Sample]:
    return lambda: run_command(argv, b"")


def _rows(label: str, pdb: Path, exe: Path | None, reps: int) -> tuple[list[Row], dict[str, str]]:
    work = WORK / "pdb"
    work.mkdir(parents=True, exist_ok=True)
    ours_out, peer_out = work / f"{pdb.stem}-ours.symcache", work / f"{pdb.stem}-symbolic.symcache"
    p: Pairs = interleave(_whole([sys.executable, "-m", "symbolicator.native.pdb", str(pdb), str(ours_out)]),
                          _whole([sys.executable, "-c", _SYMBOLIC, str(pdb), str(peer_out)]), reps)
    r = p.time_ratio()
    ours_rss, peer_rss = p.median_rss("ours"), p.median_rss("peer")
    rows = [Row(f"{label}: whole process, time", ms(p.best_seconds("ours")), ms(p.best_seconds("peer")),
                f"{r:.1f}×", "info", None),
            Row(f"{label}: whole process, peak RSS", mib(ours_rss), mib(peer_rss), f"{ours_rss / peer_rss:.2f}×",
                "info", None),
            Row(f"{label}: symcache size", mib(ours_out.stat().st_size), mib(peer_out.stat().st_size),
                f"{ours_out.stat().st_size / peer_out.stat().st_size:.2f}×", "info", None)]
    if exe is not None:
        share, n = _agreement(exe, 0x140000000, ours_out, peer_out)
        rows.append(Row(f"{label}: same file + line chain as symbolic ({n} instructions)", f"{share:.2%}", "", "",
                        "info", None))
    return rows, {label: p.raw()}


def run(quick: bool, log: Callable[[str], None]) -> Section:
    reps = REPEATS[quick]
    log("pdb: the MinGW fixture")
    rows, raw = _rows(f"mg.pdb ({FIXTURE.stat().st_size // 1024} KiB)", FIXTURE, FIXTURE.with_suffix(".exe"), reps)
    units = 1 if quick else FULL_UNITS
    log(f"pdb: the generated program, {units} unit(s) (bench/work/pdb; built once)")
    big = big_pdb(units)
    big_rows, big_raw = _rows(f"program.pdb ({big.stat().st_size / 2**20:.1f} MiB)", big,
                              big.with_suffix(".exe"), reps)
    notes = [f"Inputs: tests/fixtures/pe/mg.pdb and a PDB of the native bench's generated C++ program ({units} "
             "unit(s) + main) built by clang++ 14 for x86_64-w64-mingw32 (-O1 -g -gcodeview, MinGW libstdc++) "
             "and lld --pdb.",
             "Whole process = interpreter start, imports, conversion, cache written, exit: "
             "`python -m symbolicator.native.pdb` against a `python -c` script calling symbolic. Times are the best "
             "sample of each side, RSS the median; the machine is shared, so only the ratios of one run mean much."]
    return Section("PDB conversion (issue 16, `bench/pdb_bench.py`)", notes, rows + big_rows,
                   samples={**raw, **big_raw})


if __name__ == "__main__":
    raise SystemExit(section_main("python -m bench.pdb_bench", __doc__, "a one-unit generated program", run))
