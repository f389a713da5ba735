"""CI re-derives the native expectations from the committed fixtures (issue 4).

`record_expected.py --check` re-runs llvm-symbolizer on every sampled address
of every fixture and fails on any difference from `expected/`, so the
expectations the accuracy tests compare against cannot drift from the binaries.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "fixtures" / "native" / "record_expected.py"


def test_native_expectations_are_current() -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
