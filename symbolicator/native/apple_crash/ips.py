"""The modern `.ips` format (Apple's "Interpreting the JSON format of a crash report").

Two JSON documents: the first line is a small header object (`bug_type`,
`os_version`, `timestamp`, `incident_id`, ...), the rest of the file is the body
(`usedImages`, `threads`, `exception`, `faultingThread`, `osVersion`,
`modelCode`, `cpuType`, `procName`, `captureTime`, `asi`, `lastExceptionBacktrace`).
A frame is `imageIndex` + `imageOffset`, so its address is the image's `base`
plus the offset. Thread numbers are positions in `threads`, as Apple's own text
rendering prints them (`Thread 0 Crashed`), not the Mach thread `id`.

Before iOS 15, `.ips` files (bug_type 109) were the JSON header followed by the
legacy text report; those go to the text parser. Every structural problem names
the JSON path that holds it (`threads[2].frames[5].imageIndex: ...`).
"""

from __future__ import annotations

from typing import Any

import orjson

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
from symbolicator.native.apple_crash.text import parse_crash_text
from symbolicator.types import Arch

_U64 = 2**64


def _loads(text: str, what: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        at_end = e.pos >= len(text.rstrip()) - 1
        reason = "truncated" if at_end else f"invalid at byte {e.pos}: {e.msg}"
        raise MalformedCrashReport(f"{what} is not valid JSON ({reason})") from None


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedCrashReport(f"{path}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedCrashReport(f"{path}: expected a list, got {type(value).__name__}")
    return value


def _uint(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _U64:
        raise MalformedCrashReport(f"{path}: expected an unsigned 64-bit integer, got {str(value)[:40]!r}")
    return value


def _text(value: Any) -> str | None:
    """Descriptive fields (names, exception, OS): a wrong type loses the field, not the report."""
    return value if isinstance(value, str) else None


def _dict_or_empty(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedCrashReport(f"{path}: expected a string, got {type(value).__name__}")
    return value


def parse_ips(text: str) -> AppleCrashReport:
    """Parse a `.ips` report (header line + body), or the body alone."""
    first, _, rest = text.partition("\n")
    header: dict[str, Any] = {}
    body_text = rest
    try:
        parsed_first = orjson.loads(first)
    except orjson.JSONDecodeError:
        parsed_first = None
    if isinstance(parsed_first, dict):
        header = parsed_first
        if "threads" in header and "usedImages" in header and not rest.strip():
            header, body_text = {}, first
    else:
        body_text = text
    if not body_text.strip():
        raise MalformedCrashReport(".ips is truncated: nothing follows the header line")
    if not body_text.lstrip().startswith("{"):
        if str(header.get("bug_type", "")) in ("", "109") and header:
            return parse_crash_text(body_text)
        raise MalformedCrashReport(".ips body is not JSON (expected an object after the header line)")
    body = _obj(_loads(body_text, ".ips body"), ".ips body")
    return _build(header, body)


def _images(body: dict[str, Any]) -> tuple[list[BinaryImage], list[int | None]]:
    """Images with a real UUID, and for each `usedImages` index its position among them."""
    images: list[BinaryImage] = []
    positions: list[int | None] = []
    for i, raw in enumerate(_list(body.get("usedImages", []), "usedImages")):
        path = f"usedImages[{i}]"
        img = _obj(raw, path)
        base = _uint(img.get("base", 0), f"{path}.base")
        size = _uint(img.get("size", 0), f"{path}.size")
        uuid_text = _str(img.get("uuid"), f"{path}.uuid")
        file_path = _str(img.get("path"), f"{path}.path") or ""
        name = _str(img.get("name"), f"{path}.name") or file_path.rpartition("/")[2]
        image = None
        if uuid_text is not None:
            image = image_from_uuid(
                uuid_text,
                image_addr=base,
                image_size=size,
                arch=_str(img.get("arch"), f"{path}.arch") or "",
                name=name,
                path=file_path,
                version=None,
                where=path,
            )
        positions.append(len(images) if image else None)
        if image:
            images.append(image)
    return images, positions


def _frames(raw: Any, path: str, body: dict[str, Any], images: list[BinaryImage],
            positions: list[int | None], finder: ImageFinder) -> tuple[AppleFrame, ...]:  # fmt: skip
    used = body.get("usedImages", [])
    out = []
    for j, raw_frame in enumerate(_list(raw, path)):
        fp = f"{path}[{j}]"
        frame = _obj(raw_frame, fp)
        index = _uint(frame.get("imageIndex"), f"{fp}.imageIndex")
        offset = _uint(frame.get("imageOffset"), f"{fp}.imageOffset")
        if index >= len(used):
            raise MalformedCrashReport(f"{fp}.imageIndex: {index} is out of range ({len(used)} images)")
        addr = (_uint(used[index].get("base", 0), f"usedImages[{index}].base") + offset) % _U64
        pos = positions[index]
        module = (images[pos].name if pos is not None
                  else _str(used[index].get("name"), f"usedImages[{index}].name") or None)
        symbol = _text(frame.get("symbol"))
        location = frame.get("symbolLocation")
        line = frame.get("sourceLine")
        out.append(
            AppleFrame(
                instruction_addr=addr,
                image_index=pos if pos is not None else finder.find(addr),
                module=module,
                symbol=symbol or None,
                symbol_offset=_uint(location, f"{fp}.symbolLocation") if symbol and location is not None else None,
                filename=_text(frame.get("sourceFile")),
                lineno=_uint(line, f"{fp}.sourceLine") if line is not None else None,
            )
        )
    return tuple(out)


def _registers(state: Any, path: str) -> dict[str, int]:
    """`{"x": [{"value": …}, …], "pc": {"value": …}, "flavor": …}` → {x0…, pc}."""
    regs: dict[str, int] = {}
    for name, value in _obj(state, path).items():
        if isinstance(value, list):
            for k, item in enumerate(value):
                if isinstance(item, dict) and "value" in item:
                    regs[f"{name}{k}"] = _uint(item["value"], f"{path}.{name}[{k}].value")
        elif isinstance(value, dict) and "value" in value:
            regs[name] = _uint(value["value"], f"{path}.{name}.value")
    return regs


def _build(header: dict[str, Any], body: dict[str, Any]) -> AppleCrashReport:
    if "threads" not in body:
        bug = header.get("bug_type")
        raise MalformedCrashReport(f".ips body has no 'threads': not a crash report (bug_type {bug!r})")
    images, positions = _images(body)
    finder = ImageFinder(images)
    faulting = body.get("faultingThread")
    faulting = _uint(faulting, "faultingThread") if faulting is not None else None
    threads = []
    for i, raw in enumerate(_list(body["threads"], "threads")):
        path = f"threads[{i}]"
        t = _obj(raw, path)
        crashed = t.get("triggered") is True or i == faulting
        state = t.get("threadState")
        threads.append(
            AppleThread(
                id=i,
                name=_text(t.get("name")) or None,
                dispatch_queue=_text(t.get("queue")) or None,
                crashed=crashed,
                registers=_registers(state, f"{path}.threadState") if state is not None else {},
                frames=_frames(t.get("frames", []), f"{path}.frames", body, images, positions, finder),
            )
        )
    if faulting is None:
        faulting = next((t.id for t in threads if t.crashed), None)
    exc = _dict_or_empty(body.get("exception"))
    exc_type = _text(exc.get("type"))
    exc_signal = _text(exc.get("signal"))
    reason = f"{exc_type} ({exc_signal})" if exc_type and exc_signal else exc_type or exc_signal
    subtype = _text(exc.get("subtype"))
    codes = _text(exc.get("codes"))
    asi_lines = []
    for owner, lines in _dict_or_empty(body.get("asi")).items():
        for line in lines if isinstance(lines, list) else [lines]:
            if isinstance(line, str):
                asi_lines.append(f"{owner}: {line}")
    asi = "\n".join(asi_lines) or None
    os_obj = body.get("osVersion")
    if isinstance(os_obj, dict):
        train, build = _text(os_obj.get("train")), _text(os_obj.get("build"))
        os_text = f"{train} ({build})" if train and build else train
    else:
        os_text = _text(header.get("os_version"))
    os_name, os_version, os_build = parse_os_version(os_text)
    arch = code_type_arch(_text(body.get("cpuType")))
    if arch is Arch.UNKNOWN:
        arch = next((Arch.parse(i.arch) for i in images if Arch.parse(i.arch) is not Arch.UNKNOWN), Arch.UNKNOWN)
    when = _text(body.get("captureTime")) or _text(header.get("timestamp"))
    leb = body.get("lastExceptionBacktrace")
    return AppleCrashReport(
        format="ips",
        threads=tuple(threads),
        binary_images=tuple(images),
        system_info=SystemInfo(os_name, os_version, os_build, arch, _text(body.get("modelCode")) or ""),
        crash_reason=reason or None,
        crash_details=asi or _text(exc.get("message")) or subtype or codes,
        exception_type=exc_type,
        exception_subtype=subtype,
        exception_codes=codes,
        signal=signal_number(exc_signal) or signal_number(exc_type),
        crashed_thread=faulting,
        timestamp=parse_timestamp(when),
        incident_identifier=_text(body.get("incident") or header.get("incident_id")),
        process_name=_text(body.get("procName") or header.get("name") or header.get("app_name")),
        application_specific_information=asi,
        last_exception_backtrace=(
            _frames(leb, "lastExceptionBacktrace", body, images, positions, finder) if leb is not None else ()
        ),
    )
