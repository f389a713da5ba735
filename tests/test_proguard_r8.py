"""R8's mapping additions, on a hand-written mapping (R8 cannot run here), against `symbolic`.

`symbolic`'s `ProguardMapper` (Sentry's Rust proguard crate) is the oracle, called in the test:
every frame of every method line, at the first, last and a missing line of its range, must
remap to the same class, method, line and R8 `sourceFile`. Its Python binding remaps one frame
at a time, so for outlines and `rewriteFrame` (whole-trace rules) the expectation is built from
symbolic's frames and the numbers the mapping's JSON gives, read here from the file.
Line 0 is where the two readings part: retrace matches every method line there, symbolic (and
Symbolicator) only ranges that hold 0, which R8 writes; the endpoint reads it as Symbolicator
does (`zero_is_a_line`), the text retrace as retrace (docs/formats.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from symbolicator.proguard import load
from symbolicator.proguard.mapping import parse
from symbolicator.proguard.remap import Remapper

symbolic = pytest.importorskip("symbolic")

JVM = Path(__file__).parent / "fixtures" / "jvm"
R8 = JVM / "handwritten" / "r8-mapping.txt"


def frames_of_every_line(path: Path) -> list[tuple[str, str, int]]:
    out = []
    for cls in parse(path.read_bytes()).classes:
        for member in cls.members:
            for line in sorted({member.obf_first, member.obf_last, member.obf_last + 1, 0, 3}):
                out.append((cls.obfuscated, member.obf_name, line))
    return out


MAPPINGS = [R8, JVM / "mapping.txt", JVM / "handwritten" / "edge-mapping.txt"]
# Where the edge mapping's readers part, this engine reads as ProGuard's MappingReader (retrace's
# recorded answers, test_proguard_retrace.py): a member line indented by 6 spaces (symbolic skips
# it) and an obfuscated class name given twice (symbolic keeps the first class's methods under the
# last class's name; retrace looks methods up under the last one only).
READ_AS_RETRACE = {("pkg.Plain", "e"), ("a", "a")}


@pytest.mark.parametrize("path", MAPPINGS, ids=["r8-hand-written", "proguard-real", "hand-written-edges"])
def test_every_frame_remaps_as_symbolic(path: Path) -> None:
    """Symbolicator's reading (`zero_is_a_line`, what `/symbolicate-jvm` uses), line 0 and
    method lines without a range included; where it and retrace agree, retrace's reading too."""
    oracle = symbolic.ProguardMapper.open(str(path))
    remapper = Remapper(load(path.read_bytes()))
    frames = frames_of_every_line(path)
    assert len(frames) > 20
    for class_name, method, line in frames:
        if (class_name, method) in READ_AS_RETRACE:
            continue
        expected = [(f.class_name, f.method, f.line, f.file) for f in oracle.remap_frame(class_name, method, line)]
        got = [(f.class_name, f.method, f.line, f.r8_source_file)
               for f in remapper.candidates(class_name, method, line, zero_is_a_line=True)]
        assert got == expected, (class_name, method, line)
        retrace = remapper.candidates(class_name, method, line)
        if line != 0 and all(f.member is not None and f.member.obf_last != 0 for f in retrace):
            assert [(f.class_name, f.method, f.line, f.r8_source_file) for f in retrace] == expected


def test_classes_and_methods_remap_as_symbolic() -> None:
    oracle = symbolic.ProguardMapper.open(str(R8))
    remapper = Remapper(load(R8.read_bytes()))
    for name in ["a.a", "b.a", "c.a", "x.y", "com.example.Main"]:
        assert remapper.cache.remap_class(name) == oracle.remap_class(name)
    for class_name, method in [("a.a", "a"), ("a.a", "c"), ("c.a", "a"), ("a.a", "zz")]:
        assert remapper.remap_method(class_name, method) == oracle.remap_method(class_name, method)
    assert remapper.cache.has_line_info == oracle.has_line_info
    assert remapper.cache.uuid == oracle.uuid


def test_r8_metadata_is_read() -> None:
    remapper = Remapper(load(R8.read_bytes()))
    [lambda_frame] = remapper.candidates("a.a", "c", 6)
    assert lambda_frame.member is not None and lambda_frame.member.synthesized
    [outline] = remapper.candidates("b.a", "a", 1)
    assert outline.member is not None and outline.member.outline
    assert remapper.cache.class_synthesized("com.example.Outline")


def _json_comment(path: Path, kind: str) -> dict[str, object]:
    for line in path.read_text().splitlines():
        m = re.match(r"\s*#\s*(\{.*\})\s*$", line)
        if m and json.loads(m.group(1)).get("id") == kind:
            found: dict[str, object] = json.loads(m.group(1))
            return found
    raise AssertionError(kind)


def test_an_outline_frame_is_dropped_and_its_caller_takes_the_callsite_line() -> None:
    oracle = symbolic.ProguardMapper.open(str(R8))
    positions = _json_comment(R8, "com.android.tools.r8.outlineCallsite")["positions"]
    assert isinstance(positions, dict)
    remapper = Remapper(load(R8.read_bytes()))
    for outline_line in (1, 2):
        # The outline at position N, called from c.a.a whose own frame says line 2.
        got = remapper.remap_stacktrace([("b.a", "a", outline_line), ("c.a", "a", 2)])
        callsite_line = positions[str(outline_line)]
        expected = [(f.class_name, f.method, f.line) for f in oracle.remap_frame("c.a", "a", callsite_line)]
        assert got[0] == []
        assert [(f.class_name, f.method, f.line) for f in got[1]] == expected


def test_rewrite_frame_removes_inner_frames_for_the_thrown_exception() -> None:
    oracle = symbolic.ProguardMapper.open(str(R8))
    rule = _json_comment(R8, "com.android.tools.r8.rewriteFrame")
    [action] = rule["actions"]  # type: ignore[misc]
    count = int(re.fullmatch(r"removeInnerFrames\((\d+)\)", action).group(1))  # type: ignore[union-attr]
    remapper = Remapper(load(R8.read_bytes()))
    full = [(f.class_name, f.method, f.line) for f in oracle.remap_frame("a.a", "d", 7)]
    npe = remapper.remap_stacktrace([("a.a", "d", 7)], exception="java.lang.NullPointerException")
    assert [(f.class_name, f.method, f.line) for f in npe[0]] == full[count:]
    other = remapper.remap_stacktrace([("a.a", "d", 7)], exception="java.lang.IllegalStateException")
    assert [(f.class_name, f.method, f.line) for f in other[0]] == full
    # Only the innermost frame of a trace is rewritten.
    later = remapper.remap_stacktrace([("c.a", "a", 1), ("a.a", "d", 7)], exception="java.lang.NullPointerException")
    assert [(f.class_name, f.method, f.line) for f in later[1]] == full
