"""The service's warm round trip before and after a change, measured side by side.

    python -m bench.ab BEFORE [--after REV] [--full] [--s3] [--rounds 3] [--windows 5] [--window-s 2]

A single service run cannot show a before/after of a few hundred microseconds
here: the p50 of one window moves by half from one window to the next with
nothing else running. So the two versions run alternately (before, after,
before, after, …), each round in a fresh service process on a fresh cache with
the same uploads and events, and each round's figure is the best p50 of a few
short windows of `wrk` at concurrency 1 (the engine figures take their best
pass the same way: load only ever adds time).

BEFORE and `--after` are git revisions (default for after: the working tree
as it is); each is checked out as a detached worktree under `bench/work/ab/`
and the service runs from it through PYTHONPATH, while the events, the
uploads and the client are this tree's. Prints a Markdown table; needs `wrk`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from bench import native_bench, sourcemap_bench
from bench.inputs import REPO, WORK, js_input, native_input
from bench.report import machine
from bench.s3_rig import service_on_s3
from bench.service_events import (
    RELEASE,
    SCOPE,
    js_events,
    native_events,
    native_modules,
)
from bench.service_harness import answer_all, run_wrk, upload, wrk_available
from tests.support.service import ServiceProcess

N_EVENTS = {True: 100, False: 500}


def _worktree(rev: str, stack: ExitStack) -> tuple[Path, str]:
    """A detached checkout of `rev` (removed on the way out) and its short commit id."""
    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.strip()
    path = WORK / "ab" / sha
    if path.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=REPO, capture_output=True)
        shutil.rmtree(path, ignore_errors=True)
    subprocess.run(["git", "worktree", "add", "--detach", str(path), sha], cwd=REPO, capture_output=True,
                   check=True)
    stack.callback(subprocess.run, ["git", "worktree", "remove", "--force", str(path)], cwd=REPO,
                   capture_output=True)
    return path, sha


def _events(quick: bool, run_dir: Path) -> tuple[dict[str, Path], list[Path]]:
    """Event files by kind (JSON lists for the warm-up and `run_wrk`) and the paths to upload."""
    inp_js = js_input(quick, sourcemap_bench.N_FRAMES[quick])
    inp_nat = native_input(quick, native_bench.N_FRAMES[quick])
    modules = native_modules(inp_nat.binary)
    n = N_EVENTS[quick]
    files = {"JS": run_dir / "js-events.json", "native": run_dir / "native-events.json"}
    files["JS"].write_text(json.dumps(js_events(inp_js.minified.name, json.loads(inp_js.positions.read_text()), n)))
    files["native"].write_text(json.dumps(native_events(modules, json.loads(inp_nat.addresses.read_text()), n)))
    js_dir = run_dir / "js" / "static"
    js_dir.mkdir(parents=True)
    for f in (inp_js.minified, inp_js.sourcemap):
        os.link(f, js_dir / f.name)
    return files, [js_dir.parent, *(m.path for m in modules)]


def _one_round(tree: Path | None, run_dir: Path, files: dict[str, Path], uploads: list[Path], windows: int,
               window_s: float, s3: bool) -> dict[str, list[float]]:
    """A fresh service from `tree` (None: this one) on fresh storage, warmed with every event; p50 (s) of
    each window by kind."""
    for sub in ("uploads", "cache", "seaweed"):
        shutil.rmtree(run_dir / sub, ignore_errors=True)
    cache = {"cache": {"dir": str(run_dir / "cache")}}
    env = {"PYTHONPATH": str(tree)} if tree is not None else {}
    with ExitStack() as stack:
        if s3:
            url = stack.enter_context(service_on_s3(run_dir, cache, counting=False, env=env)).url
        else:
            svc = ServiceProcess(run_dir, {"storage": {"backend": "local", "local_dir": str(run_dir / "uploads")},
                                           **cache}, env=env)
            stack.callback(svc.stop)
            url = svc.start(timeout=60).url
        upload(url, SCOPE, RELEASE, uploads)
        p50s: dict[str, list[float]] = {}
        for kind, path in files.items():
            answer_all(url, json.loads(path.read_text()))
            p50s[kind] = [run_wrk(run_dir, url, path, 1, window_s)["p50_s"] for _ in range(windows)]
        return p50s


def machine_line() -> str:
    m = machine()
    return f"{m['host']}, {m['cpu']}, {m['cores']} cores, Python {m['python']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", help="git revision of the service before the change")
    parser.add_argument("--after", help="git revision after the change (default: the working tree)")
    parser.add_argument("--full", action="store_true", help="the full-size inputs (default: the quick ones)")
    parser.add_argument("--s3", action="store_true", help="the uploads on SeaweedFS (S3), not a local folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--windows", type=int, default=5, help="wrk windows per kind and round")
    parser.add_argument("--window-s", type=float, default=2.0)
    parser.add_argument("--record", metavar="NAME",
                        help="also keep the table as bench/results/ab/NAME.md (folded into bench/RESULTS.md)")
    args = parser.parse_args(argv)
    if not wrk_available():
        print("bench.ab needs wrk (Debian package `wrk`)", file=sys.stderr)
        return 2
    quick = not args.full

    def log(message: str) -> None:
        print(f"[ab {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    with ExitStack() as stack:
        run_dir = WORK / "ab" / "run"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        stack.callback(shutil.rmtree, run_dir, True)
        before_tree, before_sha = _worktree(args.before, stack)
        if args.after:
            after_tree, after_name = _worktree(args.after, stack)
        else:
            head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                  check=True).stdout.strip()
            after_tree, after_name = None, f"the working tree on {head}"
        log("inputs and events")
        files, uploads = _events(quick, run_dir)
        best: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
        for r in range(args.rounds):
            for side, tree in (("before", before_tree), ("after", after_tree)):
                log(f"round {r + 1}/{args.rounds}: {side}")
                for kind, p50s in _one_round(tree, run_dir, files, uploads, args.windows, args.window_s,
                                             args.s3).items():
                    best[side].setdefault(kind, []).append(min(p50s))
    lines = [f"`python -m bench.ab {' '.join(sys.argv[1:] if argv is None else argv)}`: before {before_sha}, "
             f"after {after_name}; {'full' if args.full else 'quick'} inputs, {N_EVENTS[quick]} events of each kind, "
             f"uploads on {'SeaweedFS (S3)' if args.s3 else 'a local folder'}; "
             f"{args.rounds} alternating rounds, each a fresh service; per round the best p50 of {args.windows} "
             f"`wrk` windows of {args.window_s:g} s at concurrency 1.", "",
             "| events | before: best p50 per round | after: best p50 per round | after ÷ before (medians) |",
             "| --- | --- | --- | ---: |"]
    for kind in best["before"]:
        b, a = best["before"][kind], best["after"][kind]
        fmt = " / ".join
        lines.append(f"| {kind} | {fmt(f'{x * 1000:.2f} ms' for x in b)} | {fmt(f'{x * 1000:.2f} ms' for x in a)} | "
                     f"{statistics.median(a) / statistics.median(b):.2f}× |")
    print("\n".join(lines))
    if args.record:
        out = REPO / "bench" / "results" / "ab" / f"{args.record}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine_line()}.\n\n"
                       + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
