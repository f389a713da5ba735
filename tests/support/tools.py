"""Paths of the Node tools the tests run, pinned to their packages.

`node_modules/.bin/sentry-cli` is claimed by both `@sentry/cli` (3.x) and the
`sentry-cli-v2` alias (2.x), and which link wins depends on install order, so
the tests call each package's own entry point instead.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.service import ServiceProcess

REPO = Path(__file__).resolve().parent.parent.parent
NODE_MODULES = REPO / "node_modules"
BIN = NODE_MODULES / ".bin"
SENTRY_CLI = ["node", str(NODE_MODULES / "@sentry" / "cli" / "bin" / "sentry-cli")]
SENTRY_CLI_2 = ["node", str(NODE_MODULES / "sentry-cli-v2" / "bin" / "sentry-cli")]


def sentry_cli(svc: ServiceProcess, work: Path, *args: str) -> str:
    """Run the real sentry-cli 3.x against the service as org `acme`, project `web`; its output."""
    env = {"PATH": os.environ["PATH"], "HOME": str(work), "SENTRY_URL": svc.url, "SENTRY_AUTH_TOKEN": "sntryu_test",
           "SENTRY_ORG": "acme", "SENTRY_PROJECT": "web", "SENTRY_DISABLE_UPDATE_CHECK": "true",
           "SENTRY_NO_PROGRESS_BAR": "1", "SENTRY_LOAD_DOTENV": "0"}
    out = subprocess.run([*SENTRY_CLI, *args], cwd=work, env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stdout + out.stderr + svc.log()
    return out.stdout + out.stderr
