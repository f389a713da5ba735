"""The DWARF and function symbols of a wasm module, for the symcache builder.

The DWARF custom sections are handed to the shared DWARF reader as views of the mapping (no
copy). Their addresses count from the code section's payload; the symcache stores module
offsets instead, because that is what runtimes report and what Symbolicator/symbolic look up
for a module with a code section. So everything is built in DWARF space (the `name`-section
symbols are moved into it here) and the writer adds `address_shift` = the code payload offset
to every address it stores. A debug file without a code section (`llvm-objcopy
--only-keep-debug`) has no offset to add: its DWARF addresses are used as they are, as
symbolic does.
"""

from __future__ import annotations

from dataclasses import dataclass

from symbolicator.native.dwarf import DWARF_SECTIONS
from symbolicator.native.symtab import Symbol
from symbolicator.native.wasm.module import Buffer, read_module


@dataclass(frozen=True, slots=True)
class WasmDwarf:
    """DWARF sections (views of the buffer), symbols in DWARF space, and the shift to module offsets."""

    sections: dict[str, bytes]
    symbols: list[Symbol]
    address_shift: int


def wasm_dwarf(buf: Buffer) -> WasmDwarf:
    """Read the module in `buf` (raises `MalformedObject`); the views stay valid while `buf` is."""
    module = read_module(buf, bodies=True, names=True)
    view = memoryview(buf)
    sections: dict[str, bytes] = {
        name: view[start:end]  # type: ignore[misc]  # a view of the mapping reads like bytes
        for name, (start, end) in module.debug_sections.items() if name in DWARF_SECTIONS
    }
    shift = module.code_offset or 0
    symbols = []
    for i, (start, end) in enumerate(module.bodies):
        name = module.function_names.get(module.imported_functions + i)
        if name and end > start:
            symbols.append(Symbol(start - shift, end - shift, name))
    return WasmDwarf(sections, symbols, shift)
