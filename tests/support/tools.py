"""Paths of the Node tools the tests run, pinned to their packages.

`node_modules/.bin/sentry-cli` is claimed by both `@sentry/cli` (3.x) and the
`sentry-cli-v2` alias (2.x), and which link wins depends on install order, so
the tests call each package's own entry point instead.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
NODE_MODULES = REPO / "node_modules"
BIN = NODE_MODULES / ".bin"
SENTRY_CLI = ["node", str(NODE_MODULES / "@sentry" / "cli" / "bin" / "sentry-cli")]
SENTRY_CLI_2 = ["node", str(NODE_MODULES / "sentry-cli-v2" / "bin" / "sentry-cli")]
