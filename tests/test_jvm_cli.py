"""`symbolicator symbolicate TRACE --mapping FILE` prints what ProGuard's retrace printed.

The expectations are retrace's output recorded by tests/fixtures/jvm/build.sh (and checked
against the live retrace in test_proguard_retrace.py); the CLI runs as a user runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from symbolicator.proguard.cache import MAGIC

REPO = Path(__file__).resolve().parent.parent
JVM = REPO / "tests" / "fixtures" / "jvm"
UUID = "e294eca8-6abb-54aa-8ab7-df6eb6230a21"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "symbolicator", "symbolicate", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("scenario", ["validate", "parse", "worker", "wrapped"])
def test_prints_what_retrace_prints(scenario: str, tmp_path: Path) -> None:
    out = cli(str(JVM / "traces" / f"{scenario}.txt"), "--mapping", str(JVM / "mapping.txt"),
              "--cache-dir", str(tmp_path / "cache"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (JVM / "expected" / f"{scenario}.txt").read_text()


def test_mapping_found_by_uuid_in_folders_and_kept_converted(tmp_path: Path) -> None:
    symbols = tmp_path / "symbols" / "android"
    symbols.mkdir(parents=True)
    shutil.copy(JVM / "mapping.txt", symbols / "mapping.txt")
    (symbols / "notes.txt").write_text("not a mapping\n")
    cache = tmp_path / "cache"
    for _ in range(2):
        out = cli(str(JVM / "traces" / "validate.txt"), "--symbols", str(tmp_path / "symbols"),
                  "--mapping-uuid", UUID, "--cache-dir", str(cache), cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout == (JVM / "expected" / "validate.txt").read_text()
    with sqlite3.connect(cache / "derived" / "cache.db") as db:
        kept = [str(k) for (k,) in db.execute("select key from Cache")
                if str(k).startswith(("cli-proguard/v", "cli-proguard-state/v"))]
    assert len(kept) == 2, kept  # the converted mapping and the state that spares hashing it again
    converted = [p for p in (cache / "derived").rglob("*.val") if p.read_bytes().startswith(MAGIC)]
    assert len(converted) == 1


def test_json_is_the_endpoints_answer(tmp_path: Path) -> None:
    out = cli(str(JVM / "traces" / "wrapped.txt"), "--mapping", str(JVM / "mapping.txt"), "--json", "--no-cache",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["status"] == "completed"
    frames = [[(f["module"], f["function"], f["lineno"]) for f in reversed(st["frames"])]
              for st in answer["stacktraces"]]
    assert frames == [
        [("com.example.app.Main", "wrapped", 73), ("com.example.app.Main", "main", 90)],
        [("com.example.util.Processor$Loader", "open", 34), ("com.example.util.Processor", "readConfig", 28),
         ("com.example.app.Main", "wrapped", 71), ("com.example.app.Main", "main", 90)],
    ]


def test_errors_say_what_is_missing(tmp_path: Path) -> None:
    trace = str(JVM / "traces" / "validate.txt")
    out = cli(trace, cwd=tmp_path)
    assert out.returncode == 2 and "--mapping" in out.stderr
    out = cli(trace, "--symbols", str(JVM / "src"), cwd=tmp_path)
    assert out.returncode == 1 and "a Java stack trace: give its ProGuard mapping" in out.stderr
    out = cli(trace, "--symbols", str(JVM / "src"), "--mapping-uuid", UUID, cwd=tmp_path)
    assert out.returncode == 1 and f"no ProGuard mapping with UUID {UUID}" in out.stderr
    not_mapping = tmp_path / "m.txt"
    not_mapping.write_text("hello\n")
    out = cli(trace, "--mapping", str(not_mapping), "--no-cache", cwd=tmp_path)
    assert out.returncode == 1 and "not a ProGuard mapping" in out.stderr
    out = cli(str(not_mapping), "--mapping", str(JVM / "mapping.txt"), "--no-cache", cwd=tmp_path)
    assert out.returncode == 1 and "no line is a frame" in out.stderr
