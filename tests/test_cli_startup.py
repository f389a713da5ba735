"""Issue 11 item 5: `symbolicator --help` / `--version` start about as fast as the interpreter.

Wall time on a shared machine is noise (the bench compares it with `import symbolic`);
what makes the start slow is importing engines, so this asserts on what a real
`python -X importtime -m symbolicator …` imports.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("numpy", "aiohttp", "boto3", "botocore", "diskcache", "orjson", "tree_sitter", "tqdm", "uvloop",
         "symbolicator.native", "symbolicator.sourcemaps", "symbolicator.service", "symbolicator.caching",
         "symbolicator.web", "symbolicator.storage", "symbolicator.uploader", "symbolicator.config")


def imported(*argv: str) -> set[str]:
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "symbolicator", *argv],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    return {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["resolve", "--help"], ["upload", "--help"]])
def test_help_and_version_import_no_engine(argv: list[str]) -> None:
    modules = imported(*argv)
    assert "symbolicator.cli" in modules  # the measurement saw our imports at all
    heavy = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == [], f"`symbolicator {' '.join(argv)}` imports {heavy}"
