"""Demangling for `function`: C++ (Itanium), Rust (legacy and v0) and Swift through pydemumble.

pydemumble 0.1.1 wraps one demangler for all three schemes and answers `""`
for names it does not recognise, so a plain C name comes back unchanged here.
What it prints, checked: `_ZN3foo3barIiEEvT_` → `void foo::bar<int>(int)`
(parameters kept, as docs/cli.md wants), Rust legacy `…17h<16 hex>E` →
`core::fmt::Formatter::pad` (hash already dropped, `$LT$` escapes decoded),
Rust v0 `_RNv…` → `mycrate::foo`, Swift `$s4main3FooV3baryyF` →
`main.Foo.bar() -> ()`. A `::h<16 hex>` suffix that still shows up (from a
demangler that keeps it, or an unmangled Rust name) is removed anyway.
"""

from __future__ import annotations

import re

import pydemumble  # type: ignore[import-untyped]

_RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")


def _looks_mangled(name: str) -> bool:
    return name.startswith(("_Z", "__Z", "_R", "__R", "$s", "_$s", "$S", "_$S", "_T0", "$e", "_$e"))


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
        out = name
    return _RUST_HASH.sub("", out)
