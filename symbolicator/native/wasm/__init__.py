"""WebAssembly modules as debug files: the container reader (`module`) and its DWARF (`dwarf`).

A wasm module carries DWARF in custom sections named like ELF's (`.debug_info`, …); the same
DWARF reader as ELF and Mach-O decodes them. What is wasm-specific lives here: the section
walk, the `build_id` / `external_debug_info` / `name` custom sections, and the address space
(DWARF addresses count from the code section's payload, runtimes report module offsets).
docs/formats.md has the rules and the differences from Symbolicator.
"""
