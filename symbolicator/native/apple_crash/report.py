"""An Apple crash report in, the `/symbolicate` request it stands for out (and the fields the answer adds).

The two parsers (`text.py`, `ips.py`) share only the model (`model.py`); choosing between them
and turning a parsed report into Symbolicator's request shape is here, so no module of the
package imports one that imports it back.
"""

from __future__ import annotations

from typing import Any

from symbolicator.native.apple_crash.ips import parse_ips
from symbolicator.native.apple_crash.model import AppleCrashReport, AppleFrame, BinaryImage, MalformedCrashReport
from symbolicator.native.apple_crash.text import parse_crash_text


def parse_apple_crash_report(data: bytes | str) -> AppleCrashReport:
    """Parse `.crash` text or `.ips` JSON; anything else raises `MalformedCrashReport`."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    text = text.lstrip("\ufeff \t\r\n")
    if not text:
        raise MalformedCrashReport("empty crash report")
    if text.startswith("{"):
        return parse_ips(text)
    return parse_crash_text(text)


def _frame_json(frame: AppleFrame) -> dict[str, Any]:
    out: dict[str, Any] = {"instruction_addr": f"0x{frame.instruction_addr:x}"}
    if frame.module:
        out["package"] = frame.module
    if frame.symbol:
        out["symbol"] = frame.symbol
        if frame.symbol_offset is not None and frame.symbol_offset <= frame.instruction_addr:
            out["sym_addr"] = f"0x{frame.instruction_addr - frame.symbol_offset:x}"
    return out


def _module_json(image: BinaryImage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "macho",
        "code_id": str(image.code_id),
        "code_file": image.path or image.name,
        "debug_id": str(image.debug_id),
        "debug_file": image.path or image.name,
        "image_addr": f"0x{image.image_addr:x}",
    }
    if image.image_size:
        out["image_size"] = image.image_size
    return out


def to_symbolicate_request(report: AppleCrashReport, *, platform: str | None = None) -> dict[str, Any]:
    """The `/symbolicate` body (docs/api.md) for this report, without `sources`/`options`,
    which are the caller's. No `signal`: Symbolicator sends none for Apple reports."""
    stacktraces = []
    for thread in report.threads:
        st: dict[str, Any] = {"thread_id": thread.id}
        name = thread.name or thread.dispatch_queue
        if name:
            st["thread_name"] = name
        st["is_requesting"] = thread.crashed
        st["registers"] = {k: f"0x{v:x}" for k, v in thread.registers.items()}
        st["frames"] = [_frame_json(f) for f in thread.frames]
        stacktraces.append(st)
    body: dict[str, Any] = {"stacktraces": stacktraces, "modules": [_module_json(i) for i in report.binary_images]}
    if platform is not None:
        body["platform"] = platform
    return body


def response_fields(report: AppleCrashReport) -> dict[str, Any]:
    """What Symbolicator adds to the native response for an Apple report."""
    out: dict[str, Any] = {"system_info": report.system_info.to_json(), "crashed": True}
    if report.timestamp is not None:
        out["timestamp"] = report.timestamp
    if report.crash_reason is not None:
        out["crash_reason"] = report.crash_reason
    if report.crash_details is not None:
        out["crash_details"] = report.crash_details
    return out
