"""`symbolicator …`: the command line of docs/cli.md.

Each command lives in `symbolicator/commands/<name>.py` with two functions:
`register(subparsers)` adds its parser, `run(args) -> int` does the work. This
module only dispatches. Command modules import nothing heavy at module level
(numpy, aiohttp, boto3, the engines): `--help` and `--version` must start about
as fast as the interpreter, so each command imports its engine inside `run`
(`tests/test_cli_startup.py` checks it with `python -X importtime`).

Exit status, as llvm-symbolizer, addr2line and sentry-cli users expect: 0 the
command ran, 1 an input could not be read or understood (message on stderr, in
the user's words), 2 a usage error (argparse's own, or `UsageError`), 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from symbolicator import __version__
from symbolicator.commands.messages import os_error
from symbolicator.errors import SymbolicatorError, UsageError

COMMANDS = ("serve", "upload", "resolve", "resolve_js", "symbolicate", "inject", "cache")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symbolicator",
        description="Symbolication service and offline tools for native (ELF, Mach-O/dSYM) "
        "and JavaScript stack traces.",
        epilog="exit status: 0 done, 1 bad input (a file, line or answer that could not be read), 2 usage error. "
        "`symbolicator COMMAND --help` for a command's flags.",
    )
    parser.add_argument("--version", action="version", version=f"symbolicator {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"symbolicator.commands.{name}")
        command_parser = module.register(sub)
        command_parser.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except UsageError as exc:
        print(f"symbolicator {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except SymbolicatorError as exc:
        print(f"symbolicator {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"symbolicator {args.command}: error: {os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

