"""Apple crash reports as data: the model both formats parse into, and the helpers they share.

`/applecrashreport` and `symbolicator symbolicate crash.ips` take either of Apple's
two formats and must end up where `/symbolicate` starts: stack traces with
registers, and Mach-O modules (UUID, load address, size). Parsing is pure and
linear in the input; it knows nothing of debug files.

* legacy `.crash` text (`text.py`): header lines, `Thread N` sections,
  the crashed thread's register dump, `Binary Images:`. Older `.ips` files
  (bug_type 109) are a JSON header line followed by this text.
* modern `.ips` (`ips.py`): a JSON header line, then one JSON body
  (`usedImages`, `threads`, `exception`, `faultingThread`, ...).

Mapped the way Symbolicator maps them (`symbolicator-native`, `apple.rs`):
`thread_id` is the thread's number in the report, `is_requesting` its crashed
flag, frames carry `instruction_addr` + `package`; each image becomes a `macho`
module with `debug_id` and `code_id` from its UUID, `code_file` = `debug_file` =
its path, and `crash_reason` is the exception type (`EXC_BAD_ACCESS (SIGSEGV)`)
with subtype/codes in `crash_details`. Deliberate differences, each for the
user reading the result: image sizes count the inclusive end (`end - start + 1`);
frames also pass through the symbol the device already printed (`symbol`,
`sym_addr`), so system frames without debug files still have a name; images with
the nil UUID are dropped (they span the whole address space); `system_info`
splits `iPhone OS 17.2 (21C62)` into `iOS`, `17.2`, `21C62`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal

from symbolicator.errors import MalformedObject
from symbolicator.types import Arch, CodeId, DebugId


class MalformedCrashReport(MalformedObject):
    """Not an Apple crash report, or a broken one. A `FormatError`: exit 1 on the CLI, and 400 on
    the API (web/errors.py answers a request body's `FormatError` so): a bad upload is never a 500."""


@dataclass(frozen=True, slots=True)
class BinaryImage:
    """One loaded Mach-O image. `image_addr` is where `__TEXT` was loaded and
    `image_size` its size, in bytes (0: unknown); `arch` is Apple's spelling."""

    debug_id: DebugId
    code_id: CodeId
    image_addr: int
    image_size: int
    arch: str
    name: str
    path: str
    version: str | None = None


@dataclass(frozen=True, slots=True)
class AppleFrame:
    """`instruction_addr` is absolute; `image_index` points into `binary_images`
    (None: no listed image covers it); `symbol_offset` is bytes past `symbol`."""

    instruction_addr: int
    image_index: int | None
    module: str | None
    symbol: str | None = None
    symbol_offset: int | None = None
    filename: str | None = None
    lineno: int | None = None


@dataclass(frozen=True, slots=True)
class AppleThread:
    """`id` is the thread's number in the report (0-based); registers are raw values."""

    id: int
    name: str | None
    dispatch_queue: str | None
    crashed: bool
    registers: dict[str, int]
    frames: tuple[AppleFrame, ...]


@dataclass(frozen=True, slots=True)
class SystemInfo:
    """Symbolicator's `system_info`; empty strings where the report is silent."""

    os_name: str = ""
    os_version: str = ""
    os_build: str = ""
    cpu_arch: Arch = Arch.UNKNOWN
    device_model: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "os_name": self.os_name,
            "os_version": self.os_version,
            "os_build": self.os_build,
            "cpu_arch": self.cpu_arch.value,
            "device_model": self.device_model,
        }


@dataclass(frozen=True, slots=True)
class AppleCrashReport:
    """A parsed report. `timestamp` is Unix seconds (UTC); `signal` a Darwin number."""

    format: Literal["crash", "ips"]
    threads: tuple[AppleThread, ...]
    binary_images: tuple[BinaryImage, ...]
    system_info: SystemInfo
    crash_reason: str | None = None
    crash_details: str | None = None
    exception_type: str | None = None
    exception_subtype: str | None = None
    exception_codes: str | None = None
    signal: int | None = None
    crashed_thread: int | None = None
    timestamp: int | None = None
    incident_identifier: str | None = None
    process_name: str | None = None
    application_specific_information: str | None = None
    last_exception_backtrace: tuple[AppleFrame, ...] = field(default=())


SIGNALS: dict[str, int] = {
    "SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6, "SIGEMT": 7,
    "SIGFPE": 8, "SIGKILL": 9, "SIGBUS": 10, "SIGSEGV": 11, "SIGSYS": 12, "SIGPIPE": 13,
    "SIGALRM": 14, "SIGTERM": 15,
}  # fmt: skip

_OS_NAMES = {
    "iphone os": "iOS", "ios": "iOS", "ipados": "iPadOS", "mac os x": "macOS", "macos": "macOS",
    "os x": "macOS", "watch os": "watchOS", "watchos": "watchOS", "apple tvos": "tvOS",
    "tvos": "tvOS", "visionos": "visionOS", "xros": "visionOS",
}  # fmt: skip
_OS_VERSION = re.compile(r"^(?P<name>[A-Za-z][A-Za-z ]{0,40}?) (?P<version>\d+(?:\.\d+){0,3})"
                         r"(?: \((?P<build>[^()]{1,40})\))?$")
_TIMESTAMP = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.\d{1,9})? ?([+-])(\d\d):?(\d\d)$")
_CODE_TYPES = {
    "arm-64": Arch.ARM64, "arm64": Arch.ARM64, "arm64e": Arch.ARM64E, "arm-64e": Arch.ARM64E,
    "arm64_32": Arch.ARM64_32, "arm": Arch.ARM, "armv7": Arch.ARMV7, "x86-64": Arch.X86_64,
    "x86_64": Arch.X86_64, "x86": Arch.X86, "i386": Arch.X86, "ppc": Arch.PPC, "ppc-64": Arch.PPC64,
}  # fmt: skip


def signal_number(text: str | None) -> int | None:
    """`SIGSEGV`, `EXC_BAD_ACCESS (SIGSEGV)` or `Segmentation fault: 11` → 11."""
    if not text:
        return None
    t = text.strip()
    if t.endswith(")") and "(" in t:
        t = t[t.rfind("(") + 1 : -1].strip()
    if t.upper() in SIGNALS:
        return SIGNALS[t.upper()]
    tail = t.rpartition(":")[2].strip()
    return int(tail) if tail.isdigit() and len(tail) <= 2 and ":" in t else None


def parse_timestamp(text: str | None) -> int | None:
    """Apple's `2020-03-27 18:06:51.4969 -0700` → Unix seconds; None when unreadable."""
    m = _TIMESTAMP.match(text.strip()) if text and len(text) < 64 else None
    if not m:
        return None
    y, mo, d, h, mi, s, sign, oh, om = m.groups()
    try:
        offset = timedelta(hours=int(oh), minutes=int(om)) * (-1 if sign == "-" else 1)
        moment = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=timezone(offset))
    except ValueError:
        return None
    return int(moment.timestamp())


def parse_os_version(text: str | None) -> tuple[str, str, str]:
    """`iPhone OS 17.2 (21C62)` → (`iOS`, `17.2`, `21C62`); unknown shapes keep the text as the name."""
    if not text:
        return "", "", ""
    t = " ".join(text.split()[:8])
    m = _OS_VERSION.match(t) if len(t) < 128 else None
    if not m:
        return t[:128], "", ""
    name = m["name"].strip()
    return _OS_NAMES.get(name.lower(), name), m["version"], m["build"] or ""


def code_type_arch(text: str | None) -> Arch:
    """`ARM-64 (Native)` / `cpuType: "ARM-64"` → arm64."""
    if not text or not text.split():
        return Arch.UNKNOWN
    return _CODE_TYPES.get(text.split()[0].lower(), Arch.UNKNOWN)


def image_from_uuid(uuid_text: str, *, image_addr: int, image_size: int, arch: str, name: str, path: str,
                    version: str | None, where: str) -> BinaryImage | None:  # fmt: skip
    """A `BinaryImage`, or None for the nil UUID Apple prints for unknown images."""
    compact = uuid_text.strip().replace("-", "").lower()
    if len(compact) != 32 or any(c not in "0123456789abcdef" for c in compact):
        raise MalformedCrashReport(f"{where}: image UUID {uuid_text[:80]!r} is not 32 hex digits")
    if compact == "0" * 32:
        return None
    return BinaryImage(
        debug_id=DebugId.parse(compact),
        code_id=CodeId.parse(compact),
        image_addr=image_addr,
        image_size=image_size,
        arch=arch,
        name=name,
        path=path,
        version=version,
    )


class ImageFinder:
    """Which image covers an address: a binary search over the sorted load addresses."""

    def __init__(self, images: Sequence[BinaryImage]) -> None:
        order = sorted(range(len(images)), key=lambda i: images[i].image_addr)
        self._starts = [images[i].image_addr for i in order]
        self._ends = [images[i].image_addr + max(images[i].image_size, 1) for i in order]
        self._order = order

    def find(self, addr: int) -> int | None:
        pos = bisect.bisect_right(self._starts, addr) - 1
        if pos >= 0 and addr < self._ends[pos]:
            return self._order[pos]
        return None
