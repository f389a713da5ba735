"""Run one measured piece of work in a fresh child process; report wall time and peak RSS.

Issue 5 defines the figures this produces: *cold* = a fresh process and an empty
cache, *peak RSS* = the peak RSS of a fresh child doing only that work (`VmHWM`, what `ru_maxrss` would be without the parent it inherits from). So every
figure comes from its own interpreter: nothing the parent (or an earlier figure)
imported, allocated or cached can flatter it, and the peer libraries run under
exactly the same rules as ours.

A *task* is named `module:function`. The function gets the JSON arguments and
does its setup (imports, reading inputs), untimed, and returns the work: a
callable, or a pair `(work, after)` where `after(result)` runs untimed once the
clock has stopped (to save a cache for a later warm figure, say). The work may
return a dict of counts (`n` lookups, agreement figures) passed back as `extra`.
`ru_maxrss` covers the whole child — interpreter, imports, inputs, work — for
ours and the peers alike.

    python -m bench.child bench.sourcemap_bench:ours_parse '{"map": "..."}' [--profile N]

prints one line `BENCH-RESULT {json}`; with `--profile N` the work runs under
cProfile and the result carries the top N entries by own time instead; with
`--setup-only` the work is skipped (the RSS floor of imports and inputs).
"""

from __future__ import annotations

import cProfile
import importlib
import io
import json
import os
import pstats
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MARKER = "BENCH-RESULT "

Work = Callable[[], Any]
Task = Callable[[Mapping[str, Any]], "Work | tuple[Work, Callable[[Any], None]]"]


@dataclass(frozen=True)
class Sample:
    """One fresh-process measurement: `seconds` of wall time for the work alone, `maxrss` in bytes."""

    seconds: float
    maxrss: int
    extra: dict[str, Any] = field(default_factory=dict)


class ChildFailed(RuntimeError):
    """A measured child exited non-zero or printed no result; carries its stderr tail."""


def run_task(spec: str, args: Mapping[str, Any], *, profile_top: int = 0, setup_only: bool = False,
             timeout: float = 3600) -> Sample:
    """Run `spec` in a fresh interpreter and parse its result line.

    `setup_only`: stop before the work, to read the RSS of interpreter, imports
    and inputs alone — the floor under a peak-RSS figure.
    """
    argv = [sys.executable, "-m", "bench.child", spec, json.dumps(dict(args))]
    if profile_top:
        argv += ["--profile", str(profile_top)]
    if setup_only:
        argv.append("--setup-only")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER):])
            return Sample(data["seconds"], data["maxrss"], data["extra"])
    raise ChildFailed(f"{spec} exited {proc.returncode}:\n{proc.stderr[-3000:]}")


def profile_text(spec: str, args: Mapping[str, Any], top: int = 15) -> str:
    """cProfile's top entries by own time for the work of `spec`, in a fresh child."""
    return str(run_task(spec, args, profile_top=top).extra.get("profile", ""))


def run_command(argv: Sequence[str], stdin: bytes, timeout: float = 3600) -> Sample:
    """Time an external tool end to end (process start included) and read its ru_maxrss.

    `os.wait4` gives the rusage of exactly this child, not of every child the
    parent ever reaped, so a peer tool gets the same RSS definition as our tasks.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    out_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()))  # type: ignore[union-attr]
    reader.start()
    proc.stdin.write(stdin)
    proc.stdin.close()
    reader.join(timeout)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise ChildFailed(f"{argv[0]} exited {proc.returncode}")
    output = b"".join(out_chunks)
    return Sample(seconds, usage.ru_maxrss * 1024, {"output_lines": output.count(b"\n")})


def peak_rss_bytes() -> int:
    """This process's peak RSS since its `exec` (`VmHWM`).

    Not `ru_maxrss`: Linux carries that high-water mark across `execve`, so a child
    started by a big parent would report the parent's size, not its own work.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _profile(work: Work, top: int) -> tuple[Any, str]:
    profiler = cProfile.Profile()
    result = profiler.runcall(work)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    return result, text.getvalue()


def main(argv: Sequence[str]) -> int:
    spec, raw_args = argv[0], argv[1]
    top = int(argv[argv.index("--profile") + 1]) if "--profile" in argv else 0
    module_name, func_name = spec.split(":")
    task: Task = getattr(importlib.import_module(module_name), func_name)
    prepared = task(json.loads(raw_args))
    work, after = prepared if isinstance(prepared, tuple) else (prepared, None)
    profile_text = ""
    start = time.perf_counter()
    if "--setup-only" in argv:
        result, after = None, None
    elif top:
        result, profile_text = _profile(work, top)
    else:
        result = work()
    seconds = time.perf_counter() - start
    maxrss = peak_rss_bytes()
    if after is not None:
        after(result)
    extra = dict(result) if isinstance(result, dict) else {}
    if profile_text:
        extra["profile"] = profile_text
    print(MARKER + json.dumps({"seconds": seconds, "maxrss": maxrss, "extra": extra}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
