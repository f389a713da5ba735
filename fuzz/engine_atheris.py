"""The atheris engine: coverage-guided libFuzzer over a target's seed corpus, one child per target.

Each target runs in its own process (`fuzz.atheris_child`) so a crash, a hang or an
out-of-memory stops that target only; the parent follows libFuzzer's status lines on
stderr for progress and the run count, and picks up the input saved for a crash
(libFuzzer's `Test unit written to …`, or the child's own copy in the crash folder).
New coverage-increasing inputs go to a temporary work corpus, never into the committed
`fuzz/corpus/<target>/`, which is read as seeds only; it and the child's scratch folder are
removed when the child is gone.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

from fuzz.outcome import Outcome, Progress
from fuzz.scratch import SCRATCH_ENV
from fuzz.targets import Target

REPO = Path(__file__).resolve().parent.parent
RSS_LIMIT_MB = 2048
_STATUS = re.compile(r"^#(\d+)\s+(INITED|NEW|REDUCE|pulse|DONE|RELOAD)\b.*?(?:cov: (\d+))?")
_WRITTEN = re.compile(r"Test unit written to (\S+)")
_EXECUTED = re.compile(r"stat::number_of_executed_units:\s*(\d+)")


def command(target: Target, runs: int, max_seconds: float | None, time_limit: float, crash_dir: Path,
            work: Path, seed: int, instrument: bool = True) -> list[str]:
    cmd = [sys.executable, "-m", "fuzz.atheris_child", target.module, ",".join(target.instrument),
           *([] if instrument else ["--uninstrumented"]), f"-runs={runs}",
           f"-timeout={max(1, math.ceil(time_limit))}", f"-rss_limit_mb={RSS_LIMIT_MB}",
           f"-artifact_prefix={crash_dir}/atheris-", f"-seed={seed}", "-print_final_stats=1"]
    if max_seconds:
        cmd.append(f"-max_total_time={max(1, math.ceil(max_seconds))}")
    return cmd + [str(work), str(target.corpus)]


def run(target: Target, runs: int, max_seconds: float | None, time_limit: float, crash_dir: Path,
        seed: int = 0, progress_every: float = 10.0, instrument: bool = True) -> Outcome:
    """Run one target's child to completion; `instrument=False` trades coverage feedback for start-up time."""
    outcome = Outcome(target.name, "atheris")
    progress = Progress("atheris", target.name, progress_every)
    crash_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"symbolicator-fuzz-{target.name}-"))
    work = root / "corpus"
    work.mkdir()
    tail: deque[str] = deque(maxlen=120)
    started, wall_start = time.monotonic(), time.time() - 1
    proc: subprocess.Popen[str] | None = None
    try:
        cmd = command(target, runs, max_seconds, time_limit, crash_dir, work, seed, instrument)
        env = {**os.environ, SCRATCH_ENV: str(root / "scratch")}
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line)
            if m := _STATUS.match(line):
                outcome.inputs = int(m[1])
                progress.say(f"{outcome.inputs}/{runs} inputs, {m[2]}" + (f", coverage {m[3]}" if m[3] else ""))
            elif m := _WRITTEN.search(line):
                outcome.crashes.append(Path(m[1]))
            elif m := _EXECUTED.search(line):
                outcome.inputs = int(m[1])
        code = proc.wait()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        shutil.rmtree(root, ignore_errors=True)
    outcome.seconds = time.monotonic() - started
    written = {p for p in crash_dir.glob("atheris-*") if p.stat().st_mtime >= wall_start}
    outcome.crashes = sorted(set(outcome.crashes) | written)
    if outcome.crashes:
        text = "".join(tail)
        start = min((i for i in (text.find("=== Uncaught Python exception"), text.find("ALARM:"),
                                 text.find("ERROR: libFuzzer")) if i >= 0), default=0)
        outcome.detail = text[start:]
    elif code != 0:
        outcome.error = f"atheris child exited with {code}:\n" + "".join(tail)[-3000:]
    progress.say(f"{outcome.inputs} inputs, {len(outcome.crashes)} crashes", force=True)
    return outcome
