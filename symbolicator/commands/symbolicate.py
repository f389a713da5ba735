"""`symbolicator symbolicate FILE --symbols DIR… [--json]`: a whole crash, offline.

FILE is a minidump, an Apple crash report (`.crash` text or `.ips` JSON), a Symbolicator
`/symbolicate`, `/symbolicate-js` or `/symbolicate-any` JSON request, a JavaScript stack trace,
or, with `--mapping`/`--mapping-uuid`, an obfuscated Java stack trace (`symbolicate_jvm.py`).
Debug files, minified files and source maps are looked for only inside the
`--symbols` folders; `--allow-trace-paths` also reads the files a JS trace names
by absolute path. Input that is none of these is an error that says what it was
taken for (exit 1); so is a `--symbols` folder that does not exist. The work is
in `commands/symbolicate_run.py`, imported only when the command runs.
"""

from __future__ import annotations

import argparse

from symbolicator.commands import offline_cache
from symbolicator.errors import UsageError

_EPILOG = """\
Input is recognised by its content: a .crash/.ips name or crash-report header lines
(Apple), JSON with "stacktraces" (a Symbolicator request; frames with abs_path and no
instruction_addr make it a /symbolicate-js one), else a JS stack trace (V8, Firefox,
Safari); V8 frames of WebAssembly (`wasm://wasm/…:wasm-function[N]:0x…`) are looked up
in the wasm modules found in DIRs. Frames left unresolved are listed with the reason
on stderr; --json carries the reasons in the answer, as the HTTP endpoint does.

exit status: 0 symbolicated (some frames may be unresolved), 1 the input or a folder
could not be read or understood, 2 usage error.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "symbolicate",
        help="symbolicate a crash report, a Symbolicator request or a JS stack trace (offline)",
        description="Symbolicate an Apple crash report (.crash/.ips), a Symbolicator /symbolicate JSON "
        "request or a JavaScript stack trace, with debug files (and JS + source maps) found in DIRs.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE")
    parser.add_argument("--symbols", metavar="DIR", nargs="+", action="extend", default=[],
                        help="folders searched recursively for debug files (dSYM bundles included), "
                        "minified JS files and source maps; nothing outside them is read")
    parser.add_argument("--allow-trace-paths", action="store_true",
                        help="also read JS files and maps at the absolute paths a JS trace names, "
                        "outside the --symbols folders (off by default)")
    parser.add_argument("--json", action="store_true", help="print the JSON the HTTP endpoint would answer")
    parser.add_argument("--mapping", metavar="FILE",
                        help="FILE is an obfuscated Java stack trace: retrace it with this ProGuard/R8 mapping")
    parser.add_argument("--mapping-uuid", metavar="UUID",
                        help="as --mapping, with the mapping of this UUID found in the --symbols folders")
    offline_cache.add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.mapping or args.mapping_uuid:
        from symbolicator.commands.symbolicate_jvm import run as run_jvm  # imports no other engine

        return run_jvm(args)
    if not args.symbols:
        raise UsageError("the following arguments are required: --symbols (or --mapping for a Java trace)")
    from symbolicator.commands.symbolicate_run import run as run_offline

    return run_offline(args)
