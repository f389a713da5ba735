"""Reading a minidump: the header, the stream directory and every stream a walker or a report
needs, into frozen value objects.

Streams read (Breakpad's `minidump_format.h` numbering): ThreadList (3), ModuleList (4),
MemoryList (5), Exception (6), SystemInfo (7), Memory64List (9), MiscInfo (15), ThreadNames (24),
Crashpad's CrashpadInfo (0x43500001), and Breakpad's Linux streams LinuxCpuInfo, ProcStatus,
LsbRelease, CmdLine, Environ, Auxv, Maps, DsoDebug (0x4767000x). Unknown streams are skipped.

Bounded work on hostile input: every record is checked against the file before it is read
(`MalformedMinidump` names the stream and offset), lists are capped (`MAX_*`), strings are
capped, and nothing is proportional to anything but the file's size. The Environ stream is
never decoded (see `linux.py`).
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field

from symbolicator.errors import MalformedMinidump
from symbolicator.native.minidump import linux, windows
from symbolicator.native.minidump.context import read_context
from symbolicator.native.minidump.memory import MemoryMap
from symbolicator.types import Arch, CodeId, DebugId

MDMP = 0x504D444D
MAX_STREAMS = 4096
MAX_THREADS = 16384
MAX_MODULES = 16384
MAX_MEMORY_REGIONS = 1 << 20
MAX_STRING_BYTES = 1 << 16
MAX_TEXT_STREAM_BYTES = 16 << 20

THREAD_LIST, MODULE_LIST, MEMORY_LIST, EXCEPTION, SYSTEM_INFO = 3, 4, 5, 6, 7
MEMORY64_LIST, MISC_INFO, THREAD_NAMES = 9, 15, 24
CRASHPAD_INFO = 0x43500001
LINUX_CPU_INFO, LINUX_PROC_STATUS, LINUX_LSB_RELEASE = 0x47670003, 0x47670004, 0x47670005
LINUX_CMD_LINE, LINUX_ENVIRON, LINUX_AUXV, LINUX_MAPS, LINUX_DSO_DEBUG = (
    0x47670006, 0x47670007, 0x47670008, 0x47670009, 0x4767000A)

_CPU = {0: Arch.X86, 5: Arch.ARM, 9: Arch.X86_64, 12: Arch.ARM64, 0x8003: Arch.ARM64}
_OS = {0: "Windows", 1: "Windows", 2: "Windows", 0x8000: "Unix", 0x8101: "macOS", 0x8102: "iOS",
       0x8201: "Linux", 0x8202: "Solaris", 0x8203: "Android", 0x8204: "PS3", 0x8205: "NaCl",
       0x8206: "Fuchsia"}
_CV_ELF, _CV_PDB70 = 0x4270454C, 0x53445352  # bytes "LEpB" (Breakpad's BpEL), "RSDS"


@dataclass(frozen=True, slots=True)
class SystemInfo:
    """`os_version` is major.minor.build; `os_build` the CSD string (kernel build on Linux)."""

    os_name: str
    os_version: str
    os_build: str
    cpu_arch: Arch
    cpu_count: int


@dataclass(frozen=True, slots=True)
class Thread:
    """One thread: `registers` of its context; `stack_start` / `stack_size` the captured stack."""

    thread_id: int
    name: str | None
    registers: dict[str, int]
    stack_start: int
    stack_size: int


@dataclass(frozen=True, slots=True)
class Module:
    """A loaded image: [base, base + size). `debug_id` / `code_id` from its CodeView record."""

    base: int
    size: int
    code_file: str
    debug_file: str
    debug_id: DebugId | None
    code_id: CodeId | None


@dataclass(frozen=True, slots=True)
class Exception_:
    """The crash: `code` is the signal on Linux, `flags` the si_code, `address` the fault address;
    `registers` the context at the fault (the crashing thread's real context)."""

    thread_id: int
    code: int
    flags: int
    address: int
    registers: dict[str, int]
    parameters: tuple[int, ...] = ()
    """ExceptionInformation (Windows: an access violation's kind and address)."""


@dataclass(frozen=True, slots=True)
class Minidump:
    """A parsed dump. `timestamp` is Unix seconds; `environ_bytes` only counts the Environ stream."""

    timestamp: int
    system_info: SystemInfo | None
    threads: tuple[Thread, ...]
    modules: tuple[Module, ...]
    exception: Exception_ | None
    memory: MemoryMap
    process_id: int | None = None
    crashpad_report_id: str | None = None
    linux_maps: tuple[linux.MapsEntry, ...] = ()
    linux_status: dict[str, str] = field(default_factory=dict)
    linux_cmdline: tuple[str, ...] = ()
    environ_bytes: int = 0
    stream_types: tuple[int, ...] = ()

    @property
    def arch(self) -> Arch:
        return self.system_info.cpu_arch if self.system_info else Arch.UNKNOWN

    @property
    def crash_address(self) -> int | None:
        """The address the crash is about (on Windows the one an access violation touched)."""
        if self.exception is None:
            return None
        if self.system_info is not None and self.system_info.os_name == "Windows":
            return windows.crash_address(self.exception.code, self.exception.address, self.exception.parameters)
        return self.exception.address

    def is_requesting(self, thread: Thread) -> bool:
        """Whether `thread` is the one the exception stream names (the crashed one)."""
        return self.exception is not None and thread.thread_id == self.exception.thread_id

    def start_context(self, thread: Thread) -> tuple[dict[str, int], bytes]:
        """Where a walk of `thread` starts: its registers (the crashed thread's context at the fault,
        when the exception stream has one) and its captured stack memory."""
        exc = self.exception
        registers = exc.registers if exc is not None and exc.registers and self.is_requesting(thread) \
            else thread.registers
        return registers, self.memory.read(thread.stack_start, thread.stack_size) or b""

    @property
    def crash_reason(self) -> str | None:
        if self.exception is None:
            return None
        if self.system_info is not None and self.system_info.os_name == "Windows":
            return windows.crash_reason(self.exception.code, self.exception.parameters)
        return linux.crash_reason(self.exception.code, self.exception.flags)


class _Cursor:
    """Bounds-checked reads from the dump."""

    def __init__(self, data: memoryview) -> None:
        self.data = data

    def unpack(self, fmt: str, offset: int, what: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        if offset < 0 or offset + size > len(self.data):
            raise MalformedMinidump(f"{what} at offset {offset} runs past the end of the file ({len(self.data)} bytes)")
        return struct.unpack_from(fmt, self.data, offset)

    def slice(self, offset: int, size: int, what: str) -> memoryview:
        if offset < 0 or size < 0 or offset + size > len(self.data):
            raise MalformedMinidump(f"{what} ({size} bytes at offset {offset}) runs past the end of the file")
        return self.data[offset:offset + size]

    def string(self, rva: int, what: str) -> str:
        """A MINIDUMP_STRING: u32 byte length, then UTF-16LE."""
        (length,) = self.unpack("<I", rva, what)
        raw = self.slice(rva + 4, min(length, MAX_STRING_BYTES) & ~1, what)
        return bytes(raw).decode("utf-16-le", errors="replace")

    def count(self, fmt: str, offset: int, limit: int, entry: int, stream_size: int, what: str) -> int:
        (n,) = self.unpack(fmt, offset, what)
        if n > limit:
            raise MalformedMinidump(f"{what} claims {n} entries (at most {limit} are read)")
        if n * entry > stream_size:
            raise MalformedMinidump(f"{what} claims {n} entries of {entry} bytes in a {stream_size}-byte stream")
        return int(n)


def parse_minidump(data: bytes | memoryview) -> Minidump:
    """The whole dump; `MalformedMinidump` on anything that is not a readable minidump."""
    try:
        return _parse(memoryview(data))
    except MalformedMinidump as exc:
        if "minidump" in str(exc):
            raise
        raise MalformedMinidump(f"broken minidump: {exc}") from None


def _parse(view: memoryview) -> Minidump:
    c = _Cursor(view)
    if len(view) < 32:
        raise MalformedMinidump(f"not a minidump: {len(view)} bytes, a header alone has 32")
    signature, version, n_streams, dir_rva, _checksum, timestamp = c.unpack("<6I", 0, "the header")
    if signature != MDMP:
        hint = " (it starts with `--`: a multipart body inside the field?)" if bytes(view[:2]) == b"--" else ""
        raise MalformedMinidump(f"not a minidump: no MDMP signature{hint}")
    if version & 0xFFFF != 0xA793:
        raise MalformedMinidump(f"unknown minidump version {version & 0xFFFF:#x}")
    if n_streams > MAX_STREAMS:
        raise MalformedMinidump(f"the header claims {n_streams} streams (at most {MAX_STREAMS} are read)")
    streams: dict[int, tuple[int, int]] = {}
    for i in range(n_streams):
        kind, size, rva = c.unpack("<3I", dir_rva + 12 * i, "the stream directory")
        if kind == 0:
            continue  # unused entry
        c.slice(rva, size, f"stream {kind:#x}")
        streams.setdefault(kind, (rva, size))

    system_info = _system_info(c, streams)
    arch = system_info.cpu_arch if system_info else Arch.UNKNOWN
    names = _thread_names(c, streams)
    threads = _threads(c, streams, arch, names)
    regions = [(t.stack_start, t.stack_size, o) for t, o in threads]
    regions += _memory_lists(c, streams)
    status = _text(c, streams, LINUX_PROC_STATUS)
    cmdline = _text(c, streams, LINUX_CMD_LINE)
    maps = _text(c, streams, LINUX_MAPS)
    return Minidump(
        timestamp=timestamp,
        system_info=system_info,
        threads=tuple(t for t, _ in threads),
        modules=_modules(c, streams, system_info is not None and system_info.os_name == "Windows"),
        exception=_exception(c, streams, arch),
        memory=MemoryMap(view, regions),
        process_id=_process_id(c, streams),
        crashpad_report_id=_crashpad_report_id(c, streams),
        linux_maps=linux.parse_maps(maps, MAX_MODULES * 8) if maps else (),
        linux_status=linux.parse_status(status) if status else {},
        linux_cmdline=tuple(a for a in cmdline.split("\0") if a) if cmdline else (),
        environ_bytes=streams.get(LINUX_ENVIRON, (0, 0))[1],
        stream_types=tuple(streams),
    )


def _system_info(c: _Cursor, streams: dict[int, tuple[int, int]]) -> SystemInfo | None:
    if SYSTEM_INFO not in streams:
        return None
    rva, size = streams[SYSTEM_INFO]
    if size < 32:
        raise MalformedMinidump(f"the SystemInfo stream has {size} bytes, expected 56")
    cpu, _level, _rev, n_cpus, _product, major, minor, build, platform, csd_rva = c.unpack(
        "<3HBB5I", rva, "the SystemInfo stream")
    csd = c.string(csd_rva, "the CSD version string").strip() if csd_rva else ""
    os_name = _OS.get(platform, f"{platform:#x}")
    version = f"{major}.{minor}.{build}"
    parts = csd.split()
    if os_name == "Linux" and (major, minor, build) == (0, 0, 0) and len(parts) >= 2 and parts[0] == "Linux":
        # Breakpad's client writes `uname -srvm` here and no numbers: the release is the version,
        # the kernel's build string (without the machine) the build, as rust-minidump reads it.
        version, csd = parts[1], " ".join(parts[2:-1])
    return SystemInfo(os_name, version, csd, _CPU.get(cpu, Arch.UNKNOWN), n_cpus)


def _thread_names(c: _Cursor, streams: dict[int, tuple[int, int]]) -> dict[int, str]:
    if THREAD_NAMES not in streams:
        return {}
    rva, size = streams[THREAD_NAMES]
    n = c.count("<I", rva, MAX_THREADS, 12, size, "the ThreadNames stream")
    names = {}
    for i in range(n):
        tid, name_rva = c.unpack("<IQ", rva + 4 + 12 * i, "a thread name")
        names[tid] = c.string(name_rva, "a thread name")
    return names


def _threads(c: _Cursor, streams: dict[int, tuple[int, int]], arch: Arch,
             names: dict[int, str]) -> list[tuple[Thread, int]]:
    if THREAD_LIST not in streams:
        return []
    rva, size = streams[THREAD_LIST]
    n = c.count("<I", rva, MAX_THREADS, 48, size, "the ThreadList stream")
    # Some writers pad the count to 8 bytes: accept it when the size says so.
    base = rva + 8 if size == 8 + 48 * n else rva + 4
    out = []
    for i in range(n):
        tid, _s, _pc, _p, _teb, stack_start, stack_size, stack_rva, ctx_size, ctx_rva = c.unpack(
            "<4IQQ2I2I", base + 48 * i, "a thread")
        ctx = c.slice(ctx_rva, ctx_size, f"the context of thread {tid}")
        c.slice(stack_rva, stack_size, f"the stack of thread {tid}")
        out.append((Thread(tid, names.get(tid) or None, read_context(ctx, arch), stack_start, stack_size),
                    stack_rva))
    return out


def _memory_lists(c: _Cursor, streams: dict[int, tuple[int, int]]) -> list[tuple[int, int, int]]:
    regions: list[tuple[int, int, int]] = []
    if MEMORY_LIST in streams:
        rva, size = streams[MEMORY_LIST]
        n = c.count("<I", rva, MAX_MEMORY_REGIONS, 16, size, "the MemoryList stream")
        base = rva + 8 if size == 8 + 16 * n else rva + 4
        for i in range(n):
            start, length, at = c.unpack("<Q2I", base + 16 * i, "a memory descriptor")
            regions.append((start, length, at))
    if MEMORY64_LIST in streams:
        rva, size = streams[MEMORY64_LIST]
        n = c.count("<Q", rva, MAX_MEMORY_REGIONS, 16, size, "the Memory64List stream")
        (at,) = c.unpack("<Q", rva + 8, "the Memory64List stream")
        for i in range(n):
            start, length = c.unpack("<2Q", rva + 16 + 16 * i, "a memory64 descriptor")
            regions.append((start, length, at))
            at += length
    return regions


def _code_view(c: _Cursor, rva: int, size: int) -> tuple[DebugId | None, CodeId | None, str]:
    if size < 4:
        return None, None, ""
    cv = c.slice(rva, size, "a CodeView record")
    (sig,) = struct.unpack_from("<I", cv, 0)
    if sig == _CV_ELF:
        build_id = bytes(cv[4:])[:64]
        if not build_id:
            return None, None, ""
        return DebugId.from_elf_build_id(build_id), CodeId.from_bytes(build_id), ""
    if sig == _CV_PDB70 and size >= 24:
        guid, age = bytes(cv[4:20]), struct.unpack_from("<I", cv, 20)[0]
        name = bytes(cv[24:]).split(b"\0", 1)[0].decode("utf-8", errors="replace")[:MAX_STRING_BYTES]
        return DebugId(uuid.UUID(bytes_le=guid), age), None, name
    return None, None, ""


def _modules(c: _Cursor, streams: dict[int, tuple[int, int]], windows: bool) -> tuple[Module, ...]:
    """On Windows a module's code id is its PE TimeDateStamp + SizeOfImage (as rust-minidump and
    Symbolicator form it, `native/pe/headers.py`), whatever its CodeView record holds."""
    if MODULE_LIST not in streams:
        return ()
    rva, size = streams[MODULE_LIST]
    n = c.count("<I", rva, MAX_MODULES, 108, size, "the ModuleList stream")
    base = rva + 8 if size == 8 + 108 * n else rva + 4
    out = []
    for i in range(n):
        at = base + 108 * i
        image_base, image_size, _cs, timestamp, name_rva = c.unpack("<QIIII", at, "a module")
        cv_size, cv_rva = c.unpack("<2I", at + 76, "a module")
        name = c.string(name_rva, "a module name")
        debug_id, code_id, debug_file = _code_view(c, cv_rva, cv_size)
        if windows and code_id is None:
            code_id = CodeId(f"{timestamp:08X}{image_size:x}".lower())
        out.append(Module(image_base, image_size, name, debug_file or name, debug_id, code_id))
    return tuple(out)


def _exception(c: _Cursor, streams: dict[int, tuple[int, int]], arch: Arch) -> Exception_ | None:
    if EXCEPTION not in streams:
        return None
    rva, size = streams[EXCEPTION]
    if size < 168:
        raise MalformedMinidump(f"the Exception stream has {size} bytes, expected 168")
    tid, _align, code, flags, _record, address, n_params = c.unpack("<4IQQI", rva, "the Exception stream")
    parameters = c.unpack("<15Q", rva + 40, "the Exception stream")[:min(n_params, 15)]
    ctx_size, ctx_rva = c.unpack("<2I", rva + 160, "the Exception stream")
    registers = read_context(c.slice(ctx_rva, ctx_size, "the exception context"), arch) if ctx_size else {}
    return Exception_(tid, code, flags, address, registers, parameters)


def _process_id(c: _Cursor, streams: dict[int, tuple[int, int]]) -> int | None:
    if MISC_INFO not in streams:
        return None
    rva, size = streams[MISC_INFO]
    if size < 12:
        return None
    _size, flags, pid = c.unpack("<3I", rva, "the MiscInfo stream")
    return pid if flags & 1 else None


def _crashpad_report_id(c: _Cursor, streams: dict[int, tuple[int, int]]) -> str | None:
    if CRASHPAD_INFO not in streams:
        return None
    rva, size = streams[CRASHPAD_INFO]
    if size < 20:
        return None
    return str(uuid.UUID(bytes_le=bytes(c.slice(rva + 4, 16, "the CrashpadInfo stream"))))


def _text(c: _Cursor, streams: dict[int, tuple[int, int]], kind: int) -> str:
    if kind not in streams:
        return ""
    rva, size = streams[kind]
    return bytes(c.slice(rva, min(size, MAX_TEXT_STREAM_BYTES), f"stream {kind:#x}")).decode("utf-8", "replace")
