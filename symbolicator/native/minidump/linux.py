"""Linux facts of a minidump: signal names as rust-minidump prints them, and the text streams
Breakpad's client and `core2md` add (/proc/<pid>/maps, status, cmdline, environ).

`crash_reason` follows rust-minidump's `CrashReason` display: `SIGSEGV / SEGV_MAPERR`, with the
generic si_code names (`SI_TKILL`, `SI_QUEUE`, ...) for signals sent by a process, and the bare
signal for si_code 0 (what `core2md` writes). The environ
stream is never decoded: only its size is kept, so environment variables cannot reach an answer
or a log (issue 14, item 5).
"""

from __future__ import annotations

from dataclasses import dataclass

SIGNALS = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
           8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
           14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP",
           20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
           26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS"}
_GENERIC_CODES = {0: "SI_USER", 0x80: "SI_KERNEL", -1: "SI_QUEUE", -2: "SI_TIMER", -3: "SI_MESGQ",
                  -4: "SI_ASYNCIO", -5: "SI_SIGIO", -6: "SI_TKILL"}
_FAULT_CODES = {
    "SIGSEGV": {1: "SEGV_MAPERR", 2: "SEGV_ACCERR", 3: "SEGV_BNDERR", 4: "SEGV_PKUERR"},
    "SIGFPE": {1: "FPE_INTDIV", 2: "FPE_INTOVF", 3: "FPE_FLTDIV", 4: "FPE_FLTOVF", 5: "FPE_FLTUND",
               6: "FPE_FLTRES", 7: "FPE_FLTINV", 8: "FPE_FLTSUB"},
    "SIGILL": {1: "ILL_ILLOPC", 2: "ILL_ILLOPN", 3: "ILL_ILLADR", 4: "ILL_ILLTRP", 5: "ILL_PRVOPC",
               6: "ILL_PRVREG", 7: "ILL_COPROC", 8: "ILL_BADSTK"},
    "SIGBUS": {1: "BUS_ADRALN", 2: "BUS_ADRERR", 3: "BUS_OBJERR", 4: "BUS_MCEERR_AR", 5: "BUS_MCEERR_AO"},
    "SIGTRAP": {1: "TRAP_BRKPT", 2: "TRAP_TRACE", 3: "TRAP_BRANCH", 4: "TRAP_HWBKPT"},
}
DUMP_REQUESTED = 0xFFFFFFFF  # Breakpad's MD_EXCEPTION_CODE_LIN_DUMP_REQUESTED


def crash_reason(code: int, flags: int) -> str:
    """`SIGSEGV / SEGV_MAPERR` from the exception code (signal) and flags (si_code)."""
    if code == DUMP_REQUESTED:
        return "DUMP_REQUESTED"
    name = SIGNALS.get(code)
    if name is None:
        return f"{code:#x}"
    si_code = flags - (1 << 32) if flags & 0x80000000 else flags
    if si_code == 0:
        return name  # rust-minidump prints no code for 0 (SI_USER, or a writer that left it empty)
    detail = _FAULT_CODES.get(name, {}).get(si_code) if si_code > 0 and si_code != 0x80 else None
    detail = detail or _GENERIC_CODES.get(si_code)
    return f"{name} / {detail}" if detail else name


@dataclass(frozen=True, slots=True)
class MapsEntry:
    """One /proc/<pid>/maps line: [start, end), `offset` into `path` (may be empty)."""

    start: int
    end: int
    perms: str
    offset: int
    path: str


def parse_maps(text: str, limit: int) -> tuple[MapsEntry, ...]:
    """The maps lines that parse, at most `limit` of them; others are skipped."""
    entries: list[MapsEntry] = []
    for line in text.splitlines():
        if len(entries) >= limit:
            break
        parts = line.split(None, 5)
        if len(parts) < 5 or "-" not in parts[0]:
            continue
        try:
            lo, hi = (int(x, 16) for x in parts[0].split("-", 1))
            entries.append(MapsEntry(lo, hi, parts[1], int(parts[2], 16), parts[5].strip() if len(parts) > 5 else ""))
        except ValueError:
            continue
    return tuple(entries)


def parse_status(text: str) -> dict[str, str]:
    """/proc/<pid>/status as `Key: value` pairs (Name, Pid, PPid, ...)."""
    out: dict[str, str] = {}
    for line in text.splitlines()[:256]:
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out
