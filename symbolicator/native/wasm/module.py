"""Reading a WebAssembly module's sections: ids for identification, names and bodies for symbols.

The binary format is a magic, a version and a sequence of sections (`id: u8`, `size: LEB128 u32`,
payload). Custom sections (id 0) start with their name. Everything is bounded by the buffer: a
size or count that claims more than the bytes left is `MalformedObject`, never an allocation,
so a hostile module costs at most one pass over its own bytes. The buffer may be a memory
mapping; only the section headers, the small custom sections and (when asked) the code and
name sections are touched.

Facts this relies on (FORMATS-NOTES.md §2, checked against symbolic and llvm-symbolizer):

- `build_id` (custom): the debug id is its first 16 bytes read as a UUID (big-endian, not the
  little-endian GUID of ELF), the code id its whole content in hex;
- `external_debug_info` (custom): a LEB-length-prefixed URL/path of the separate debug file;
- DWARF addresses are offsets from the code section's payload start (`code_offset`), the
  position of the function count; a runtime (V8, wasmtime) reports module (file) offsets;
- a function symbol spans its body after the body-size LEB (the locals declaration) to the
  body's end, the same start the DWARF `low_pc` names.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field

from symbolicator.errors import MalformedObject

Buffer = bytes | memoryview | mmap.mmap

WASM_MAGIC = b"\0asm"
WASM_VERSION = 1
CUSTOM, IMPORT, CODE = 0, 2, 10
MAX_SECTION_ID = 13  # tag section (exception handling); higher ids are not wasm
IMPORT_FUNC, IMPORT_TABLE, IMPORT_MEMORY, IMPORT_GLOBAL, IMPORT_TAG = 0, 1, 2, 3, 4
NAME_SUBSECTION_FUNCTIONS = 1
MAX_NAME_BYTES = 1 << 16
MAX_BUILD_ID_BYTES = 64  # a SHA-256 is 32; a code id in a request is at most 40 bytes (`types.CodeId`)


@dataclass(frozen=True, slots=True)
class Section:
    """One section: `id`, its custom `name` (None for the others) and its content as [start, end)
    module offsets (after the name for a custom section)."""

    id: int
    name: str | None
    start: int
    end: int


@dataclass(slots=True)
class WasmModule:
    """What the service needs from a module.

    `code_offset` is the code section's payload start (None without a code section);
    `bodies` the [start, end) module offsets of each function body defined here, in function
    index order after the `imported_functions`; `function_names` maps function index → name
    (the `name` section). `debug_sections` maps DWARF names without the dot (`debug_info`) to
    their content's [start, end).
    """

    sections: list[Section] = field(default_factory=list)
    code_offset: int | None = None
    build_id: bytes | None = None
    external_debug_info: str | None = None
    imported_functions: int = 0
    bodies: list[tuple[int, int]] = field(default_factory=list)
    function_names: dict[int, str] = field(default_factory=dict)
    debug_sections: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def has_code(self) -> bool:
        return self.code_offset is not None

    @property
    def has_dwarf(self) -> bool:
        return "debug_info" in self.debug_sections


class _Reader:
    """A cursor over `buf[pos:end]`; every read is bounded by `end`."""

    def __init__(self, buf: Buffer, pos: int, end: int, what: str) -> None:
        self.buf, self.pos, self.end, self.what = buf, pos, end, what

    def fail(self, why: str) -> MalformedObject:
        return MalformedObject(f"malformed wasm module: {self.what} at offset {self.pos:#x}: {why}")

    def byte(self) -> int:
        if self.pos >= self.end:
            raise self.fail("truncated")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def uleb(self, bits: int = 32) -> int:
        result = shift = 0
        for _ in range((bits + 6) // 7):
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                if result >> bits:
                    raise self.fail(f"LEB128 value over {bits} bits")
                return result
            shift += 7
        raise self.fail(f"LEB128 longer than a u{bits}")

    def take(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise self.fail(f"claims {n} bytes, {self.end - self.pos} left")
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def skip(self, n: int) -> None:
        if n > self.end - self.pos:
            raise self.fail(f"claims {n} bytes, {self.end - self.pos} left")
        self.pos += n

    def name(self) -> str:
        n = self.uleb()
        if n > MAX_NAME_BYTES:
            raise self.fail(f"a name of {n} bytes")
        return self.take(n).decode("utf-8", "replace")

    def count(self, min_entry_bytes: int = 1) -> int:
        """A vector length, refused when its entries cannot fit in what is left."""
        n = self.uleb()
        if n * min_entry_bytes > self.end - self.pos:
            raise self.fail(f"a vector of {n} entries in {self.end - self.pos} bytes")
        return n


def read_module(buf: Buffer, *, bodies: bool = False, names: bool = False) -> WasmModule:
    """The sections of the module in `buf`; `bodies` / `names` also read the code and name sections.

    Raises `MalformedObject` for anything that is not a well-formed wasm 1 section sequence.
    """
    if bytes(buf[:4]) != WASM_MAGIC:
        raise MalformedObject("not a wasm module (bad magic)")
    if len(buf) < 8:
        raise MalformedObject(f"truncated wasm module: {len(buf)} bytes, shorter than its header")
    version = int.from_bytes(bytes(buf[4:8]), "little")
    if version != WASM_VERSION:
        raise MalformedObject(f"wasm module version {version}, only version 1 is read")
    module = WasmModule()
    r = _Reader(buf, 8, len(buf), "section header")
    while r.pos < r.end:
        sid = r.byte()
        if sid > MAX_SECTION_ID:
            raise r.fail(f"unknown section id {sid}")
        size = r.uleb()
        start = r.pos
        r.skip(size)
        _section(buf, module, sid, start, start + size, bodies, names)
    return module


def _section(buf: Buffer, module: WasmModule, sid: int, start: int, end: int, bodies: bool,
             names: bool) -> None:
    if sid == CODE:
        if module.code_offset is not None:
            raise MalformedObject("malformed wasm module: two code sections")
        module.code_offset = start
        module.sections.append(Section(sid, None, start, end))
        if bodies:
            module.bodies = _bodies(_Reader(buf, start, end, "code section"))
        return
    if sid == IMPORT:
        module.imported_functions = _imported_functions(_Reader(buf, start, end, "import section"))
        module.sections.append(Section(sid, None, start, end))
        return
    if sid != CUSTOM:
        module.sections.append(Section(sid, None, start, end))
        return
    r = _Reader(buf, start, end, "custom section")
    name = r.name()
    module.sections.append(Section(sid, name, r.pos, end))
    if name == "build_id":
        if end - r.pos > MAX_BUILD_ID_BYTES:
            raise r.fail(f"a build_id of {end - r.pos} bytes (at most {MAX_BUILD_ID_BYTES})")
        module.build_id = r.take(end - r.pos)
    elif name == "external_debug_info":
        module.external_debug_info = r.name()
    elif name == "name" and names:
        module.function_names = _function_names(r)
    elif name.startswith(".debug_"):
        module.debug_sections.setdefault(name[1:], (r.pos, end))


def _bodies(r: _Reader) -> list[tuple[int, int]]:
    out = []
    for _ in range(r.count()):
        size = r.uleb()
        begin = r.pos
        r.skip(size)
        out.append((begin, begin + size))
    if r.pos != r.end:
        raise r.fail("bytes after the last function body")
    return out


def _limits(r: _Reader) -> None:
    flags = r.byte()
    bits = 64 if flags & 0x04 else 32  # memory64
    r.uleb(bits)
    if flags & 0x01:
        r.uleb(bits)


def _imported_functions(r: _Reader) -> int:
    """How many imports are functions: they take the first function indices."""
    functions = 0
    for _ in range(r.count(3)):
        r.name()
        r.name()
        kind = r.byte()
        if kind == IMPORT_FUNC:
            r.uleb()
            functions += 1
        elif kind == IMPORT_TABLE:
            r.byte()
            _limits(r)
        elif kind == IMPORT_MEMORY:
            _limits(r)
        elif kind == IMPORT_GLOBAL:
            r.byte()
            r.byte()
        elif kind == IMPORT_TAG:
            r.byte()
            r.uleb()
        else:
            raise r.fail(f"unknown import kind {kind}")
    return functions


def _function_names(r: _Reader) -> dict[int, str]:
    """Subsection 1 of the `name` section (function index → name); other subsections are skipped."""
    out: dict[int, str] = {}
    while r.pos < r.end:
        sub = r.byte()
        size = r.uleb()
        sub_end = r.pos + size
        if size > r.end - r.pos:
            raise r.fail(f"name subsection of {size} bytes past the section")
        if sub == NAME_SUBSECTION_FUNCTIONS:
            s = _Reader(r.buf, r.pos, sub_end, "function names")
            for _ in range(s.count(2)):
                index = s.uleb()
                out[index] = s.name()
        r.pos = sub_end
    return out


def debug_id_bytes(build_id: bytes | None) -> bytes | None:
    """The 16 bytes of the debug id: the first 16 of `build_id` (None when it is shorter, as symbolic)."""
    if build_id is None or len(build_id) < 16:
        return None
    return build_id[:16]
