"""Apple crash report parsing, against fixtures whose truth comes from the binaries.

`expected.json` is written by `fixtures/apple/make_reports.py` from `llvm-objdump`
/ `llvm-nm` output and the layout it chose, never from this parser; the inline
reports below carry their expectations beside them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolicator.errors import FormatError
from symbolicator.native.apple_crash import (
    AppleCrashReport,
    MalformedCrashReport,
    parse_apple_crash_report,
    response_fields,
    to_symbolicate_request,
)
from symbolicator.native.caller_addr import FrameAddr, lookup_addresses
from symbolicator.types import Arch
from symbolicator.web.errors import status_for

FIXTURES = Path(__file__).parent / "fixtures" / "apple"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "expected.json").read_text())
GOOD = ["app-arm64.crash", "app-arm64.ips"]


def load(name: str) -> AppleCrashReport:
    return parse_apple_crash_report((FIXTURES / name).read_bytes())


def dashed(uuid: str) -> str:
    u = uuid.replace("-", "").lower()
    return f"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}"


@pytest.fixture(params=GOOD)
def report(request: pytest.FixtureRequest) -> AppleCrashReport:
    return load(request.param)


class TestFixtures:
    def test_format(self) -> None:
        assert load("app-arm64.crash").format == "crash"
        assert load("app-arm64.ips").format == "ips"

    def test_binary_images(self, report: AppleCrashReport) -> None:
        got = {str(i.debug_id): i for i in report.binary_images}
        assert len(got) == len(EXPECTED["images"])
        for exp in EXPECTED["images"]:
            image = got[dashed(exp["uuid"])]
            assert str(image.code_id) == exp["uuid"].replace("-", "")
            assert (image.image_addr, image.image_size) == (exp["image_addr"], exp["image_size"])
            assert (image.name, image.path, image.arch) == (exp["name"], exp["path"], exp["arch"])

    def test_threads_and_crashed_flag(self, report: AppleCrashReport) -> None:
        assert [t.id for t in report.threads] == [t["id"] for t in EXPECTED["threads"]]
        for got, exp in zip(report.threads, EXPECTED["threads"]):
            assert got.crashed is exp["crashed"]
            assert got.name == exp["name"]
            assert got.dispatch_queue == exp["queue"]
            assert got.registers == exp["registers"]
        assert report.crashed_thread == EXPECTED["crashed_thread"]
        assert sum(t.crashed for t in report.threads) == 1

    def test_frames_map_to_their_images(self, report: AppleCrashReport) -> None:
        for got, exp in zip(report.threads, EXPECTED["threads"]):
            assert [f.instruction_addr for f in got.frames] == [f["instruction_addr"] for f in exp["frames"]]
            for frame, fexp in zip(got.frames, exp["frames"]):
                assert frame.image_index is not None
                image = report.binary_images[frame.image_index]
                assert image.name == fexp["image"] == frame.module
                assert image.image_addr <= frame.instruction_addr < image.image_addr + image.image_size
                assert (frame.symbol, frame.symbol_offset) == (fexp["symbol"], fexp["offset"])

    def test_app_frames_fall_inside_real_functions(self, report: AppleCrashReport) -> None:
        checked = 0
        for got, exp in zip(report.threads, EXPECTED["threads"]):
            for frame, fexp in zip(got.frames, exp["frames"]):
                if "function_range" not in fexp:
                    continue
                assert frame.image_index is not None
                image = report.binary_images[frame.image_index]
                vaddr = frame.instruction_addr - image.image_addr + fexp["vmaddr"]
                start, end = fexp["function_range"]
                assert start <= vaddr < end, fexp["function"]
                checked += 1
        assert checked >= 4

    def test_header_fields(self, report: AppleCrashReport) -> None:
        name, version = EXPECTED["os_train"].rsplit(" ", 1)
        assert name == "iPhone OS"
        info = report.system_info
        assert (info.os_name, info.os_version, info.os_build) == ("iOS", version, EXPECTED["os_build"])
        assert info.cpu_arch is Arch.ARM64
        assert info.device_model == EXPECTED["model"]
        assert report.exception_type is not None and report.exception_type.startswith(EXPECTED["exception_type"])
        assert report.crash_reason == f"{EXPECTED['exception_type']} ({EXPECTED['exception_signal']})"
        assert report.crash_details == EXPECTED["exception_subtype"]
        assert report.exception_subtype == EXPECTED["exception_subtype"]
        assert report.exception_codes == EXPECTED["exception_codes"]
        assert report.signal == EXPECTED["signal"] == 11
        assert report.timestamp == EXPECTED["timestamp"]
        assert report.incident_identifier == EXPECTED["incident"]
        assert report.process_name == EXPECTED["process"]

    def test_both_formats_agree(self) -> None:
        crash, ips = load("app-arm64.crash"), load("app-arm64.ips")
        assert set(crash.binary_images) == set(ips.binary_images)
        for a, b in zip(crash.threads, ips.threads):
            assert (a.id, a.name, a.dispatch_queue, a.crashed, a.registers) == (b.id, b.name, b.dispatch_queue, b.crashed, b.registers)
            assert [(f.instruction_addr, f.module, f.symbol) for f in a.frames] == [
                (f.instruction_addr, f.module, f.symbol) for f in b.frames
            ]
        assert crash.system_info == ips.system_info


class TestSymbolicateRequest:
    def test_shape(self, report: AppleCrashReport) -> None:
        body = to_symbolicate_request(report, platform="cocoa")
        assert orjson.loads(orjson.dumps(body)) == body
        assert set(body) == {"platform", "stacktraces", "modules"}
        assert "signal" not in body
        assert len(body["stacktraces"]) == len(EXPECTED["threads"])
        first = body["stacktraces"][0]
        assert set(first) == {"thread_id", "thread_name", "is_requesting", "registers", "frames"}
        assert first["is_requesting"] is True and first["thread_name"] == "com.apple.main-thread"
        assert first["registers"]["pc"] == hex(EXPECTED["threads"][0]["registers"]["pc"])
        assert [s["is_requesting"] for s in body["stacktraces"]] == [t["crashed"] for t in EXPECTED["threads"]]
        assert body["stacktraces"][1]["registers"] == {}
        assert "thread_name" not in body["stacktraces"][1]
        frame = first["frames"][0]
        assert frame == {"instruction_addr": hex(EXPECTED["threads"][0]["frames"][0]["instruction_addr"]), "package": "App"}
        sys_frame = first["frames"][2]
        exp = EXPECTED["threads"][0]["frames"][2]
        assert sys_frame["symbol"] == exp["symbol"]
        assert int(sys_frame["sym_addr"], 16) == exp["instruction_addr"] - exp["offset"]

    def test_modules(self, report: AppleCrashReport) -> None:
        modules = to_symbolicate_request(report)["modules"]
        app = next(m for m in modules if m["code_file"].endswith("/App"))
        exp = EXPECTED["images"][0]
        assert app == {
            "type": "macho",
            "code_id": exp["uuid"].replace("-", ""),
            "code_file": exp["path"],
            "debug_id": dashed(exp["uuid"]),
            "debug_file": exp["path"],
            "image_addr": hex(exp["image_addr"]),
            "image_size": exp["image_size"],
        }
        assert len(modules) == len(EXPECTED["images"])

    def test_caller_adjustment_lands_on_the_call(self, report: AppleCrashReport) -> None:
        """Frame 1 of the crashed thread, stepped back one arm64 instruction, is the `bl compute` in `main`."""
        st = to_symbolicate_request(report)["stacktraces"][0]
        frames = [FrameAddr(int(f["instruction_addr"], 16)) for f in st["frames"]]
        got = lookup_addresses(frames, report.system_info.cpu_arch, report.signal, st["registers"])
        exp = EXPECTED["threads"][0]["frames"]
        assert got[0] == exp[0]["instruction_addr"]
        assert got[1] == exp[1]["instruction_addr"] - 4
        vaddr = got[1] - EXPECTED["images"][0]["image_addr"] + exp[1]["vmaddr"]
        assert exp[1]["function"] == "main" and exp[1]["function_range"][0] <= vaddr < exp[1]["function_range"][1]

    def test_response_fields(self, report: AppleCrashReport) -> None:
        fields = response_fields(report)
        assert fields["crashed"] is True
        assert fields["crash_reason"] == "EXC_BAD_ACCESS (SIGSEGV)"
        assert fields["timestamp"] == EXPECTED["timestamp"]
        assert fields["system_info"] == {
            "os_name": "iOS", "os_version": "17.1.2", "os_build": "21B101", "cpu_arch": "arm64", "device_model": "iPhone15,2",
        }  # fmt: skip


class TestErrors:
    @pytest.mark.parametrize(
        ("name", "message"),
        [
            ("garbage.crash", "not an Apple crash report"),
            ("truncated.ips", "truncated"),
            ("body-not-json.ips", "body is not JSON"),
        ],
    )
    def test_bad_fixtures(self, name: str, message: str) -> None:
        with pytest.raises(MalformedCrashReport, match=message) as info:
            load(name)
        assert isinstance(info.value, FormatError) and status_for(info.value) == 400

    @pytest.mark.parametrize("data", [b"", b"   \n\n", "\ufeff", b"\xff\xfe\x00garbage"])
    def test_empty_or_binary(self, data: bytes | str) -> None:
        with pytest.raises(MalformedCrashReport):
            parse_apple_crash_report(data)


MACOS_X86 = """\
Process:         YetAnotherMac [49028]
Code Type:       X86-64
Date/Time:       2019-01-09 17:44:22.1234 +0000
OS Version:      Mac OS X 10.14.0 (18A391)
Exception Type:  SIGSEGV
Exception Codes: SEGV_MAPERR at 0x88
Crashed Thread:  1

Application Specific Information:
*** Terminating app due to uncaught exception 'NSRangeException'
abort() called

Last Exception Backtrace:
(0x7fff349f505e 0x7fff349b9010)

Thread 0:: com.apple.main-thread
0   ???                                 0x00007fff61bc6c2a 0 + 140735832616
1   My App Helper                       0x0000000108b7092b closure #1 in ViewController.viewDidLoad() + 40 (ViewController.swift:20)

Thread 1 Crashed::  Dispatch queue: com.example.queue
0   CoreFoundation                      0x00007fff349f505e __CFRunLoopRun + 1614
1   CoreFoundation                      0x00007fff349f45ad -[NSObject(NSObject) doesNotRecognizeSelector:] + 132 (NSObject.m:12)

Thread 1 crashed with X86 Thread State (64-bit):
  rax: 0x0000000000000000  rbx: 0x0000000000000001  rip: 0x00007fff349f505e
  rfl: 0x0000000000010246  cr2: 0x0000000000000088
Logical CPU:     0
Error Code:      0x00000004
Trap Number:     14

Binary Images:
       0x108b00000 -        0x108bfffff +My App Helper (4.21.1 - 0) <2D10C42F-591D-3265-B147-78BA0868073F> /Applications/My App.app/Contents/MacOS/My App Helper
    0x7fff349b9000 -     0x7fff34e3afff  com.apple.CoreFoundation (6.9 - 1562) <a1b2c3d4e5f60718293a4b5c6d7e8f90> /System/Library/Frameworks/CoreFoundation.framework/Versions/A/CoreFoundation
               0x0 - 0xffffffffffffffff ??? (*) <00000000-0000-0000-0000-000000000000> ???
"""


class TestTextVariants:
    """A macOS x86_64 report with the variants Apple's formats allow, expectations read off the text."""

    @pytest.fixture(scope="class")
    @staticmethod
    def mac() -> AppleCrashReport:
        return parse_apple_crash_report(MACOS_X86)

    def test_system_info_and_signal(self, mac: AppleCrashReport) -> None:
        assert mac.system_info.os_name == "macOS"
        assert (mac.system_info.os_version, mac.system_info.os_build) == ("10.14.0", "18A391")
        assert mac.system_info.cpu_arch is Arch.X86_64
        assert mac.signal == 11
        assert mac.crash_reason == "SIGSEGV"
        assert mac.timestamp == 1547055862  # 2019-01-09T17:44:22Z
        assert mac.process_name == "YetAnotherMac"

    def test_application_specific_information_is_the_details(self, mac: AppleCrashReport) -> None:
        assert mac.crash_details == "*** Terminating app due to uncaught exception 'NSRangeException'\nabort() called"
        assert mac.exception_codes == "SEGV_MAPERR at 0x88"

    def test_last_exception_backtrace(self, mac: AppleCrashReport) -> None:
        assert [f.instruction_addr for f in mac.last_exception_backtrace] == [0x7FFF349F505E, 0x7FFF349B9010]
        assert all(f.image_index == 1 for f in mac.last_exception_backtrace)

    def test_threads_with_double_colon_headers(self, mac: AppleCrashReport) -> None:
        t0, t1 = mac.threads
        assert (t0.id, t0.name, t0.dispatch_queue, t0.crashed) == (0, "com.apple.main-thread", None, False)
        assert (t1.id, t1.name, t1.dispatch_queue, t1.crashed) == (1, None, "com.example.queue", True)
        assert mac.crashed_thread == 1

    def test_registers_only_lowercase_pairs(self, mac: AppleCrashReport) -> None:
        assert mac.threads[1].registers == {"rax": 0, "rbx": 1, "rip": 0x7FFF349F505E, "rfl": 0x10246, "cr2": 0x88}
        assert mac.threads[0].registers == {}

    def test_frame_variants(self, mac: AppleCrashReport) -> None:
        unknown, swift = mac.threads[0].frames
        assert (unknown.module, unknown.symbol, unknown.image_index) == (None, None, None)
        assert swift.module == "My App Helper"
        assert (swift.symbol, swift.symbol_offset) == ("closure #1 in ViewController.viewDidLoad()", 40)
        assert (swift.filename, swift.lineno) == ("ViewController.swift", 20)
        objc = mac.threads[1].frames[1]
        assert objc.symbol == "-[NSObject(NSObject) doesNotRecognizeSelector:]"
        assert (objc.symbol_offset, objc.filename, objc.lineno) == (132, "NSObject.m", 12)

    def test_macos_images_with_versions_and_no_arch(self, mac: AppleCrashReport) -> None:
        app, cf = mac.binary_images  # the nil-UUID "???" image is dropped
        assert (app.name, app.version, app.arch) == ("My App Helper", "4.21.1 - 0", "")
        assert app.path == "/Applications/My App.app/Contents/MacOS/My App Helper"
        assert str(app.debug_id) == "2d10c42f-591d-3265-b147-78ba0868073f"
        assert (app.image_addr, app.image_size) == (0x108B00000, 0x100000)
        assert (cf.name, cf.version, str(cf.code_id)) == ("com.apple.CoreFoundation", "6.9 - 1562", "a1b2c3d4e5f60718293a4b5c6d7e8f90")
        assert mac.threads[0].frames[1].image_index == 0

    def test_bad_image_uuid_names_the_line(self) -> None:
        text = MACOS_X86.replace("<a1b2c3d4e5f60718293a4b5c6d7e8f90>", "<a1b2c3d4-not-hex>")
        line = MACOS_X86.splitlines().index(next(ln for ln in MACOS_X86.splitlines() if "a1b2c3d4e5f6" in ln)) + 1
        with pytest.raises(MalformedCrashReport, match=f"line {line}: image UUID"):
            parse_apple_crash_report(text)

    def test_unreadable_date_is_no_timestamp(self) -> None:
        report = parse_apple_crash_report(MACOS_X86.replace("2019-01-09 17:44:22.1234 +0000", "yesterday"))
        assert report.timestamp is None

    def test_crashed_flag_from_header_alone(self) -> None:
        report = parse_apple_crash_report(MACOS_X86.replace("Thread 1 Crashed::", "Thread 1::"))
        assert [t.crashed for t in report.threads] == [False, True]


def ips(body: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    head = json.dumps(header if header is not None else {"bug_type": "309", "os_version": "iPhone OS 16.5 (20F66)"})
    return head + "\n" + json.dumps(body, indent=2)


MINIMAL_BODY: dict[str, Any] = {
    "cpuType": "X86-64",
    "exception": {"type": "EXC_CRASH", "signal": "SIGABRT", "codes": "0x0000000000000000, 0x0000000000000000"},
    "asi": {"libsystem_c.dylib": ["abort() called"]},
    "faultingThread": 1,
    "threads": [
        {"id": 10, "frames": [{"imageOffset": 16, "imageIndex": 0}]},
        {"id": 11, "name": "worker", "frames": [{"imageOffset": 0x20, "imageIndex": 1, "symbol": "abort", "symbolLocation": 4}],
         "threadState": {"flavor": "x86_THREAD_STATE", "rip": {"value": 0x7000020}, "rax": {"value": 1}}},
    ],
    "usedImages": [
        {"uuid": "2d10c42f-591d-3265-b147-78ba0868073f", "base": 0x10000, "size": 0x1000, "arch": "x86_64", "path": "/A/App"},
        {"uuid": "a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90", "base": 0x7000000, "size": 0x100, "name": "libsystem_c.dylib", "path": "/usr/lib/system/libsystem_c.dylib"},
    ],
    "lastExceptionBacktrace": [{"imageOffset": 8, "imageIndex": 0}],
}  # fmt: skip


class TestIpsVariants:
    def test_minimal_body(self) -> None:
        r = parse_apple_crash_report(ips(MINIMAL_BODY))
        assert r.format == "ips"
        assert [t.crashed for t in r.threads] == [False, True]
        assert r.threads[0].frames[0].instruction_addr == 0x10010
        assert r.threads[0].frames[0].module == "App"  # name falls back to the path's last part
        assert r.threads[1].registers == {"rip": 0x7000020, "rax": 1}
        assert (r.threads[1].frames[0].symbol, r.threads[1].frames[0].symbol_offset) == ("abort", 4)
        assert r.crash_reason == "EXC_CRASH (SIGABRT)" and r.signal == 6
        assert r.crash_details == "libsystem_c.dylib: abort() called"
        assert (r.system_info.os_name, r.system_info.os_version, r.system_info.os_build) == ("iOS", "16.5", "20F66")
        assert r.system_info.cpu_arch is Arch.X86_64
        assert [f.instruction_addr for f in r.last_exception_backtrace] == [0x10008]

    def test_body_without_header_line(self) -> None:
        r = parse_apple_crash_report(json.dumps(MINIMAL_BODY, indent=2))
        assert len(r.threads) == 2 and r.system_info.os_name == ""

    def test_legacy_ips_wraps_the_text_format(self) -> None:
        r = parse_apple_crash_report(json.dumps({"bug_type": "109", "os_version": "Mac OS X 10.14"}) + "\n" + MACOS_X86)
        assert r.format == "crash" and len(r.threads) == 2

    @pytest.mark.parametrize(
        ("mutate", "message"),
        [
            (lambda b: b["threads"][0]["frames"][0].update(imageIndex=5), r"threads\[0\]\.frames\[0\]\.imageIndex: 5 is out of range"),
            (lambda b: b["threads"][0]["frames"][0].update(imageOffset=-1), r"threads\[0\]\.frames\[0\]\.imageOffset"),
            (lambda b: b["threads"][0]["frames"][0].update(imageOffset=True), r"imageOffset"),
            (lambda b: b.update(threads={"a": 1}), r"threads: expected a list"),
            (lambda b: b["usedImages"][1].update(uuid="nope"), r"usedImages\[1\]: image UUID 'nope'"),
            (lambda b: b["usedImages"].append(7), r"usedImages\[2\]: expected an object"),
            (lambda b: b.pop("threads"), r"no 'threads'"),
            (lambda b: b["threads"][1]["threadState"].update(rip={"value": "0x1"}), r"threadState\.rip\.value"),
        ],
    )
    def test_shape_errors_name_the_path(self, mutate: Any, message: str) -> None:
        body = json.loads(json.dumps(MINIMAL_BODY))
        mutate(body)
        with pytest.raises(MalformedCrashReport, match=message):
            parse_apple_crash_report(ips(body))

    def test_descriptive_fields_of_the_wrong_type_are_dropped(self) -> None:
        body = json.loads(json.dumps(MINIMAL_BODY))
        body.update(exception="boom", asi=[1], cpuType=64, modelCode=None, procName={"a": 1}, osVersion=[])
        body["threads"][1]["name"] = 5
        r = parse_apple_crash_report(ips(body))
        assert (r.crash_reason, r.crash_details, r.signal, r.process_name) == (None, None, None, None)
        assert r.system_info.cpu_arch is Arch.X86_64  # from the images' arch
        assert r.system_info.os_name == "iOS"  # from the header line
        assert r.threads[1].name is None and len(r.threads[1].frames) == 1

    def test_header_only_is_truncated(self) -> None:
        with pytest.raises(MalformedCrashReport, match="nothing follows the header"):
            parse_apple_crash_report(json.dumps({"bug_type": "309"}) + "\n")

    def test_broken_body_json(self) -> None:
        with pytest.raises(MalformedCrashReport, match="not valid JSON"):
            parse_apple_crash_report('{"bug_type":"309"}\n{"threads": [1, 2,, 3]}')


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary()))
def test_arbitrary_input_raises_only_the_typed_error(data: str | bytes) -> None:
    try:
        parse_apple_crash_report(data)
    except MalformedCrashReport:
        pass


_LINES = (FIXTURES / "app-arm64.crash").read_text().splitlines() + MACOS_X86.splitlines()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_LINES), st.text(max_size=40)), max_size=60), st.data())
def test_shuffled_and_mangled_report_lines(lines: list[str], data: st.DataObject) -> None:
    """Real lines in any order, some cut short: a report or the typed error, never a crash."""
    cut = [ln[: data.draw(st.integers(0, len(ln)))] if data.draw(st.booleans()) else ln for ln in lines]
    try:
        report = parse_apple_crash_report("\n".join(cut))
    except MalformedCrashReport:
        return
    orjson.dumps(to_symbolicate_request(report))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["threads", "frames", "usedImages", "imageIndex", "imageOffset", "uuid", "base", "size", "threadState",
         "x", "value", "exception", "type", "signal", "faultingThread", "osVersion", "train", "asi", "symbol"]), inner, max_size=5),
    max_leaves=30,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_arbitrary_ips_bodies_raise_only_the_typed_error(body: Any) -> None:
    try:
        report = parse_apple_crash_report('{"bug_type":"309"}\n' + json.dumps(body))
    except MalformedCrashReport:
        return
    orjson.dumps(to_symbolicate_request(report))


class TestLinearTime:
    """Big or hostile inputs parse in time proportional to their size."""

    def test_many_frames(self) -> None:
        lines = [f"{i}   App                           \t0x{0x102AA4000 + 4 * i:016x} 0x102aa4000 + {4 * i}" for i in range(200_000)]
        text = "Exception Type: EXC_BAD_ACCESS (SIGSEGV)\nThread 0 Crashed:\n" + "\n".join(lines)
        start = time.perf_counter()
        report = parse_apple_crash_report(text)
        assert len(report.threads[0].frames) == 200_000
        assert time.perf_counter() - start < 20

    @pytest.mark.parametrize(
        "line",
        [
            "0 " + " " * 1_000_000 + "x",
            "0   App " + "0x1 " * 200_000,
            "Thread 1 name:" + " Dispatch queue:" * 100_000,
            "    x0: " + "x1: 0x1 " * 200_000,
            "0x1 - 0x2 " + "<" * 500_000,
            "OS Version: " + "1." * 500_000,
        ],
        ids=["spaces", "hex-tokens", "queue-labels", "registers", "angle-brackets", "os-version"],
    )
    def test_hostile_lines(self, line: str) -> None:
        text = "Exception Type: SIGSEGV\nThread 0 crashed with ARM Thread State (64-bit):\nThread 0:\nBinary Images:\n" + line
        start = time.perf_counter()
        try:
            parse_apple_crash_report(text)
        except MalformedCrashReport:
            pass
        assert time.perf_counter() - start < 10
