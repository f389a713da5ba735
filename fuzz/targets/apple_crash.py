"""`apple_crash`: an uploaded crash report through everything `/applecrashreport` does with it.

An input is the report's bytes: `parse_apple_crash_report` (legacy `.crash` text, modern
`.ips` JSON, legacy `.ips` = JSON header + text), `to_symbolicate_request`, the frame-count cap and the
`NativeRequest.from_json` the handler runs on that body, then native symbolication with
the report's registers (the caller-address heuristic trusts them) and the serialised
response with `response_fields`.

Hypothesis edits real text reports line by line (delete, duplicate, swap, cut, numbers
swapped for edge values, lines written from the grammar of each section), `.ips` bodies
node by node (and, less often, line by line or cut short); atheris mutates `.ips` JSON
structurally and text bytewise.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from fuzz.service_calls import symbolicate_native
from symbolicator.config import LimitsSettings
from symbolicator.native.apple_crash import parse_apple_crash_report, response_fields, to_symbolicate_request
from symbolicator.service.native import NativeRequest
from symbolicator.service.request_limits import check_frame_count

if TYPE_CHECKING:
    from hypothesis import strategies as st

_REPO = Path(__file__).resolve().parents[2]
_APPLE = _REPO / "tests" / "fixtures" / "apple"
LIMITS = LimitsSettings()
_NUMBER = re.compile(r"0x[0-9a-fA-F]+|\d+")
_TEMPLATES = (
    "{n}   {name}   \t0x{a:x} {name} + {b}",
    "{n}   {name}   \t0x{a:x} 0x{b:x} + {n}",
    "{n}   ???   \t0x{a:x} {name} + {b} ({name}.swift:{n})",
    "       0x{a:x} -        0x{b:x} {name} {arch}  <{uuid}> /usr/lib/{name}",
    "0x{a:x} - 0x{b:x} +{name} ({n}) <{uuid}> /{name}",
    "Thread {n} Crashed:: Dispatch queue: {name}",
    "Thread {n}:",
    "Thread {n} name:  {name}",
    "Thread {n} crashed with ARM Thread State (64-bit):",
    "    x0: 0x{a:x}   x1: 0x{b:x}   pc: 0x{a:x}   lr: 0x{b:x}",
    "Crashed Thread:  {n}",
    "Exception Type:  EXC_BAD_ACCESS ({name})",
    "Code Type:       {arch} (Native)",
    "OS Version:      iPhone OS {n}.{n} ({name})",
    "Date/Time:       {n}-{n}-{n} {n}:{n}:{n}.{n} +{n}",
    "Binary Images:",
    "Last Exception Backtrace:",
    "(0x{a:x} 0x{b:x} 0x{a:x})",
    "Application Specific Information:",
    "",
)


def run(data: bytes) -> None:
    report = parse_apple_crash_report(data)
    body = to_symbolicate_request(report, platform="cocoa")
    check_frame_count(body, LIMITS.max_frames_per_request)
    request = NativeRequest.from_json(body)
    orjson.dumps({**response_fields(report), **symbolicate_native(request)})


def seeds() -> dict[str, bytes]:
    """The fixture reports, and the macOS report of the parser's tests, bare and as a legacy `.ips`."""
    out = {p.name: p.read_bytes() for p in sorted(_APPLE.iterdir()) if p.suffix in (".crash", ".ips")}
    from tests.test_apple_crash import MACOS_X86

    out["macos-x86_64.crash"] = MACOS_X86.encode()
    out["macos-x86_64-legacy.ips"] = b'{"bug_type": "109", "os_version": "Mac OS X 10.14"}\n' + MACOS_X86.encode()
    return out


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """`.ips` bodies node by node (header line kept), everything else with libFuzzer's mutations."""
    from fuzz.json_mutate import mutate as mutate_json

    head, sep, body = data.partition(b"\n")
    if sep and head.startswith(b"{") and body.lstrip().startswith(b"{") and random.Random(seed).random() < 0.8:
        return head + sep + mutate_json(body, max(max_size - len(head) - 1, 1), seed)
    from fuzz.json_mutate import byte_mutate

    return byte_mutate(data, max_size)


def _json_body(report: bytes) -> bool:
    """Whether the report is a header line and a JSON body that parses (a modern `.ips`)."""
    try:
        return isinstance(json.loads(report.partition(b"\n")[2]), dict)
    except ValueError:
        return False


def _swap_numbers(line: str, value: int) -> str:
    """Every number of the line replaced by `value`, hex where it was hex."""
    return _NUMBER.sub(lambda m: hex(value) if m[0].startswith("0x") else str(value), line)


def _edit_lines(lines: list[str], ops: list[tuple[str, int, int, Any]]) -> list[str]:
    for kind, i, j, extra in ops:
        if not lines:
            lines.append("")
        i, j = i % len(lines), j % len(lines)
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "cut":
            lines[i] = lines[i][: j % (len(lines[i]) + 1)]
        elif kind == "numbers":
            lines[i] = _swap_numbers(lines[i], extra)
        elif kind == "insert":
            lines.insert(i, extra)
    return lines


def inputs() -> st.SearchStrategy[bytes]:
    from hypothesis import strategies as st

    from fuzz.edges import EDGE_INTS
    from fuzz.json_mutate import slots
    from fuzz.strategies import json_values, rarely, texts

    reports = seeds()
    big = st.one_of(st.sampled_from(EDGE_INTS).filter(lambda v: v >= 0), st.integers(0, 2**72), st.integers(0, 99))
    generated = st.builds(
        lambda template, n, a, b, name, arch, uuid: template.format(n=n, a=a, b=b, name=name, arch=arch, uuid=uuid),
        st.sampled_from(_TEMPLATES), st.one_of(st.integers(0, 40), big), big, big,
        st.text(alphabet="abcXYZ _.:()[]<>+-0x1", max_size=20),
        st.sampled_from(["arm64", "arm64e", "x86_64", "ARM-64", "X86-64", "", "ppc", "armv7k"]),
        st.one_of(st.uuids().map(lambda u: u.hex), st.just("0" * 32), texts()),
    )
    op = st.one_of(
        st.tuples(st.sampled_from(["delete", "duplicate", "swap", "cut"]), st.integers(0, 500), st.integers(0, 500),
                  st.none()),
        st.tuples(st.just("numbers"), st.integers(0, 500), st.just(0), big),
        st.tuples(st.just("insert"), st.integers(0, 500), st.just(0), generated),
    )

    def edit_text(choice: tuple[str, list[Any]]) -> bytes:
        text = reports[choice[0]].decode("utf-8", "replace")
        return "\n".join(_edit_lines(text.split("\n"), choice[1])).encode("utf-8", "surrogatepass")

    def edit_ips(choice: tuple[str, list[tuple[int, Any]]]) -> bytes:
        head, _, body = reports[choice[0]].decode("utf-8", "replace").partition("\n")
        try:
            doc = json.loads(body)
        except ValueError:
            return reports[choice[0]]
        for where, value in choice[1]:
            found = slots(doc)
            if not found:
                doc = value
                continue
            container, key = found[where % len(found)]
            container[key] = value
        return (head + "\n" + json.dumps(doc)).encode("utf-8", "surrogatepass")

    ips = sorted(n for n, d in reports.items() if d.startswith(b"{") and _json_body(d))
    text = sorted(set(reports) - set(ips))
    truncated = st.tuples(st.sampled_from(ips), st.integers(0, 10_000)).map(lambda c: reports[c[0]][:c[1]])
    return st.one_of(
        st.tuples(st.sampled_from(text), st.lists(op, min_size=1, max_size=8)).map(edit_text),
        st.tuples(st.sampled_from(ips), st.lists(st.tuples(st.integers(0, 10_000), json_values()), min_size=1,
                                                 max_size=4)).map(edit_ips),
        rarely(st.tuples(st.sampled_from(ips), st.lists(op, min_size=1, max_size=3)).map(edit_text), truncated),
    )

