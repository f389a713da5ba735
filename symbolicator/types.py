"""Identifiers parsed and normalised once, at the edge.

Every id that crosses the API or a storage key goes through these types, so the
rest of the code compares normalised values and never re-parses strings.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass

from symbolicator.errors import InvalidId

_SLUG = re.compile(r"[a-z0-9_-]{1,64}")  # always fullmatch: `$` would let a trailing newline through
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True, slots=True)
class Scope:
    """A tenant: one or two slugs joined by `/` (docs/api.md).

    The grammar leaves nothing to escape in storage keys: no `.`, no `..`.
    """

    value: str

    @classmethod
    def parse(cls, text: str) -> Scope:
        parts = text.split("/")
        if not 1 <= len(parts) <= 2 or not all(_SLUG.fullmatch(p) for p in parts):
            raise InvalidId(f"invalid scope {text!r}: one or two slugs [a-z0-9_-]{{1,64}} joined by '/'")
        return cls(text)

    def __str__(self) -> str:
        return self.value


GLOBAL_SCOPE = Scope("global")

MAX_RELEASE_CHARS = 200  # Sentry's MAX_VERSION_LENGTH
MAX_DIST_CHARS = 64  # Sentry's Distribution.name
_BAD_NAME_CHARS = re.compile(r"[/\\\x00-\x1f\x7f]")


def check_release(text: object, what: str = "`release`") -> str:
    """A release name as Sentry takes it: 1 to 200 characters, no `/`, `\\` or control characters.

    Not `.`, `..` or blank either. Checked at the edge so a long or odd name is a 422
    naming the rule, not a storage error when it becomes part of a key.
    """
    if not isinstance(text, str) or not text.strip() or text in (".", ".."):
        raise InvalidId(f"{what} must be a non-empty release name")
    if len(text) > MAX_RELEASE_CHARS:
        raise InvalidId(f"{what} is {len(text)} characters long; a release has at most {MAX_RELEASE_CHARS}")
    if _BAD_NAME_CHARS.search(text):
        raise InvalidId(f"{what} must not contain '/', '\\' or control characters")
    return text


def check_dist(text: object, what: str = "`dist`") -> str:
    """A distribution name as Sentry takes it: 1 to 64 characters, no `/`, `\\` or control characters."""
    if not isinstance(text, str) or not text:
        raise InvalidId(f"{what} must be a non-empty string")
    if len(text) > MAX_DIST_CHARS:
        raise InvalidId(f"{what} is {len(text)} characters long; a dist has at most {MAX_DIST_CHARS}")
    if _BAD_NAME_CHARS.search(text):
        raise InvalidId(f"{what} must not contain '/', '\\' or control characters")
    return text


@dataclass(frozen=True, slots=True)
class DebugId:
    """A debug id: a UUID plus an optional appendix (PDB age), Symbolicator's form.

    Printed lowercase as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` with `-{appendix:x}`
    when the appendix is not zero. Parsing also takes the 32/33+ hex "breakpad" form.
    """

    uuid: uuid.UUID
    appendix: int = 0

    @classmethod
    def parse(cls, text: str) -> DebugId:
        s = text.strip().lower()
        try:
            if len(s) >= 36 and s[8] == "-":
                u = uuid.UUID(s[:36])
                rest = s[36:]
                if not rest:
                    return cls(u)
                if rest[0] != "-" or not _HEX.match(rest[1:]) or len(rest) > 9:
                    raise ValueError(rest)
                return cls(u, int(rest[1:], 16))
            compact = s.replace("-", "")
            if len(compact) >= 32 and _HEX.match(compact) and len(compact) <= 40:
                u = uuid.UUID(hex=compact[:32])
                return cls(u, int(compact[32:], 16) if compact[32:] else 0)
        except ValueError:
            pass
        raise InvalidId(f"invalid debug id {text!r}")

    @classmethod
    def from_elf_build_id(cls, build_id: bytes) -> DebugId:
        """Symbolicator's derivation: the first 16 bytes as a little-endian GUID.

        Shorter build ids are zero-padded. The result cannot be turned back into
        the build id, which is why uploads keep a debug-id → code-id index.
        """
        data = (build_id + b"\0" * 16)[:16]
        return cls(uuid.UUID(bytes_le=data))

    def __str__(self) -> str:
        base = str(self.uuid)
        return f"{base}-{self.appendix:x}" if self.appendix else base

    def serves(self, wanted: DebugId) -> bool:
        """Whether a file with this debug id may answer for a module that asks for `wanted`: the same UUID and
        an appendix (PDB age) at least as high. Microsoft's symbol server answers a request for one age with a
        later rebuild of the same PDB, and Symbolicator accepts that (its `validate_object_ids`); a lower age
        or another GUID is another build. Without an appendix (ELF, Mach-O) this is equality."""
        return self.uuid == wanted.uuid and self.appendix >= wanted.appendix

    @property
    def breakpad(self) -> str:
        """`UUID` upper hex without dashes followed by the appendix in hex."""
        return f"{self.uuid.hex.upper()}{self.appendix:X}"


@dataclass(frozen=True, slots=True)
class CodeId:
    """A code id: ELF build-id hex or Mach-O UUID hex, lowercase, no dashes."""

    value: str

    @classmethod
    def parse(cls, text: str) -> CodeId:
        s = text.strip().lower().replace("-", "")
        if not s or len(s) > 80 or not _HEX.match(s):
            raise InvalidId(f"invalid code id {text!r}")
        return cls(s)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CodeId:
        return cls(raw.hex())

    def __str__(self) -> str:
        return self.value


class Arch(str, enum.Enum):
    """CPU architectures, named as Symbolicator and sentry-cli print them."""

    X86 = "x86"
    X86_64 = "x86_64"
    X86_64H = "x86_64h"
    ARM = "arm"
    ARMV6 = "armv6"
    ARMV7 = "armv7"
    ARMV7S = "armv7s"
    ARMV7K = "armv7k"
    ARM64 = "arm64"
    ARM64E = "arm64e"
    ARM64_32 = "arm64_32"
    PPC = "ppc"
    PPC64 = "ppc64"
    MIPS = "mips"
    MIPS64 = "mips64"
    RISCV64 = "riscv64"
    WASM32 = "wasm32"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, text: str | None) -> Arch:
        if not text:
            return cls.UNKNOWN
        t = text.strip().lower()
        aliases = {"amd64": "x86_64", "x86-64": "x86_64", "i386": "x86", "i686": "x86", "aarch64": "arm64"}
        t = aliases.get(t, t)
        try:
            return cls(t)
        except ValueError:
            return cls.UNKNOWN


class ObjectKind(str, enum.Enum):
    """What a stored debug file is for; the file name in Sentry's unified layout."""

    DEBUGINFO = "debuginfo"
    EXECUTABLE = "executable"
    SOURCEBUNDLE = "sourcebundle"
    BREAKPAD = "breakpad"
    PROGUARD = "proguard"
