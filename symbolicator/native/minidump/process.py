"""The CPU half of a minidump request, as worker-pool entry points with plain arguments.

`describe(path)` reads the dump's header facts and modules (what the service needs to look up
debug files and CFI); `walk(path, cfi_paths)` walks every thread with the CFI caches found.
Both return JSON-ready dicts, so they cross the process boundary cheaply, and both take the
dump by path (written once to the cache's temp folder), never as a pickled copy.

Opened CFI caches stay mapped in the worker (`_OPEN`, by path, size and mtime), so a warm
dump costs no conversion and no re-read of unwind tables.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from symbolicator.native.cfi.cache import CfiCache
from symbolicator.native.minidump.reader import Minidump, parse_minidump
from symbolicator.native.minidump.walker import Stack, Walker, WalkModule

MAX_TOTAL_FRAMES = 100_000
OPEN_CFI_CACHES = 128
_OPEN: OrderedDict[tuple[str, int, int], CfiCache] = OrderedDict()


def _read(path: str) -> Minidump:
    return parse_minidump(Path(path).read_bytes())


def describe(path: str) -> dict[str, Any]:
    """Top-level facts and the module list (Symbolicator's `RawObjectInfo` fields)."""
    dump = _read(path)
    info = dump.system_info
    out: dict[str, Any] = {
        "timestamp": dump.timestamp,
        "crashed": dump.exception is not None,
        "crash_reason": dump.crash_reason,
        "crash_details": None,
        "system_info": {
            "os_name": info.os_name if info else "",
            "os_version": info.os_version if info else "",
            "os_build": info.os_build if info else "",
            "cpu_arch": dump.arch.value,
            "device_model": "",
        },
        "modules": [_module_json(m, _MODULE_TYPE.get(info.os_name if info else "", "unknown")) for m in dump.modules],
    }
    if dump.exception is not None:
        out["signal"] = dump.exception.code if dump.exception.code < 256 else None
    return out


_MODULE_TYPE = {"Linux": "elf", "Android": "elf", "macOS": "macho", "iOS": "macho", "Windows": "pe"}


def _module_json(m: Any, module_type: str) -> dict[str, Any]:
    out: dict[str, Any] = {"type": module_type}
    if m.code_id is not None:
        out["code_id"] = str(m.code_id)
    out["code_file"] = m.code_file
    if m.debug_id is not None:
        out["debug_id"] = str(m.debug_id)
    out["debug_file"] = m.debug_file
    out["image_addr"] = hex(m.base)
    out["image_size"] = m.size
    return out


def _open_cfi(path: str) -> CfiCache | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (path, st.st_size, st.st_mtime_ns)
    cache = _OPEN.get(key)
    if cache is None:
        cache = CfiCache.open(Path(path))
        _OPEN[key] = cache
        while len(_OPEN) > OPEN_CFI_CACHES:
            _OPEN.popitem(last=False)[1].close()
    else:
        _OPEN.move_to_end(key)
    return cache


def _code_check(cache: CfiCache | None) -> Callable[[int], bool] | None:
    """`has_function` of a module: its code map, asked at module offsets."""
    if cache is None or not cache.has_code_map:
        return None
    return lambda offset: cache.covers(offset + cache.image_vmaddr)


def walk(path: str, cfi_paths: dict[int, str], max_frames: int | None = None,
         code_paths: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """One stack trace per thread, in the dump's order, frames innermost first.

    `cfi_paths` maps a module's index in the module list to its CFI cache (which scanning also
    uses to tell return addresses from other pointers, `Walker._seems_valid`); `code_paths` to a
    cache with the code map of its symbols (a PE module's PDB), which scanning asks instead.
    """
    dump = _read(path)
    modules = [WalkModule(m.base, m.size, _open_cfi(cfi_paths[i]) if i in cfi_paths else None,
                          _code_check(_open_cfi(code_paths[i])) if code_paths and i in code_paths else None)
               for i, m in enumerate(dump.modules)]
    windows = dump.system_info is not None and dump.system_info.os_name == "Windows"
    walker = Walker(dump.arch, modules, **({"max_frames": max_frames} if max_frames else {}),
                    frame_pointers=not windows)
    budget = MAX_TOTAL_FRAMES
    traces = []
    for thread in dump.threads:
        requesting = dump.is_requesting(thread)
        registers, memory = dump.start_context(thread)
        stack = Stack(thread.stack_start, memory)
        frames = walker.walk(registers, stack)[:max(budget, 0)] if budget > 0 else []
        budget -= len(frames)
        trace: dict[str, Any] = {"thread_id": thread.thread_id}
        if thread.name:
            trace["thread_name"] = thread.name
        trace["is_requesting"] = requesting
        if registers:
            trace["registers"] = {name: f"0x{value:016x}" for name, value in registers.items()}
        trace["frames"] = [{"instruction_addr": f"0x{f.instruction:x}", "trust": f.trust} for f in frames]
        traces.append(trace)
    return traces
