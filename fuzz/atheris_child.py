"""The atheris side of one target, run in its own process by `engine_atheris`.

    python -m fuzz.atheris_child TARGET_MODULE INSTRUMENTED[,…] [--uninstrumented] [libFuzzer flags] CORPUS…

The target module, and through it the engine modules, are imported inside
`atheris.instrument_imports(include=INSTRUMENTED)`, so libFuzzer sees coverage of the
engines (and of the libraries the target's registry entry lists). An input that breaks
the contract raises `Violation` out of `TestOneInput`: its traceback and cause go to
stderr, libFuzzer writes the input to `<artifact_prefix>crash-<sha1>` and the process
exits. Hangs are libFuzzer's `-timeout`, out-of-memory its `-rss_limit_mb`.

Instrumenting costs seconds at start-up (atheris rewrites the bytecode of every module it
covers: ~2 s for `symbolicator.native`, as much again for pyelftools), which a campaign
repays many times over and a smoke run of a few hundred inputs does not:
`--uninstrumented` skips it, leaving libFuzzer's (and the target's) mutations without
coverage feedback.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import traceback
from pathlib import Path

import atheris  # type: ignore[import-untyped]

from fuzz.contract import Violation, check


def byte_mutate(data: bytes, max_size: int) -> bytes:
    """libFuzzer's own byte mutations of `data` (only callable inside this child)."""
    return bytes(atheris.Mutate(data, max_size))


def main() -> None:
    module_name, instrumented, *rest = sys.argv[1:]
    flags = [a for a in rest if a != "--uninstrumented"]
    if "--uninstrumented" in rest:
        module = importlib.import_module(module_name)
    else:
        with atheris.instrument_imports(include=instrumented.split(",")):
            module = importlib.import_module(module_name)

    prefix = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("-artifact_prefix=")), "./")

    def one(data: bytes) -> None:
        try:
            check(module.run, data, None)
        except Violation as exc:
            traceback.print_exception(exc)  # atheris prints the last exception only, not its cause
            # libFuzzer saves it too, under the same name; this copy survives a child that dies on the way out
            Path(f"{prefix}crash-{hashlib.sha1(data).hexdigest()}").write_bytes(data)
            raise

    atheris.Setup([sys.argv[0], *flags], one, custom_mutator=getattr(module, "mutate", None))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
