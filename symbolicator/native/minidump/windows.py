"""Windows exception codes as rust-minidump (and so Symbolicator) names them in `crash_reason`.

A Windows dump's Exception stream holds an NTSTATUS code and up to 15 parameters; for an access
violation or an in-page error the first parameter says what the faulting access was (read,
write, execute) and the second which address it touched. Codes not in the table print as hex,
as rust-minidump prints codes it does not know.
"""

from __future__ import annotations

from collections.abc import Sequence

ACCESS_VIOLATION, IN_PAGE_ERROR = 0xC0000005, 0xC0000006
_ACCESS = {0: "READ", 1: "WRITE", 8: "EXEC"}
_NAMES = {
    0x80000001: "EXCEPTION_GUARD_PAGE",
    0x80000002: "EXCEPTION_DATATYPE_MISALIGNMENT",
    0x80000003: "EXCEPTION_BREAKPOINT",
    0x80000004: "EXCEPTION_SINGLE_STEP",
    0xC000001D: "EXCEPTION_ILLEGAL_INSTRUCTION",
    0xC0000025: "EXCEPTION_NONCONTINUABLE_EXCEPTION",
    0xC0000026: "EXCEPTION_INVALID_DISPOSITION",
    0xC000008C: "EXCEPTION_ARRAY_BOUNDS_EXCEEDED",
    0xC000008D: "EXCEPTION_FLT_DENORMAL_OPERAND",
    0xC000008E: "EXCEPTION_FLT_DIVIDE_BY_ZERO",
    0xC000008F: "EXCEPTION_FLT_INEXACT_RESULT",
    0xC0000090: "EXCEPTION_FLT_INVALID_OPERATION",
    0xC0000091: "EXCEPTION_FLT_OVERFLOW",
    0xC0000092: "EXCEPTION_FLT_STACK_CHECK",
    0xC0000093: "EXCEPTION_FLT_UNDERFLOW",
    0xC0000094: "EXCEPTION_INT_DIVIDE_BY_ZERO",
    0xC0000095: "EXCEPTION_INT_OVERFLOW",
    0xC0000096: "EXCEPTION_PRIV_INSTRUCTION",
    0xC00000FD: "EXCEPTION_STACK_OVERFLOW",
    0xC0000194: "EXCEPTION_POSSIBLE_DEADLOCK",
    0xC0000374: "STATUS_HEAP_CORRUPTION",
    0xC0000409: "EXCEPTION_STACK_BUFFER_OVERRUN",
    0xE06D7363: "EXCEPTION_CXX_EXCEPTION",  # MSVC's `throw` ("msc")
}


def crash_reason(code: int, parameters: Sequence[int]) -> str:
    """`EXCEPTION_ACCESS_VIOLATION_WRITE` from the code and the first parameter."""
    if code in (ACCESS_VIOLATION, IN_PAGE_ERROR):
        base = "EXCEPTION_ACCESS_VIOLATION" if code == ACCESS_VIOLATION else "EXCEPTION_IN_PAGE_ERROR"
        kind = _ACCESS.get(parameters[0]) if parameters else None
        return f"{base}_{kind}" if kind else base
    return _NAMES.get(code, f"{code:#010x}")


def crash_address(code: int, address: int, parameters: Sequence[int]) -> int:
    """The address a crash is about: the one an access touched, else where the exception was raised."""
    if code in (ACCESS_VIOLATION, IN_PAGE_ERROR) and len(parameters) >= 2:
        return parameters[1]
    return address
