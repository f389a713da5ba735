"""One native symbolication request (`POST /symbolicate`, Apple crash reports, the offline CLI).

The request is parsed once into frozen values (`NativeRequest.from_json`: 422
for a wrong shape, ids normalised through `types.py`), then:

1. every frame is mapped to the module covering it (`ModuleTable`; `abs`
   addresses by binary search over the load addresses, `rel:N` directly);
   modules without `image_size` reach up to the next module, as in Symbolicator;
2. only the modules some frame points into are resolved, concurrently, by the
   caller's `resolve` (the service's cached `ModuleResolver`, or the CLI's folder
   search): unreferenced ones stay `unused`;
3. each thread goes through the caller-address heuristic (`caller_addr`), and
   each frame is looked up at `file_vaddr = addr − image_addr + image_vmaddr`;
   one frame becomes several when calls were inlined, sharing `original_index`.

Failures of one frame or module are data: a status, never an exception. The
response keeps each frame's original `instruction_addr`. `original_index` is the
frame's position in the request's list, whatever `frame_order` says.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import itertools
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from symbolicator.errors import FrameStatus, InvalidId, InvalidShape, ObjectFileStatus
from symbolicator.native.caller_addr import FrameAddr, lookup_addresses, parse_register
from symbolicator.native.demangle import demangle
from symbolicator.service.native.modules import ResolvedModule
from symbolicator.types import Arch, CodeId, DebugId

_ADDR_MODE = re.compile(r"^rel:(\d{1,9})$")
_HEX_ADDR = re.compile(r"(?:0[xX])?([0-9a-fA-F]{1,16})")
_MODULE_FIELDS = ("type", "code_id", "code_file", "debug_id", "debug_file", "debug_checksum")
_KEPT_FRAME_FIELDS = ("platform", "addr_mode", "adjust_instruction_addr", "function_id", "trust")
_THREAD_FIELDS = ("thread_id", "thread_name", "is_requesting")
MAX_ADDR = (1 << 64) - 1


def parse_addr(value: Any, where: str) -> int:
    """An address as sent on the wire: an int, or hex with or without `0x`."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidShape(f"{where}: expected a hex string or an integer, got {value!r}")
    if isinstance(value, int):
        number = value
    else:
        m = _HEX_ADDR.fullmatch(value.strip())
        if m is None:
            raise InvalidShape(f"{where}: invalid address {value!r}")
        number = int(m.group(1), 16)
    if not 0 <= number <= MAX_ADDR:
        raise InvalidShape(f"{where}: address out of range: {value!r}")
    return number


_SYMBOLICATED = FrameStatus.SYMBOLICATED.value


@dataclass(frozen=True, slots=True)
class RawModule:
    """A request module. `image_addr` (bytes) is where its lowest segment was
    loaded; `image_size` None means "up to the next module" (or unbounded)."""

    index: int
    fields: dict[str, Any]
    type: str
    debug_id: DebugId | None
    code_id: CodeId | None
    image_addr: int
    image_size: int | None

    def to_json(self) -> dict[str, Any]:
        out = dict(self.fields)
        out["image_addr"] = hex(self.image_addr)
        if self.image_size is not None:
            out["image_size"] = self.image_size
        return out


@dataclass(frozen=True, slots=True)
class RawFrame:
    """`addr` is absolute, or relative to module `rel_module` (`addr_mode: rel:N`)."""

    fields: dict[str, Any]
    addr: int
    rel_module: int | None
    adjust: bool | None


@dataclass(frozen=True, slots=True)
class RawThread:
    fields: dict[str, Any]
    registers: dict[str, Any]
    frames: tuple[RawFrame, ...]


@dataclass(frozen=True)
class NativeRequest:
    """A parsed `/symbolicate` body (docs/api.md); `sources` None means "not sent"."""

    stacktraces: tuple[RawThread, ...]
    modules: tuple[RawModule, ...]
    signal: int | None = None
    platform: str | None = None
    sources: list[dict[str, Any]] | None = None
    dif_candidates: bool = False
    caller_first: bool = False

    @classmethod
    def from_json(cls, body: Any) -> NativeRequest:
        if not isinstance(body, dict):
            raise InvalidShape("the body must be a JSON object")
        modules = body.get("modules", [])
        threads = body.get("stacktraces")
        if not isinstance(threads, list):
            raise InvalidShape("`stacktraces` must be a list of stack traces")
        if not isinstance(modules, list):
            raise InvalidShape("`modules` must be a list")
        signal = body.get("signal")
        if signal is not None and (isinstance(signal, bool) or not isinstance(signal, int)
                                   or not 0 <= signal < 1 << 32):
            raise InvalidShape("`signal` must be a non-negative integer")
        platform = body.get("platform")
        if platform is not None and not isinstance(platform, str):
            raise InvalidShape("`platform` must be a string")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise InvalidShape("`options` must be an object")
        order = options.get("frame_order", "callee_first")
        if order not in ("callee_first", "caller_first"):
            raise InvalidShape("`options.frame_order` must be `callee_first` or `caller_first`")
        return cls(
            stacktraces=tuple(_thread(t, i) for i, t in enumerate(threads)),
            modules=_infer_sizes([_module(m, i) for i, m in enumerate(modules)]),
            signal=signal,
            platform=platform,
            sources=parse_sources(body.get("sources")),
            dif_candidates=bool(options.get("dif_candidates", False)),
            caller_first=order == "caller_first",
        )


def parse_sources(value: Any) -> list[dict[str, Any]] | None:
    """Request `sources`: a list of objects with string `id` and `type` (other keys are the source's)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(s, dict) for s in value):
        raise InvalidShape("`sources` must be a list of source objects")
    for s in value:
        if not isinstance(s.get("id"), str) or not isinstance(s.get("type"), str):
            raise InvalidShape("every source needs a string `id` and `type`")
    return value


def _module(value: Any, index: int) -> RawModule:
    where = f"modules[{index}]"
    if not isinstance(value, dict):
        raise InvalidShape(f"{where} must be an object")
    fields: dict[str, Any] = {}
    for name in _MODULE_FIELDS:
        v = value.get(name)
        if v is not None and not isinstance(v, str):
            raise InvalidShape(f"{where}.{name} must be a string")
        if v:
            fields[name] = v
    fields.setdefault("type", "unknown")
    debug_id = None
    try:
        if "debug_id" in fields:
            debug_id = DebugId.parse(fields["debug_id"])
            fields["debug_id"] = str(debug_id)
    except InvalidId:
        del fields["debug_id"]  # Symbolicator drops invalid ids
    code_id = None
    try:
        if "code_id" in fields:
            code_id = CodeId.parse(fields["code_id"])
            fields["code_id"] = str(code_id)
    except InvalidId:
        del fields["code_id"]
    image_addr = parse_addr(value.get("image_addr", 0) or 0, f"{where}.image_addr")
    size = value.get("image_size")
    image_size = parse_addr(size, f"{where}.image_size") if size not in (None, 0, "") else None
    return RawModule(index, fields, fields["type"], debug_id, code_id, image_addr, image_size)


def _infer_sizes(modules: list[RawModule]) -> tuple[RawModule, ...]:
    """A module without a size reaches to the next one up; the last one, without bound."""
    order = sorted(modules, key=lambda m: m.image_addr)
    out = list(modules)
    for this, nxt in itertools.pairwise(order):
        if this.image_size is None:
            out[this.index] = dataclasses.replace(this, image_size=nxt.image_addr - this.image_addr)
    return tuple(out)


def _frame(value: Any, where: str) -> RawFrame:
    if not isinstance(value, dict):
        raise InvalidShape(f"{where} must be an object")
    if "instruction_addr" not in value:
        raise InvalidShape(f"{where}.instruction_addr is required")
    addr = parse_addr(value["instruction_addr"], f"{where}.instruction_addr")
    mode = value.get("addr_mode", "abs")
    rel: int | None = None
    if mode is not None and mode != "abs":
        m = _ADDR_MODE.match(mode) if isinstance(mode, str) else None
        if m is None:
            raise InvalidShape(f"{where}.addr_mode must be `abs` or `rel:<module index>`, got {mode!r}")
        rel = int(m.group(1))
    adjust = value.get("adjust_instruction_addr")
    if adjust is not None and not isinstance(adjust, bool):
        raise InvalidShape(f"{where}.adjust_instruction_addr must be a boolean")
    return RawFrame(value, addr, rel, adjust)


def _thread(value: Any, index: int) -> RawThread:
    where = f"stacktraces[{index}]"
    if not isinstance(value, dict):
        raise InvalidShape(f"{where} must be an object")
    frames = value.get("frames", [])
    registers = value.get("registers") or {}
    if not isinstance(frames, list):
        raise InvalidShape(f"{where}.frames must be a list")
    if not isinstance(registers, dict):
        raise InvalidShape(f"{where}.registers must be an object")
    for name, reg in registers.items():
        try:
            parse_register(name, reg)
        except ValueError as exc:
            raise InvalidShape(f"{where}.registers: {exc}") from None
    fields = {k: value[k] for k in _THREAD_FIELDS if value.get(k) is not None}
    return RawThread(fields, registers, tuple(_frame(f, f"{where}.frames[{i}]") for i, f in enumerate(frames)))


class ModuleTable:
    """Which module covers an address: a binary search over the load addresses."""

    def __init__(self, modules: tuple[RawModule, ...]) -> None:
        self.modules = modules
        self._order = sorted(modules, key=lambda m: m.image_addr)
        self._starts = [m.image_addr for m in self._order]

    def locate(self, frame: RawFrame) -> tuple[RawModule, int] | None:
        """The module and the address relative to its `image_addr`, or None (unknown image)."""
        if frame.rel_module is not None:
            if frame.rel_module >= len(self.modules):
                return None
            return self.modules[frame.rel_module], frame.addr
        pos = bisect.bisect_right(self._starts, frame.addr) - 1
        if pos < 0:
            return None
        module = self._order[pos]
        offset = frame.addr - module.image_addr
        if module.image_size is not None and offset >= module.image_size:
            return None
        return module, offset


Resolve = Callable[[RawModule], Awaitable[ResolvedModule]]


async def symbolicate(req: NativeRequest, resolve: Resolve) -> dict[str, Any]:
    """The completed payload (docs/api.md) for `req`, modules resolved through `resolve`."""
    table = ModuleTable(req.modules)
    located = [[table.locate(f) for f in t.frames] for t in req.stacktraces]
    used = sorted({loc[0].index for frames in located for loc in frames if loc is not None})
    answers = await asyncio.gather(*(resolve(req.modules[i]) for i in used))
    resolved = dict(zip(used, answers, strict=False))
    try:
        stacktraces = [_symbolicate_thread(req, t, locs, resolved)
                       for t, locs in zip(req.stacktraces, located, strict=False)]
        modules = [_module_json(m, resolved.get(m.index), req.dif_candidates) for m in req.modules]
    finally:
        for r in answers:
            r.close()
    out: dict[str, Any] = {}
    if req.signal is not None:
        out["signal"] = req.signal
    out["stacktraces"] = stacktraces
    out["modules"] = modules
    return out


def _module_json(module: RawModule, found: ResolvedModule | None, with_candidates: bool) -> dict[str, Any]:
    out = module.to_json()
    status = found.status if found is not None else ObjectFileStatus.UNUSED
    out["debug_status"] = status.value
    out["features"] = dict(found.features) if found is not None else {
        "has_debug_info": False, "has_unwind_info": False, "has_symbols": False, "has_sources": False}
    out["arch"] = found.arch.value if found is not None else Arch.UNKNOWN.value
    if with_candidates and found is not None and found.candidates:
        out["candidates"] = found.candidates
    return out


def _symbolicate_thread(req: NativeRequest, thread: RawThread, locs: list[tuple[RawModule, int] | None],
                        resolved: Mapping[int, ResolvedModule]) -> dict[str, Any]:
    order = list(range(len(thread.frames)))
    if req.caller_first:
        order.reverse()
    heuristic: list[FrameAddr] = []
    for i in order:
        frame, loc = thread.frames[i], locs[i]
        arch = None
        if loc is not None and loc[0].index in resolved and resolved[loc[0].index].arch != Arch.UNKNOWN:
            arch = resolved[loc[0].index].arch
        absolute = loc[0].image_addr + loc[1] if loc is not None else frame.addr
        heuristic.append(FrameAddr(min(absolute, MAX_ADDR), frame.adjust, arch))
    lookup = lookup_addresses(heuristic, Arch.UNKNOWN, req.signal, thread.registers)
    frames: list[dict[str, Any]] = []
    for pos, i in enumerate(order):
        out_frames = _symbolicate_frame(thread.frames[i], i, locs[i], resolved, lookup[pos])
        if not _dropped(out_frames[0], thread.frames[i], frames, last=pos == len(order) - 1):
            frames.extend(out_frames)
    if req.caller_first:
        frames.reverse()
    out = dict(thread.fields)
    if thread.registers:
        out["registers"] = thread.registers
    out["frames"] = frames
    return out


def _dropped(first: dict[str, Any], frame: RawFrame, before: list[dict[str, Any]], last: bool) -> bool:
    """Symbolicator's two post-filters: stack-scanned frames that hit nothing are false positives,
    and glibc's `_start` has no return address, so an unmapped last frame after it is garbage."""
    status = first["status"]
    if frame.fields.get("trust") == "scan" and status in (FrameStatus.MISSING_SYMBOL.value,
                                                          FrameStatus.UNKNOWN_IMAGE.value):
        return True
    return (status == FrameStatus.UNKNOWN_IMAGE.value and last and bool(before)
            and before[-1].get("function") == "_start")


def _symbolicate_frame(frame: RawFrame, index: int, loc: tuple[RawModule, int] | None,
                       resolved: Mapping[int, ResolvedModule], lookup_abs: int) -> list[dict[str, Any]]:
    if loc is None:
        return [_failed(frame, index, FrameStatus.UNKNOWN_IMAGE, None)]
    module, offset = loc
    found = resolved[module.index]
    package = module.fields.get("code_file")
    if found.status != ObjectFileStatus.FOUND or found.symcache is None:
        status = FrameStatus.MALFORMED if found.status == ObjectFileStatus.MALFORMED else FrameStatus.MISSING
        return [_failed(frame, index, status, package)]
    # Symbolicator runs the heuristic on absolute addresses only (image_addr 0: WASM-like).
    relative = lookup_abs - module.image_addr if module.image_addr else offset
    if relative < 0:
        return [_failed(frame, index, FrameStatus.MISSING_SYMBOL, package)]
    hits = found.symcache.lookup(relative + found.image_vmaddr)
    if not hits:
        return [_failed(frame, index, FrameStatus.MISSING_SYMBOL, package)]
    fields = frame.fields
    base = {k: fields[k] for k in _KEPT_FRAME_FIELDS if k in fields}
    instruction_addr = hex(frame.addr)
    out = []
    for hit in hits:
        f: dict[str, Any] = {"status": _SYMBOLICATED, "original_index": index, **base,
                             "instruction_addr": instruction_addr}
        if package:
            f["package"] = package
        if hit.symbol:
            f["symbol"] = hit.symbol
        if hit.function or hit.symbol:
            f["function"] = hit.function or hit.symbol
        if hit.file:
            f["filename"] = hit.file.rpartition("/")[2]
            f["abs_path"] = hit.file
        else:
            for k in ("filename", "abs_path"):
                if k in frame.fields:
                    f[k] = frame.fields[k]
        if hit.line is not None:
            f["lineno"] = hit.line
        if not hit.inlined and hit.sym_addr is not None:  # relative for an image at 0 (wasm), as Symbolicator
            f["sym_addr"] = hex(hit.sym_addr - found.image_vmaddr + module.image_addr)
        out.append(f)
    return out


def _failed(frame: RawFrame, index: int, status: FrameStatus, package: str | None) -> dict[str, Any]:
    """The input frame with its status; a lone mangled `function` or `symbol` is demangled."""
    out: dict[str, Any] = {"status": status.value, "original_index": index, **frame.fields,
                           "instruction_addr": hex(frame.addr)}
    if package:
        out["package"] = package
    function, symbol = out.get("function"), out.get("symbol")
    mangled = function if symbol is None else symbol if function is None else None
    if isinstance(mangled, str):
        name = demangle(mangled)
        if name != mangled:
            out["function"], out["symbol"] = name, mangled
    return out
