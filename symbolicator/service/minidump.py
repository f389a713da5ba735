"""One minidump request (`POST /minidump`, `symbolicator symbolicate crash.dmp`).

1. `describe` (worker pool): the dump's facts and modules; a broken dump is a
   `MalformedMinidump` (400 on the API, exit 1 on the CLI);
2. every module's unwind information is looked up and converted to a CFI cache, concurrently
   (`resolve_unwind`: the service's `CfiLookup` or the CLI's folder search);
3. `walk` (worker pool): every thread's stack, CFI first, then frame pointers, then scanning;
4. the walked frames become a `/symbolicate` request (frames carry `trust`; the crashing
   thread `is_requesting`; frame 0 the registers) that `service.native` symbolicates like any
   other: inlined frames expanded, scanned frames that hit nothing dropped, module statuses.

Modules get `unwind_status` beside `debug_status`: `found` when a CFI cache with rows was used,
`missing` when none of the module's files has unwind rows, `unused` when no frame needed it
(Symbolicator's meaning: only modules some frame points into are looked up for symbols).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from symbolicator.errors import ObjectFileStatus
from symbolicator.native.minidump.process import describe, walk
from symbolicator.service import native, rewrite_rules
from symbolicator.service.minidump_cfi import ResolvedUnwind
from symbolicator.service.rewrite_rules import RewriteRules

RunCpu = Callable[..., Awaitable[Any]]
ResolveUnwind = Callable[[native.RawModule], Awaitable[ResolvedUnwind]]


def to_request(facts: dict[str, Any], traces: list[dict[str, Any]], fields: dict[str, Any]) -> dict[str, Any]:
    """The `/symbolicate` body of a walked dump; `fields` adds the request's `sources` / `options`."""
    body: dict[str, Any] = {"stacktraces": traces, "modules": facts["modules"], **fields}
    if facts.get("signal") is not None:
        body["signal"] = facts["signal"]
    return body


async def read_facts(dump_path: Path, run: RunCpu) -> dict[str, Any]:
    """Step 1 alone, so a handler can answer 400 for a broken dump before it starts a job."""
    return dict(await run(describe, str(dump_path)))


async def symbolicate_minidump(dump_path: Path, facts: dict[str, Any], fields: dict[str, Any], run: RunCpu,
                               resolve: native.Resolve, resolve_unwind: ResolveUnwind,
                               rewrite_first_module: RewriteRules | None = None) -> dict[str, Any]:
    """The completed payload for the dump at `dump_path` (`facts` from `read_facts`);
    `run(fn, *args)` runs CPU work off the loop. `rewrite_first_module` renames the debug file
    of the module loaded lowest for both lookups (service/rewrite_rules.py)."""
    modules = native.NativeRequest.from_json({"stacktraces": [], "modules": facts["modules"]}).modules
    first = min(modules, key=lambda m: m.image_addr, default=None)
    if rewrite_first_module and first is not None and first.fields.get("debug_file"):
        new_name = await run(rewrite_rules.apply, rewrite_first_module, first.fields["debug_file"])
        if new_name is not None:
            resolve = rewrite_rules.renamed(resolve, first.index, new_name)
            resolve_unwind = rewrite_rules.renamed(resolve_unwind, first.index, new_name)
    unwinds = await asyncio.gather(*(resolve_unwind(m) for m in modules))
    try:
        cfi_paths = {i: str(u.cfi_path) for i, u in enumerate(unwinds)
                     if u.status == ObjectFileStatus.FOUND and u.cfi_path is not None}
        code_paths = {i: str(u.code_path) for i, u in enumerate(unwinds) if u.code_path is not None}
        traces = await run(walk, str(dump_path), cfi_paths, None, code_paths)
    finally:
        for u in unwinds:
            u.close()
    req = native.NativeRequest.from_json(to_request(facts, traces, fields))
    payload = await native.symbolicate(req, resolve)
    for module, unwind in zip(payload["modules"], unwinds, strict=False):
        module["unwind_status"] = unwind.status.value
        if unwind.status == ObjectFileStatus.FOUND:
            module["features"]["has_unwind_info"] = True
        if req.dif_candidates and unwind.candidates:
            module.setdefault("candidates", []).extend(c for c in unwind.candidates if "unwind" in c)
    head = {k: facts[k] for k in ("timestamp", "crashed", "crash_reason", "crash_details", "system_info")}
    if "signal" in payload:
        head["signal"] = payload.pop("signal")
    return {**head, **payload}
