"""Issue 11 item 5: the CLI as a user times it, whole process, beside `symbolic` in the same run.

Every figure is a fresh `python -m symbolicator …` (or peer) process, wall time
from spawn to exit and peak RSS from `wait4`, interleaved with the peer's:

- start: `symbolicator --version` and `--help` vs `python -c "import symbolic"`
  (target ≤ 3×): what a user waits for before anything happens;
- `resolve-js --sourcemap MAP POS --no-cache` (the minified file beside the map, so
  function names are found too) vs a process running symbolic's
  `SourceMapCache.from_bytes(minified, map)` and one lookup (target ≤ 3×);
- the second call on the same file, answered from the offline cache
  (`--cache-dir`): `resolve-js` on the same map and `resolve` on the native bench
  program (target ≤ 0.3 s whatever the file's size).

    python -m bench.cli_bench [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.child import Sample
from bench.inputs import WORK, js_input, native_input
from bench.report import Pairs, Row, Section, interleave, mib, ms, table

REPO = Path(__file__).resolve().parent.parent
REPEATS = {True: 3, False: 7}
SECOND_CALL_LIMIT_S = 0.3
_SYMBOLIC_SM = ("import sys\nfrom symbolic.sourcemapcache import SourceMapCache\n"
                "m = open(sys.argv[1], 'rb').read(); j = open(sys.argv[2], 'rb').read()\n"
                "c = SourceMapCache.from_bytes(j, m)\nc.lookup(int(sys.argv[3]), int(sys.argv[4]), 0)\n")


def spawn(argv: Sequence[str]) -> Sample:
    """One whole process: wall seconds from spawn to exit, peak RSS (bytes) from wait4."""
    # As installed: Python keeps compiled bytecode (this machine sets PYTHONDONTWRITEBYTECODE, which would
    # make every run of ours compile its sources while the peer's wheel ships bytecode).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {code}: {err[-2000:]}")
    return Sample(seconds, usage.ru_maxrss * 1024)


def ours(*args: str) -> Callable[[], Sample]:
    return lambda: spawn([sys.executable, "-m", "symbolicator", *args])


def python(*args: str) -> Callable[[], Sample]:
    return lambda: spawn([sys.executable, *args])


def _ratio_row(figure: str, pairs: Pairs, peer_name: str, limit: float) -> Row:
    r = pairs.time_ratio()
    return Row(figure, ms(pairs.best_seconds("ours")), f"{ms(pairs.best_seconds('peer'))} ({peer_name})",
               f"{r:.2f}×", f"≤ {limit:g}×", r <= limit)


def run(quick: bool, log: Callable[[str], None]) -> Section:
    reps = REPEATS[quick]
    rows: list[Row] = []
    samples: dict[str, str] = {}
    import_symbolic = python("-c", "import symbolic")

    for flag in ("--version", "--help"):
        log(f"cli: symbolicator {flag} vs python -c 'import symbolic'")
        start = interleave(ours(flag), import_symbolic, reps * 2)
        rows.append(_ratio_row(f"`symbolicator {flag}`, whole process", start, "`python -c \"import symbolic\"`", 3.0))
        samples[f"start {flag}"] = start.raw()

    inp = js_input(quick, 100)
    line, col = json.loads(inp.positions.read_text())[0]
    log("cli: resolve-js --no-cache vs SourceMapCache.from_bytes, whole process")
    js = interleave(ours("resolve-js", "--sourcemap", str(inp.sourcemap), "--no-cache", f"{line}:{col}"),
                    python("-c", _SYMBOLIC_SM, str(inp.sourcemap), str(inp.minified), str(line), str(col)), reps)
    rows.append(_ratio_row(f"`resolve-js` on the {inp.sourcemap.stat().st_size / 1e6:.1f} MB {inp.package} map, "
                           "whole process, no cache", js, "symbolic `SourceMapCache.from_bytes` + 1 lookup", 3.0))
    rows.append(Row("… peak RSS", mib(js.median_rss("ours")), mib(js.median_rss("peer")),
                    f"{js.rss_ratio():.2f}×", "info", None))
    samples["resolve-js cold"] = js.raw()

    cache_dir = Path(tempfile.mkdtemp(prefix="cli-bench-", dir=WORK))
    try:
        log("cli: second resolve-js call (offline cache)")
        warm_js = ours("resolve-js", "--sourcemap", str(inp.sourcemap), "--cache-dir", str(cache_dir), f"{line}:{col}")
        warm_js()  # the first call converts and keeps
        js_warm = interleave(warm_js, import_symbolic, reps)
        best = js_warm.best_seconds("ours")
        rows.append(Row("second `resolve-js` call on the same map (offline cache)", ms(best),
                        f"{ms(js_warm.best_seconds('peer'))} (`import symbolic`)", f"{js_warm.time_ratio():.2f}×",
                        f"≤ {SECOND_CALL_LIMIT_S * 1000:.0f} ms", best <= SECOND_CALL_LIMIT_S))
        samples["resolve-js second call"] = js_warm.raw()

        nat = native_input(quick, 100)
        address = hex(json.loads(nat.addresses.read_text())[0])
        log(f"cli: resolve on the native program ({nat.dwarf_bytes / 2**20:.1f} MiB DWARF): first call, then second")
        warm_native = ours("resolve", "--debug-file", str(nat.binary), "--cache-dir", str(cache_dir), address)
        first = warm_native()
        native_warm = interleave(warm_native, import_symbolic, reps)
        best = native_warm.best_seconds("ours")
        rows.append(Row(f"second `resolve` call on the {nat.dwarf_bytes / 2**20:.1f} MiB-DWARF program "
                        f"(first call {ms(first.seconds)})", ms(best),
                        f"{ms(native_warm.best_seconds('peer'))} (`import symbolic`)",
                        f"{native_warm.time_ratio():.2f}×", f"≤ {SECOND_CALL_LIMIT_S * 1000:.0f} ms",
                        best <= SECOND_CALL_LIMIT_S))
        samples["resolve second call"] = native_warm.raw()
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)

    notes = [
        ("Whole processes (`python -m symbolicator …`, spawn to exit), interleaved with the peer in the same run; "
         f"{reps} pairs per figure ({reps * 2} for the start), best time of each side, median peak RSS (`wait4`)."),
        "The machine is shared: absolute times move with its load, the ratios much less.",
    ]
    return Section("Command line (issue 11 item 5, `bench/cli_bench.py`)", notes, rows, {}, samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small inputs, for development")
    args = parser.parse_args(argv)
    section = run(args.quick, lambda m: print(f"[cli-bench {time.strftime('%H:%M:%S')}] {m}", file=sys.stderr))
    print("\n".join([f"## {section.title}", "", *section.notes, "", *table(section.rows), "",
                     *[f"- {k}: {v}" for k, v in section.samples.items()]]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
