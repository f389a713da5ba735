"""V8's WebAssembly stack frames, and which module of a set they came from.

V8 (node, Chrome) prints a wasm frame as

    at outer (wasm://wasm/cfd8302a:wasm-function[1]:0x147)
    at wasm://wasm/3eb9ec7e:wasm-function[1]:0x147          (no `name` section: no name)

with the function index and the **module offset** of the instruction. For caller frames that
offset is the `call` instruction itself, not a return address, so no caller adjustment applies
(Symbolicator skips it too, for an image at address 0). The `wasm://wasm/<hex>` part is a hash
of the module's bytes (a module name, when the `name` section has one, comes before a `-`): it
changes with every build and is not the build id, so the module is found by checking the
frames against candidate modules instead: the function index must have a body containing the
offset, and a printed name must be the `name` section's name for that index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from symbolicator.native.wasm.module import WasmModule

_FRAME = re.compile(r"^\s*at (?:(?P<name>.+) \()?(?P<url>wasm://wasm/[^\s:()]+):wasm-function\[(?P<index>\d{1,9})\]"
                    r":0x(?P<offset>[0-9a-fA-F]{1,16})\)?\s*$")


@dataclass(frozen=True, slots=True)
class WasmFrame:
    """One V8 wasm frame: its line in the trace, the printed name, module URL, function index, offset."""

    line: int
    name: str | None
    module_url: str
    function_index: int
    offset: int


def parse_wasm_frames(text: str) -> list[WasmFrame]:
    """Every V8 wasm frame of `text`, in order (innermost first, as V8 prints them)."""
    out = []
    for i, line in enumerate(text.splitlines()):
        m = _FRAME.match(line)
        if m:
            out.append(WasmFrame(i, m.group("name"), m.group("url"), int(m.group("index")),
                                 int(m.group("offset"), 16)))
    return out


def frames_fit(module: WasmModule, frames: list[WasmFrame]) -> bool:
    """Whether every frame can come from `module` (read with bodies and names)."""
    for f in frames:
        body = f.function_index - module.imported_functions
        if not 0 <= body < len(module.bodies):
            return False
        start, end = module.bodies[body]
        if not start <= f.offset < end:
            return False
        known = module.function_names.get(f.function_index)
        if f.name is not None and known is not None and known != f.name:
            return False
    return True
