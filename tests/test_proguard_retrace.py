"""The JVM engine against ProGuard's own retrace, on real obfuscated traces and hand-edited ones.

Expectations are retrace's output, recorded by tests/fixtures/jvm/build.sh (which this test
runs in `--check` mode, so CI re-derives them from the Java sources) and, for the real traces,
run again here. Nothing is taken from this project's output.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from symbolicator.errors import CacheFormatError, MalformedMapping
from symbolicator.proguard import convert, load
from symbolicator.proguard.cache import ProguardCache
from symbolicator.proguard.mapping import mapping_uuid
from symbolicator.proguard.remap import Remapper
from symbolicator.proguard.retrace import retrace_text

JVM = Path(__file__).parent / "fixtures" / "jvm"
RETRACE_JAR = "/usr/share/java/proguard-retrace.jar"
SCENARIOS = ["validate", "parse", "worker", "wrapped"]
HANDWRITTEN = {"ambiguous": "mapping.txt", "line-endings": "mapping.txt", "edge-trace": "handwritten/edge-mapping.txt"}


def remapper(mapping: str = "mapping.txt") -> Remapper:
    return Remapper(load((JVM / mapping).read_bytes()))


def test_build_script_reproduces_the_fixtures() -> None:
    """javac + ProGuard + the obfuscated jar + retrace give the committed files again."""
    out = subprocess.run([str(JVM / "build.sh"), "--check"], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_real_traces_match_retrace(scenario: str) -> None:
    trace = JVM / "traces" / f"{scenario}.txt"
    live = subprocess.run(["java", "-jar", RETRACE_JAR, str(JVM / "mapping.txt"), str(trace)],
                          capture_output=True, text=True, timeout=120, check=True).stdout
    assert live == (JVM / "expected" / f"{scenario}.txt").read_text()
    assert retrace_text(remapper(), trace.read_text()) == live


@pytest.mark.parametrize("name", sorted(HANDWRITTEN))
def test_hand_edited_traces_match_retrace(name: str) -> None:
    """Ambiguous frames, no line, line 0, negative lines, unknown classes, `~[jar]`, odd spacing,
    CR line ends, a mapping with methods without lines, `:0:0`, inlining from another class,
    renamed duplicates, indented and garbage lines."""
    text = (JVM / "handwritten" / f"{name}.txt").read_bytes().decode("utf-8")
    expected = (JVM / "expected" / f"handwritten-{name}.txt").read_text(encoding="utf-8")
    assert retrace_text(remapper(HANDWRITTEN[name]), text) == expected


def test_inlined_frames_expand_innermost_first() -> None:
    frames = remapper().transform("com.example.b.a", "a", 1022)
    assert [(f.class_name, f.method, f.line) for f in frames] == [
        ("com.example.util.Processor", "validate", 22),
        ("com.example.util.Processor", "handle", 16),
    ]


def test_a_line_beyond_java_int_is_left_alone() -> None:
    """Retrace 6.2.2 stops with NumberFormatException on it; the line is printed unchanged."""
    line = "\tat com.example.b.a.a(SourceFile:99999999999)"
    assert retrace_text(remapper(), line + "\n") == line + "\n"


def test_mapping_uuid_is_sentrys() -> None:
    """uuid5(uuid5(NAMESPACE_DNS, "guardsquare.com"), text), as symbolic computes it."""
    symbolic = pytest.importorskip("symbolic")
    data = (JVM / "mapping.txt").read_bytes()
    assert mapping_uuid(data) == symbolic.ProguardMapper.open(str(JVM / "mapping.txt")).uuid
    assert mapping_uuid(data) == uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_DNS, "guardsquare.com"), data.decode())


def test_cache_keeps_uuid_and_line_info() -> None:
    cache = ProguardCache(convert((JVM / "mapping.txt").read_bytes()))
    assert cache.uuid == mapping_uuid((JVM / "mapping.txt").read_bytes())
    assert cache.has_line_info
    assert cache.remap_class("com.example.b.a") == "com.example.util.Processor"
    assert cache.remap_class("com.example.b") is None
    assert cache.field_names("com.example.util.Processor", "b") == [("int", "calls")]


def test_cache_refuses_cut_altered_and_foreign_bytes() -> None:
    data = convert((JVM / "mapping.txt").read_bytes())
    with pytest.raises(CacheFormatError, match="size"):
        ProguardCache(data[:-1])
    altered = bytearray(data)
    altered[-3] ^= 0xFF
    with pytest.raises(CacheFormatError, match="checksum"):
        ProguardCache(bytes(altered))
    with pytest.raises(CacheFormatError, match="not a ProGuard cache"):
        ProguardCache(b"SYMCACHE" + data[8:])
    with pytest.raises(CacheFormatError, match="version"):
        ProguardCache(data[:8] + (99).to_bytes(4, "little") + data[12:])
    with pytest.raises(CacheFormatError, match="header"):
        ProguardCache(data[:10])


@pytest.mark.parametrize("text", [b"", b"hello world\n", b"\x89PNG\r\n\x1a\n", b"    1:1:void a() -> b\n"])
def test_not_a_mapping_is_a_typed_error(text: bytes) -> None:
    with pytest.raises(MalformedMapping):
        convert(text)


def test_line_numbers_outside_java_ints_skip_the_line() -> None:
    """Found by the fuzzer: such a number stopped the cache build with struct.error (retrace 6.2.2
    stops with NumberFormatException on it); the line is skipped, as symbolic skips it."""
    mapping = b"a.A -> a:\n    1:99999999999:void f() -> a\n    1_0:12:void g() -> a\n    -3:-1:void h():5:7 -> a\n"
    remapper = Remapper(load(mapping))
    assert [(f.method, f.line) for f in remapper.candidates("a", "a", -2)] == [("h", 6)]
    assert [(f.method, f.line) for f in remapper.candidates("a", "a", 0)] == [("h", 5)]


def test_negative_lines_are_read_as_retrace_reads_them(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.txt"
    mapping.write_bytes(b"a.A -> a:\n    -3:-1:void h():5:7 -> a\n    2:4:void k() -> b\n")
    trace = tmp_path / "trace.txt"
    trace.write_text("x.Y: z\n\tat a.a(SourceFile:-2)\n\tat a.a(SourceFile)\n\tat a.b(SourceFile:-2)\n")
    live = subprocess.run(["java", "-jar", RETRACE_JAR, str(mapping), str(trace)],
                          capture_output=True, text=True, timeout=120, check=True).stdout
    assert retrace_text(Remapper(load(mapping.read_bytes())), trace.read_text()) == live


@pytest.mark.parametrize(("head", "taken"), [
    (b"# compiler: R8\n# compiler_version: 8.3", True), (b"com.example.MainActivity -> com.", True),
    (b"a.A -> a:\n    1:1:void f() -> a\n", True), (b"#!/bin/sh\necho hi\n", False), (b"Notes\nmore\n", False),
    (b"Notes", False), (b"hello world, this is a text file", False), (b"\x7fELF\x02\x01", False),
])
def test_upload_identification_takes_mapping_heads_only(head: bytes, taken: bool) -> None:
    """A mapping has no magic: a text that is none must still be refused from its first 32 bytes,
    before sentry-cli 3 (no --wait) stops listening (docs/uploads.md)."""
    from symbolicator.proguard.mapping import looks_like_mapping

    assert looks_like_mapping(head[:32]) is taken


def test_the_fast_member_path_cuts_as_the_general_one() -> None:
    """`mapping._member_line` takes a regex shortcut for the common line shape; on any line it must
    answer what the MappingReader-shaped cutter answers."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from symbolicator.proguard.mapping import _RANGED, ClassMapping, _cut_member_line, _member_line

    owner = ClassMapping("pkg.Owner", "a")
    # Valid pieces more often than not, so most lines take the shortcut and every field is compared.
    piece = st.sampled_from(["1", "0", "2147483647", "007", "12", "35", "2147483648", "99999999999", "-3", "٣", "x"])
    word = st.sampled_from(["void", "int", "a.b.C", "m", "<init>", "pkg.Other.m", "a.", "é", "a b", "a:b", "",
                            "\x01int", "a\x85", "b\u2028"])
    args = st.sampled_from(["", "int", "int, java.lang.String", "int[]", "(", ")", " x ", "a:b"])
    orig = st.sampled_from(["", ":{c}", ":{c}:{d}", ":{c}", ":{c}:{d}", ":{c}:"])
    lines = st.sampled_from(["{a}:{b}:", "{a}:{b}:", "{a}:{b}:", "", "{a}:"])
    shortcut = 0

    @settings(max_examples=1500, deadline=None, database=None)
    @given(piece, piece, word, word, args, orig, piece, piece, word, lines)
    def check(a: str, b: str, type_: str, name: str, arguments: str, orig: str, c: str, d: str,
              new: str, lines: str) -> None:
        nonlocal shortcut
        line = f"{lines.format(a=a, b=b)}{type_} {name}({arguments}){orig.format(c=c, d=d)} -> {new}"
        assert _member_line(line, owner) == _cut_member_line(line, owner), line
        shortcut += _RANGED.fullmatch(line) is not None

    check()
    assert shortcut > 40


def test_mapping_lines_end_and_trim_as_in_java(tmp_path: Path) -> None:
    """Found by the fuzzer: a CR inside a `\\n` line was one line to the upload's scan and two to the
    parser. Both now read lines as Java's readLine and trim as String.trim, as retrace does."""
    import io

    from symbolicator.proguard.mapping import parse, scan

    mapping = tmp_path / "mapping.txt"
    mapping.write_bytes(b"a.A -> a:\r    1:3:void f():10:12 -> a\r\nb.B -> b:\x01\n\x02  4:4:void g():7 -> a\x1f\n")
    trace = tmp_path / "trace.txt"
    trace.write_text("x.Y: z\n\tat a.a(SourceFile:2)\n\tat b.a(SourceFile:4)\n")
    live = subprocess.run(["java", "-jar", RETRACE_JAR, str(mapping), str(trace)],
                          capture_output=True, text=True, timeout=120, check=True).stdout
    assert "a.A.f(A.java:11)" in live and "b.B.g(B.java:7)" in live
    assert retrace_text(Remapper(load(mapping.read_bytes())), trace.read_text()) == live
    assert scan(io.BytesIO(mapping.read_bytes())).classes == len(parse(mapping.read_bytes()).classes) == 2
