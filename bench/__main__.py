"""One command for the engine benchmarks: ours beside the peers, in one run, as ratios.

    python -m bench [--quick] [--only PART ...] [--no-profile] [--out PATH]
    bench/run [same flags]

Runs the JS figures (issue 3, `sourcemap_bench.py`), the native figures
(issue 4, `native_bench.py`), the upload benchmark (`bench/upload.py`, run as a
subprocess), and the service as a whole (issue 5): load and isolation
(`service_load.py`), coalescing counted at the origin and at S3
(`coalescing.py`), the derived cache past its cap (`cache_scale.py`), and the
command line as a user times it (`cli_bench.py`). It writes one Markdown report with
every figure, its ratio, the target as a pass/fail line, the machine, its load,
the date and the command. Peers run inside the same run because only ratios
survive a noisy machine (issue 5); absolute figures are for orientation.

`--quick` uses small inputs (a ~1.8 MB map, a ~5 MiB-DWARF program, a 100 MiB
upload) for development on a shared machine; its figures are labelled quick and
go to `bench/RESULTS-quick.md` unless `--out` says otherwise, as do those of
`--only` runs, so a quick or partial check never overwrites the full figures in
`bench/RESULTS.md`. A missed target gets
cProfile's top entries of our side of it, from one more fresh child.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from bench import (
    cache_scale,
    cli_bench,
    coalescing,
    native_bench,
    native_scale,
    pdb_bench,
    service_load,
    sourcemap_bench,
    wasm_scale,
)
from bench.report import Row, Section, machine, peer_versions, table, verdict

REPO = Path(__file__).resolve().parent.parent
UPLOAD_MIB = {True: 100, False: 1100}
PARTS = ("js", "native", "native-scale", "pdb", "wasm", "upload", "service", "coalescing", "cache", "cli")


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_upload(quick: bool) -> Section:
    """The lead's upload benchmark, unchanged, in its own process; its report is folded in."""
    size = UPLOAD_MIB[quick]
    report = REPO / "bench" / "results" / "upload.md"
    kept = report.read_text() if quick and report.exists() else None
    _log(f"upload: python -m bench.upload --size-mib {size}")
    proc = subprocess.run([sys.executable, "-m", "bench.upload", "--size-mib", str(size)], cwd=REPO,
                          capture_output=True, text=True)
    text = report.read_text() if report.exists() else ""
    if kept is not None:
        report.write_text(kept)  # a quick run never replaces the full upload figures
    if proc.returncode != 0 or not text:
        row = Row("upload benchmark", "failed", "", "", "≥ 60 MB/s, ≤ 200 MB RSS", False)
        return Section("Upload (issue 2, `bench/upload.py`)", [f"```\n{proc.stderr[-2000:]}\n```"], [row])
    mbps = re.search(r"\*\*end to end\*\* \| \*\*[\d.]+\*\* \| \*\*(\d+)\*\*", text)
    rss = re.search(r"peak RSS \(VmHWM\): \*\*(\d+) MiB\*\*", text)
    rows = []
    if mbps:
        rows.append(Row("upload end to end", f"{mbps.group(1)} MB/s", "", "", "≥ 60 MB/s", int(mbps.group(1)) >= 60))
    if rss:
        rows.append(Row("service peak RSS during upload", f"{rss.group(1)} MiB", "", "", "≤ 200 MB",
                        int(rss.group(1)) * 1.048576 <= 200))
    body = [re.sub(r"^# .*$", "", text, count=1, flags=re.M).strip()]
    return Section("Upload (issue 2, `bench/upload.py`)", body, rows)


def render(sections: list[Section], args: argparse.Namespace, command: str, started: dict[str, object],
           elapsed: float) -> str:
    m = machine()
    mode = "QUICK (small inputs, development figures — not the issue targets' inputs)" if args.quick else "full"
    lines = [
        "# Benchmark results", "",
        f"- **Mode: {mode}**",
        f"- Command: `{command}`",
        f"- Date: {started['date']} (took {elapsed / 60:.1f} min)",
        f"- Machine: {m['host']}, {m['cpu']}, {m['cores']} cores, Python {m['python']}",
        f"- Load average at start / end: {' '.join(f'{x:.2f}' for x in started['load'])} / "  # type: ignore[attr-defined]
        f"{' '.join(f'{x:.2f}' for x in m['load'])}",
        "- Peers: " + ", ".join(f"{k} {v}" for k, v in peer_versions().items())
        + f", {_tool_version(['llvm-symbolizer', '--version'])}, {_tool_version(['addr2line', '--version'])}",
        "",
        "Every figure comes from a fresh child process (`bench/child.py`); see `bench/README.md` for what each "
        "means. Ours and each peer ran interleaved in this run; times are each side's best sample (load only "
        "adds time), RSS the median; raw samples are in the appendix.", "",
        "## Targets", "",
        "| target | figure | result |", "| --- | --- | --- |",
    ]
    for s in sections:
        lines += [f"| {r.target} | {s.title}: {r.figure} ({'; '.join(x for x in (r.ours, r.ratio) if x)}) "
                  f"| {verdict(r.passed)} |"
                  for r in s.rows if r.passed is not None]
    for s in sections:
        lines += ["", f"## {s.title}", "", *s.notes, "", *table(s.rows)]
    profiled = [(s.title, k, v) for s in sections for k, v in s.profiles.items()]
    if profiled:
        lines += ["", "## Profiles of our side where a target (or aim) was missed", "",
                  "cProfile in a fresh child, top entries by own time (profiling slows Python code, "
                  "so read shares, not seconds)."]
        for title, figure, text in profiled:
            lines += ["", f"### {title}: {figure}", "", "```", _trim_profile(text), "```"]
    records = sorted((REPO / "bench" / "results" / "ab").glob("*.md"))
    if records:
        lines += ["", "## Before and after: changes to the service (`python -m bench.ab`, recorded)", "",
                  "Each record was taken when its change was made, on the machine of that day (`bench/README.md`)."]
        for record in records:
            lines += ["", f"### {record.stem}", "", record.read_text().strip()]
    lines += ["", "## Appendix: every sample", ""]
    lines += [f"- {s.title}, {k}: {v}" for s in sections for k, v in s.samples.items()]
    return "\n".join(lines) + "\n"


def _trim_profile(text: str) -> str:
    out = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(out) if "function calls" in ln), 0)
    return "\n".join(out[start:]).replace(str(REPO) + "/", "")


def _tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return f"{argv[0]} missing"
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    first = lines[0] if lines else "?"
    if argv[0] == "llvm-symbolizer":
        first = next((ln for ln in lines if "LLVM version" in ln), first)
    return f"`{argv[0]}` ({first})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small inputs, for development")
    parser.add_argument("--only", choices=PARTS, action="append",
                        help="run only this part (repeatable)")
    parser.add_argument("--no-profile", action="store_true", help="skip profiling missed targets")
    parser.add_argument("--out", type=Path,
                        help="report path (default bench/RESULTS.md; quick or --only: RESULTS-quick.md)")
    args = parser.parse_args(argv)
    parts = args.only or list(PARTS)
    # Only a full run replaces bench/RESULTS.md: a quick or partial one would drop the other parts' figures.
    out = args.out or REPO / "bench" / ("RESULTS-quick.md" if args.quick or args.only else "RESULTS.md")
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = machine()
    t0 = time.perf_counter()
    sections: list[Section] = []
    if "js" in parts:
        sections.append(sourcemap_bench.run(args.quick, _log, profile=not args.no_profile))
    if "native" in parts:
        sections.append(native_bench.run(args.quick, _log, profile=not args.no_profile))
    if "native-scale" in parts:
        sections.append(native_scale.run(args.quick, _log))
    if "pdb" in parts:
        sections.append(pdb_bench.run(args.quick, _log))
    if "wasm" in parts:
        sections.append(wasm_scale.run(args.quick, _log))
    if "upload" in parts:
        sections.append(run_upload(args.quick))
    if "service" in parts:
        sections.append(service_load.run(args.quick, _log, profile=not args.no_profile))
    if "coalescing" in parts:
        sections.append(coalescing.run(args.quick, _log))
    if "cache" in parts:
        sections.append(cache_scale.run(args.quick, _log))
    if "cli" in parts:
        sections.append(cli_bench.run(args.quick, _log))
    report = render(sections, args, command.strip(), started, time.perf_counter() - t0)
    out.write_text(report)
    print(report)
    _log(f"wrote {os.path.relpath(out, REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
