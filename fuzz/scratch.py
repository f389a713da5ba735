"""One private scratch folder per fuzzing process, removed when the run ends.

Some entry points take paths, as the service's worker jobs do (`convert_debug_file`,
`convert_sourcemap`): the targets write each input there and call them unchanged. An
atheris child never runs `atexit` (libFuzzer leaves with `_exit`), so its parent names
the folder in `SCRATCH_ENV` and removes it after the child is gone.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

SCRATCH_ENV = "SYMBOLICATOR_FUZZ_SCRATCH"


@cache
def scratch_dir() -> Path:
    given = os.environ.get(SCRATCH_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        return path
    path = Path(tempfile.mkdtemp(prefix="symbolicator-fuzz-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
