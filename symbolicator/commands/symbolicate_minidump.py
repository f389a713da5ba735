"""`symbolicator symbolicate crash.dmp --symbols DIR…`: a minidump, offline.

The same `service.minidump` code as `POST /minidump`, with the CLI's folder search for debug
files (`SymbolFolders`) and CFI caches built into a temporary folder instead of the caches.
`--json` prints what the endpoint answers; the text report lists every thread, the crashed one
first.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from symbolicator.errors import FormatError, ObjectFileStatus
from symbolicator.native.cfi.build import build as build_cfi
from symbolicator.service import minidump, native
from symbolicator.service.minidump_cfi import ResolvedUnwind
from symbolicator.types import Arch

MAGIC = b"MDMP"


def is_minidump(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == MAGIC


async def _to_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def run_minidump(path: Path, folders: Any, as_json: bool, format_report: Any) -> int:
    """`folders` is the CLI's `SymbolFolders`; `format_report` its text formatter."""
    with tempfile.TemporaryDirectory(prefix="symbolicator-cfi-") as tmp:
        arch: list[Arch | None] = [None]  # the dump's CPU: the slice of a universal Mach-O to read

        async def resolve_unwind(module: native.RawModule) -> ResolvedUnwind:
            """The first file with unwind rows, and a PDB's code map wherever it comes."""
            result = ResolvedUnwind(ObjectFileStatus.MISSING)
            for candidate, _info in folders.by_id.get(module.debug_id, []) if module.debug_id else []:
                try:
                    data, meta = await asyncio.to_thread(build_cfi, candidate, arch[0])
                except FormatError:
                    result.status = ObjectFileStatus.MALFORMED
                    continue
                if meta.get("code_map") and result.code_path is None:
                    result.code_path = Path(tmp, f"{module.index}.code.cficache")
                    result.code_path.write_bytes(data)
                if meta["rows"] and result.cfi_path is None:
                    out = Path(tmp, f"{module.index}.cficache")
                    out.write_bytes(data)
                    result.status, result.cfi_path = ObjectFileStatus.FOUND, out
                if result.cfi_path is not None and (result.code_path is not None or module.type != "pe"):
                    return result
            return result

        async def go() -> dict[str, Any]:
            facts = await minidump.read_facts(path, _to_thread)
            cpu = (facts.get("system_info") or {}).get("cpu_arch")
            arch[0] = Arch.parse(cpu) if cpu else None
            return await minidump.symbolicate_minidump(path, facts, {}, _to_thread, folders.resolve, resolve_unwind)

        result = {"status": "completed", **asyncio.run(go())}
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        crashed_first = sorted(result["stacktraces"], key=lambda t: not t.get("is_requesting"))
        sys.stdout.write(format_report({**result, "stacktraces": crashed_first}))
    return 0
