"""Where a debug file sits on a symbol source: ids → relative paths (docs/configuration.md, "Symbol sources").

The rules are Symbolicator's (`symbolicator-sources/src/paths.rs`), so a bucket sorted by
`symsorter`, a debuginfod mirror, a GDB `.build-id` tree or an LLDB UUID folder works as a
source unchanged. Only what this service symbolicates is mapped: ELF, Mach-O, wasm and PE objects
(`elf_code`, `elf_debug`, `mach_code`, `mach_debug`, `wasm_code`, `wasm_debug`, `pe`, `pdb`; wasm
takes ELF's GDB paths in the native layout and Mach-O's id rule in the unified one, as Symbolicator),
Breakpad `.sym` files and `sourcebundle`s; other file types give no path. PE and PDB files sit at
Microsoft symbol server paths on every layout but `debuginfod` (`unified`: the lowercase breakpad debug id).

Path safety: ids are hex by construction (`CodeId`, `DebugId`), but the symstore and breakpad
forms embed the *basename* of `code_file` / `debug_file`, which a request
controls. A basename is whatever follows the last `/` or `\\`; one that is empty, `.`, `..`
or holds NUL or control characters disables those paths. Every path is checked once more
before it is returned (`is_safe_relative`), so no layout can ever produce an absolute path,
a `..` segment or a backslash.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from symbolicator.sources.config import Layout
from symbolicator.types import Arch, CodeId, DebugId

ObjectType = Literal["elf", "macho", "pe", "wasm"]
FileType = Literal["elf_code", "elf_debug", "mach_code", "mach_debug", "wasm_code", "wasm_debug", "pe", "pdb",
                   "breakpad", "sourcebundle"]

_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")

DEBUG_FILE_TYPES: dict[str, FileType] = {"elf": "elf_debug", "macho": "mach_debug", "wasm": "wasm_debug", "pe": "pdb"}
CODE_FILE_TYPES: dict[str, FileType] = {"elf": "elf_code", "macho": "mach_code", "wasm": "wasm_code", "pe": "pe"}
BREAKPAD: FileType = "breakpad"
_OWN_TYPES: dict[FileType, str] = {"elf_code": "elf", "elf_debug": "elf", "mach_code": "macho", "mach_debug": "macho",
                                   "wasm_code": "wasm", "wasm_debug": "wasm", "pe": "pe", "pdb": "pe"}
FILE_FORMATS: dict[FileType, str] = {"elf_code": "elf", "elf_debug": "elf", "mach_code": "macho", "mach_debug": "macho",
                                     "wasm_code": "wasm", "wasm_debug": "wasm", "pe": "pe", "pdb": "pdb",
                                     "breakpad": "breakpad", "sourcebundle": "sourcebundle"}
"""The `ObjectInfo.file_format` a download of each file type must have."""


@dataclass(frozen=True, slots=True)
class ModuleQuery:
    """What is known of one module: ids (normalised), arch, and the file names the client sent.

    `code_file` / `debug_file` are untrusted paths as the crashing machine saw them
    (`/usr/lib/libc.so.6`, `C:\\x\\app.exe`); only their basenames are ever used.
    `arch` UNKNOWN accepts any architecture.
    """

    object_type: ObjectType
    debug_id: DebugId | None = None
    code_id: CodeId | None = None
    arch: Arch = Arch.UNKNOWN
    code_file: str | None = None
    debug_file: str | None = None


def safe_basename(name: str | None) -> str | None:
    """The last `/`- or `\\`-separated part of `name`, or None when it is not a plain file name."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base in ("", ".", "..") or any(ord(c) < 0x20 or c == "\x7f" for c in base):
        return None
    return base


def is_safe_relative(path: str) -> bool:
    """True for a `/`-separated relative path whose every segment is a plain name."""
    return bool(path) and not path.startswith("/") and "\\" not in path and "\0" not in path and all(
        seg not in ("", ".", "..") for seg in path.split("/"))


def _mach_uuid(m: ModuleQuery) -> uuid.UUID | None:
    """The Mach-O UUID: from the code id when there is one (and it is a UUID), else the debug id."""
    if m.code_id is not None:
        try:
            return uuid.UUID(hex=m.code_id.value)
        except ValueError:
            return None
    return m.debug_id.uuid if m.debug_id is not None else None


def _gdb(m: ModuleQuery) -> str | None:
    cid = m.code_id.value if m.code_id else None
    return f"{cid[:2]}/{cid[2:]}" if cid and len(cid) >= 2 else None


def _lldb(m: ModuleQuery) -> str | None:
    u = _mach_uuid(m)
    if u is None:
        return None
    h = u.hex.upper()
    return "/".join([h[0:4], h[4:8], h[8:12], h[12:16], h[16:20], h[20:]])


def _breakpad(m: ModuleQuery) -> str | None:
    name = safe_basename(m.debug_file)
    if name is None or m.debug_id is None:
        return None
    stem = name
    for ext in (".exe", ".dll", ".pdb"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    return f"{name}/{m.debug_id.breakpad}/{stem}.sym"


def _native(ft: FileType, m: ModuleQuery) -> list[str]:
    if ft in ("pe", "pdb"):
        path = _symstore(ft, m, ssqp=False)
        return [] if path is None else [path]
    if ft in ("elf_code", "elf_debug", "wasm_code", "wasm_debug"):
        gdb = _gdb(m)
        return [] if gdb is None else [gdb + (".debug" if ft in ("elf_debug", "wasm_debug") else "")]
    if ft in ("mach_code", "mach_debug"):
        lldb = _lldb(m)
        return [] if lldb is None else [lldb + (".app" if ft == "mach_code" else "")]
    if ft == "breakpad":
        breakpad = _breakpad(m)
        return [] if breakpad is None else [breakpad]
    primary = _lldb(m) if m.object_type == "macho" else _gdb(m)
    if primary is None:
        return []
    primary += ".src.zip"
    out: list[str] = []
    breakpad = _breakpad(m)
    if breakpad is not None and breakpad[: -len(".sym")] + ".src.zip" != primary:
        out.append(breakpad[: -len(".sym")] + ".src.zip")
    return out + [primary]


def _pe_code_id(m: ModuleQuery, ssqp: bool) -> str | None:
    """`<TIMESTAMP upper><SizeOfImage lower>` as symstore writes a PE's folder (all lowercase for SSQP)."""
    if m.code_id is None or len(m.code_id.value) <= 8:
        return None
    cid = m.code_id.value
    return cid if ssqp else cid[:8].upper() + cid[8:]


def _pdb_signature(m: ModuleQuery, ssqp: bool) -> str | None:
    """`<GUID upper hex><age lower hex>` (SSQP: lowercase GUID, uppercase age)."""
    if m.debug_id is None:
        return None
    guid, age = m.debug_id.uuid.hex, m.debug_id.appendix
    return f"{guid}{age:X}" if ssqp else f"{guid.upper()}{age:x}"


def _symstore(ft: FileType, m: ModuleQuery, ssqp: bool) -> str | None:
    code_file = safe_basename(m.code_file)
    if code_file is not None and ssqp:
        code_file = code_file.lower()
    if ft == "pe":
        cid = _pe_code_id(m, ssqp)
        return f"{code_file}/{cid}/{code_file}" if cid and code_file else None
    if ft == "pdb":
        debug_file = safe_basename(m.debug_file)
        if debug_file is not None and ssqp:
            debug_file = debug_file.lower()
        sig = _pdb_signature(m, ssqp)
        return f"{debug_file}/{sig}/{debug_file}" if sig and debug_file else None
    if ft == "elf_code":
        return f"{code_file}/elf-buildid-{m.code_id}/{code_file}" if m.code_id and code_file else None
    if ft == "elf_debug":
        return f"_.debug/elf-buildid-sym-{m.code_id}/_.debug" if m.code_id else None
    u = _mach_uuid(m)
    if ft == "mach_code":
        return f"{code_file}/mach-uuid-{u.hex}/{code_file}" if u and code_file else None
    if ft == "mach_debug":
        return f"_.dwarf/mach-uuid-sym-{u.hex}/_.dwarf" if u else None
    return None


def _symstore_index2(ft: FileType, m: ModuleQuery) -> str | None:
    path = _symstore(ft, m, ssqp=False)
    if path is None:
        return None
    head = path[:2]
    return f"{head[0]}/{path}" if head[1:] in ("/", ".") else f"{head}/{path}"


def _unified_id(ft: FileType, m: ModuleQuery) -> str | None:
    if ft in ("sourcebundle", "breakpad"):
        ft = CODE_FILE_TYPES[m.object_type]
    if ft in ("pe", "pdb"):
        return m.debug_id.breakpad.lower() if m.debug_id is not None else None
    if ft in ("elf_code", "elf_debug"):
        return m.code_id.value if m.code_id else None
    if m.code_id is not None:
        return m.code_id.value
    return m.debug_id.uuid.hex if m.debug_id is not None else None


def _unified(ft: FileType, m: ModuleQuery) -> str | None:
    suffix = {"elf_code": "executable", "mach_code": "executable", "wasm_code": "executable", "pe": "executable",
              "elf_debug": "debuginfo", "mach_debug": "debuginfo", "wasm_debug": "debuginfo", "pdb": "debuginfo",
              "breakpad": "breakpad", "sourcebundle": "sourcebundle"}[ft]
    fid = _unified_id(ft, m)
    return f"{fid[:2]}/{fid[2:]}/{suffix}" if fid and len(fid) > 2 else None


def _debuginfod(ft: FileType, m: ModuleQuery) -> str | None:
    if ft not in ("elf_code", "elf_debug") or m.code_id is None:
        return None
    return f"{m.code_id}/{'executable' if ft == 'elf_code' else 'debuginfo'}"


def candidate_paths(layout: Layout, file_type: FileType, module: ModuleQuery) -> list[str]:
    """Relative paths where `file_type` of `module` may sit on a source with `layout`, in try order."""
    if file_type in _OWN_TYPES and module.object_type != _OWN_TYPES[file_type]:
        return []
    if (file_type in ("pe", "pdb")) != (module.object_type == "pe") and file_type != "sourcebundle":
        return []
    if file_type == "sourcebundle" and module.object_type == "pe":
        return []  # PE source bundles (`<pdb stem>.src.zip`) are not read here
    paths: list[str | None]
    if layout.type == "native":
        paths = list(_native(file_type, module))
    elif layout.type in ("symstore", "ssqp"):
        paths = [_symstore(file_type, module, ssqp=layout.type == "ssqp")]
    elif layout.type == "symstore_index2":
        paths = [_symstore_index2(file_type, module)]
    elif layout.type == "debuginfod":
        paths = [_debuginfod(file_type, module)]
    elif layout.type == "unified":
        paths = [_unified(file_type, module)]
    else:
        paths = []
    out: list[str] = []
    for path in paths:
        if path is None:
            continue
        if layout.casing == "lowercase":
            path = path.translate(_LOWER)
        elif layout.casing == "uppercase":
            path = path.translate(_UPPER)
        if is_safe_relative(path) and path not in out:
            out.append(path)
    return out
