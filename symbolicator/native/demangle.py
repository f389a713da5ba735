"""Demangling for `function`: C++ (Itanium), Rust (legacy and v0) and Swift through pydemumble.

pydemumble 0.1.1 wraps one demangler for all three schemes and answers `""`
for names it does not recognise, so a plain C name comes back unchanged here.
What it prints, checked: `_ZN3foo3barIiEEvT_` → `void foo::bar<int>(int)`
(parameters kept, as docs/cli.md wants), Rust legacy `…17h<16 hex>E` →
`core::fmt::Formatter::pad` (hash already dropped, `$LT$` escapes decoded),
Rust v0 `_RNv…` → `mycrate::foo`, Swift `$s4main3FooV3baryyF` →
`main.Foo.bar() -> ()`. A `::h<16 hex>` suffix that still shows up (from a
demangler that keeps it, or an unmangled Rust name) is removed anyway.

MSVC names (`?…`, from PDB publics) come back as llvm-symbolizer prints them: pydemumble's
`public: virtual int __cdecl demo::Square::area(void) const` loses its access, member kind,
return type and calling convention (llvm's `MSDF_NoAccessSpecifier | MSDF_NoMemberType |
MSDF_NoReturnType | MSDF_NoCallingConvention`) → `demo::Square::area(void) const`.
"""

from __future__ import annotations

import re

import pydemumble  # type: ignore[import-untyped]

_RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")


_MSVC_PREFIX = re.compile(r"^(?:(?:public|private|protected): )?(?:(?:virtual|static) )?")
_MSVC_CONVENTIONS = ("__cdecl", "__stdcall", "__fastcall", "__thiscall", "__vectorcall", "__clrcall", "__regcall",
                     "__pascal", "__eabi", "__swift_1", "__swift_2")


def _looks_mangled(name: str) -> bool:
    return name.startswith(("_Z", "__Z", "_R", "__R", "$s", "_$s", "$S", "_$S", "_T0", "$e", "_$e", "?"))


def _msvc_short(text: str) -> str:
    """Drop access, member kind, return type and calling convention from an MSVC-demangled function name:
    everything up to the first calling convention outside template arguments and parentheses."""
    text = _MSVC_PREFIX.sub("", text, count=1)
    depth = 0
    for i, ch in enumerate(text):
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif depth == 0 and ch == "_" and text.startswith(_MSVC_CONVENTIONS, i) and (i == 0 or text[i - 1] == " "):
            for cc in _MSVC_CONVENTIONS:
                if text.startswith(cc + " ", i):
                    return text[i + len(cc) + 1:]
    return _msvc_pointer_return(text)


def _msvc_pointer_return(text: str) -> str:
    """`int (__cdecl * __cdecl ns::f(int))(int)`, a function returning a function pointer → `ns::f(int)`:
    the name and its parameters sit inside the pointer's declarator, after its second convention."""
    at = text.find("* __")
    for cc in _MSVC_CONVENTIONS if at >= 0 else ():
        if text.startswith(cc + " ", at + 2):
            start = at + 2 + len(cc) + 1
            depth = 0
            for j in range(start, len(text)):
                depth += 1 if text[j] in "<(" else -1 if text[j] in ">)" else 0
                if depth < 0:
                    return text[start:j].rstrip()
    return text


def demangle(name: str) -> str:
    """The human name for `name`; unmangled or unknown names come back as they are."""
    if not name:
        return name
    out = ""
    if _looks_mangled(name):
        try:
            out = pydemumble.demangle(name)
        except Exception:  # the C extension raises on pathological input; the raw name is a fine answer
            out = ""
    if not out:
        return _RUST_HASH.sub("", name)
    if name.startswith("?"):
        return _msvc_short(out)
    return _RUST_HASH.sub("", out)
