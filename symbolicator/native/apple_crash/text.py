"""The legacy `.crash` text format (Apple's "Examining the fields in a crash report").

A line-driven state machine in the spirit of Sentry's `apple-crash-report-parser`,
but tokenised by hand instead of with backtracking regexes, so every line costs
time linear in its length whatever it contains: a 100 MB upload of spaces or one
endless line parses as fast as a real report.

Sections: header `Key: value` lines; `Thread N[ Crashed]:` followed by frame lines
`N  module  0xADDR  symbol + off (file:line)` or `0xBASE + off`; `Thread N name:`;
`Thread N crashed with ARM Thread State (64-bit):` followed by `name: 0x…` pairs
until a blank line; `Last Exception Backtrace:`; `Application Specific
Information:`; `Binary Images:` with `0xSTART - 0xEND name arch <uuid> path`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from symbolicator.native.apple_crash.model import (
    AppleCrashReport,
    AppleFrame,
    AppleThread,
    BinaryImage,
    ImageFinder,
    MalformedCrashReport,
    SystemInfo,
    code_type_arch,
    image_from_uuid,
    parse_os_version,
    parse_timestamp,
    signal_number,
)
from symbolicator.types import Arch

_THREAD = re.compile(r"Thread (\d{1,9})( Crashed)?:(.*)")
_THREAD_NAME = re.compile(r"Thread (\d{1,9}) name:(.*)")
_IMAGE = re.compile(r"\s*(0x[0-9a-fA-F]{1,16})\s*-\s*(0x[0-9a-fA-F]{1,16})\s+(.*)")
_HEX = re.compile(r"0x[0-9a-fA-F]{1,16}")
_TOKEN = re.compile(r"\S+")
_KNOWN_KEYS = (
    "Incident Identifier", "Hardware Model", "Process", "Code Type", "OS Version", "Exception Type",
    "Report Version", "Crashed Thread", "Triggered by Thread", "Date/Time",
)  # fmt: skip
_ARCH_PREFIXES = ("arm", "x86", "i386", "ppc")


_RawFrame = tuple[int, str | None, str | None, int | None, str | None, int | None]


@dataclass
class _ThreadBuilder:
    id: int
    crashed: bool
    name: str | None = None
    queue: str | None = None
    frames: list[_RawFrame] = field(default_factory=list)


def _name_and_queue(text: str) -> tuple[str | None, str | None]:
    """`com.x.worker  Dispatch queue: q` / `Dispatch queue: q` / `name` → (name, queue)."""
    t = text.strip().lstrip(":").strip()
    before, sep, after = t.partition("Dispatch queue:")
    if not sep:
        return (t or None), None
    return (before.strip() or None), (after.strip() or None)


def _parse_frame(line: str) -> _RawFrame | None:
    """A frame line → (addr, module, symbol, offset, file, line), None if it is not one."""
    tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(line)]
    if len(tokens) < 3 or not line[tokens[0][0] : tokens[0][1]].isdigit():
        return None
    for i in range(2, len(tokens)):
        s, e = tokens[i]
        if _HEX.fullmatch(line, s, e):
            break
    else:
        return None
    module = line[tokens[1][0] : tokens[i - 1][1]]
    addr = int(line[s + 2 : e], 16)
    rest = line[e:].strip()
    filename: str | None = None
    lineno: int | None = None
    if rest.endswith(")") and " (" in rest:
        cut = rest.rfind(" (")
        file_part, _, line_part = rest[cut + 2 : -1].rpartition(":")
        if file_part and line_part.isdigit() and len(line_part) < 10:
            filename, lineno = file_part, int(line_part)
            rest = rest[:cut].rstrip()
    offset: int | None = None
    head, sep, tail = rest.rpartition(" + ")
    if sep and tail.isdigit() and len(tail) < 20:
        rest, offset = head.strip(), int(tail)
    symbol: str | None = rest or None
    if symbol is not None and (_HEX.fullmatch(symbol) or symbol.isdigit()):
        symbol = offset = None  # `0x1b2f3a000 + 147892` / `0 + 1234`: image base + offset, no symbol
    return addr, (None if module == "???" else module), symbol, offset, filename, lineno


def _parse_exception_line(line: str) -> list[_RawFrame]:
    """A frame line, or the older one-line `(0x18b0c5e38 0x18adcb8d8 …)` address list."""
    frame = _parse_frame(line)
    if frame:
        return [frame]
    t = line.strip()
    if t.startswith("(") and t.endswith(")"):
        words = t[1:-1].split()
        if words and all(_HEX.fullmatch(w) for w in words):
            return [(int(w, 16), None, None, None, None, None) for w in words]
    return []


def _parse_registers(line: str, into: dict[str, int]) -> None:
    tokens = line.split()
    for name, value in zip(tokens, tokens[1:], strict=False):
        if len(name) > 1 and name.endswith(":") and _HEX.fullmatch(value):
            reg = name[:-1]
            if reg.isalnum() and reg.isascii() and reg == reg.lower() and reg[0].isalpha():
                into[reg] = int(value, 16)


def _parse_image(line: str, lineno: int) -> tuple[bool, BinaryImage | None]:
    """An image line → (True, image or None for the nil UUID); (False, None) if not one."""
    m = _IMAGE.match(line)
    if not m:
        return False, None
    rest = m[3]
    lt, gt = rest.find("<"), rest.find(">")
    if lt < 0 or gt < lt:
        return False, None
    start, end = int(m[1], 16), int(m[2], 16)
    before, path = rest[:lt].strip(), rest[gt + 1 :].strip()
    version = None
    if before.endswith(")") and "(" in before:
        cut = before.rfind("(")
        version, before = before[cut + 1 : -1].strip(), before[:cut].strip()
    name, arch = before, ""
    words = before.rsplit(None, 1)
    if len(words) == 2 and words[1].lower().startswith(_ARCH_PREFIXES):
        name, arch = words[0], words[1]
    return True, image_from_uuid(
        rest[lt + 1 : gt],
        image_addr=start,
        image_size=end - start + 1 if end >= start else 0,
        arch=arch,
        name=name.lstrip("+").strip(),
        path=path,
        version=version,
        where=f"line {lineno}",
    )


def parse_crash_text(text: str) -> AppleCrashReport:
    """Parse a `.crash` report; `MalformedCrashReport` if it is not one."""
    meta: dict[str, str] = {}
    threads: list[_ThreadBuilder] = []
    names: dict[int, tuple[str | None, str | None]] = {}
    registers: dict[int, dict[str, int]] = {}
    images: list[BinaryImage] = []
    asi: list[str] = []
    last_exception: list[_RawFrame] = []
    state, reg_thread, current = "root", -1, None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if state == "registers":
            if line.strip():
                _parse_registers(line, registers.setdefault(reg_thread, {}))
                continue
            state = "root"
        if state in ("asi", "last_exception"):
            if not line.strip():
                state = "root"
            elif state == "asi":
                asi.append(line.strip())
            else:
                last_exception.extend(_parse_exception_line(line))
            continue
        if line.startswith("Binary Images:"):
            state = "images"
            continue
        if line.startswith("Application Specific Information:"):
            state = "asi"
            continue
        if line.startswith("Last Exception Backtrace:"):
            state = "last_exception"
            continue
        if line.startswith("Thread ") and " crashed with " in line and "Thread State" in line and line.endswith(":"):
            digits = line[7:].split(" ", 1)[0]
            reg_thread = int(digits) if digits.isdigit() and len(digits) < 10 else -1
            state = "registers"
            continue
        m = _THREAD_NAME.fullmatch(line)
        if m:
            names[int(m[1])] = _name_and_queue(m[2])
            state = "root"
            continue
        m = _THREAD.fullmatch(line)
        if m:
            name, queue = _name_and_queue(m[3])
            current = _ThreadBuilder(int(m[1]), bool(m[2]), name, queue)
            threads.append(current)
            state = "thread"
            continue
        if state == "thread" and current is not None:
            frame = _parse_frame(line)
            if frame:
                current.frames.append(frame)
                continue
            state = "root"
        if state == "images":
            if not line.strip():
                continue
            is_image, image = _parse_image(line, n)
            if is_image:
                if image is not None:
                    images.append(image)
                continue
            state = "root"
        key, sep, value = line.partition(":")
        if sep and 0 < len(key.strip()) <= 64 and not key[:1].isspace():
            meta.setdefault(key.strip(), value.strip())
    return _build(meta, threads, names, registers, images, asi, last_exception)


def _build(
    meta: dict[str, str],
    threads: list[_ThreadBuilder],
    names: dict[int, tuple[str | None, str | None]],
    registers: dict[int, dict[str, int]],
    images: list[BinaryImage],
    asi: list[str],
    last_exception: list[_RawFrame],
) -> AppleCrashReport:
    if not any(k in meta for k in _KNOWN_KEYS) or not (threads or images):
        raise MalformedCrashReport(
            "not an Apple crash report: expected header lines such as 'Exception Type:' "
            "and 'Thread N:' sections or 'Binary Images:'"
        )
    crashed_text = meta.get("Crashed Thread") or meta.get("Triggered by Thread") or ""
    crashed_digits = crashed_text.split()[0] if crashed_text.split() else ""
    crashed_thread = int(crashed_digits) if crashed_digits.isdigit() and len(crashed_digits) < 10 else None
    if crashed_thread is None:
        crashed_thread = next((t.id for t in threads if t.crashed), None)
    finder = ImageFinder(images)

    def frames(raw: list[_RawFrame]) -> tuple[AppleFrame, ...]:
        return tuple(AppleFrame(a, finder.find(a), mod, sym, off, fn, ln) for a, mod, sym, off, fn, ln in raw)

    out_threads = []
    for t in threads:
        name, queue = names.get(t.id, (t.name, t.queue))
        crashed = t.crashed or t.id == crashed_thread
        regs = registers.get(t.id) or (registers.get(-1, {}) if crashed else {})
        out_threads.append(AppleThread(t.id, name, queue, crashed, dict(regs), frames(t.frames)))
    os_name, os_version, os_build = parse_os_version(meta.get("OS Version"))
    arch = code_type_arch(meta.get("Code Type"))
    if arch is Arch.UNKNOWN:
        arch = next((Arch.parse(i.arch) for i in images if Arch.parse(i.arch) is not Arch.UNKNOWN), Arch.UNKNOWN)
    exc_type = meta.get("Exception Type") or None
    subtype = meta.get("Exception Subtype") or None
    codes = meta.get("Exception Codes") or None
    asi_text = "\n".join(asi) or None
    process = meta.get("Process", "").split("[", 1)[0].strip() or None
    return AppleCrashReport(
        format="crash",
        threads=tuple(out_threads),
        binary_images=tuple(images),
        system_info=SystemInfo(os_name, os_version, os_build, arch, meta.get("Hardware Model", "")),
        crash_reason=exc_type,
        crash_details=asi_text or meta.get("Exception Message") or subtype or codes,
        exception_type=exc_type,
        exception_subtype=subtype,
        exception_codes=codes,
        signal=signal_number(exc_type) or signal_number(meta.get("Termination Signal")),
        crashed_thread=crashed_thread,
        timestamp=parse_timestamp(meta.get("Date/Time")),
        incident_identifier=meta.get("Incident Identifier") or None,
        process_name=process,
        application_specific_information=asi_text,
        last_exception_backtrace=frames(last_exception),
    )
