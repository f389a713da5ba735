"""`proguard`: ProGuard / R8 mapping files → ProGuard cache → remapping and retrace, and cache bytes.

An input is a mapping, optionally followed by `SPLIT` and a stack trace; without one, a trace
is made of every method line of the mapping (at its first and last line, one past, and no
line). The mapping goes through the worker job (`jvm_lookup.convert_mapping_file`'s
`convert`), the upload identification (`mapping.scan`, whose UUID and class count must agree
with `parse` and `mapping_uuid`: a wrong answer otherwise), `ProguardCache`, class / method /
stack-trace remapping (with R8 outlines and rewrite rules) and `retrace_text`. An input that
starts with the cache's magic is cache bytes: opened and looked up (a cut or altered cache must
be a `CacheFormatError`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from fuzz.contract import Violation
from symbolicator.proguard import convert
from symbolicator.proguard.cache import MAGIC, ProguardCache
from symbolicator.proguard.mapping import mapping_uuid, parse, scan
from symbolicator.proguard.remap import Remapper
from symbolicator.proguard.retrace import retrace_text

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

_FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "jvm"
SPLIT = b"\n\0TRACE\0\n"
MAX_FRAMES = 400


def run(data: bytes) -> None:
    if data.startswith(MAGIC):
        _lookups(ProguardCache(data), None, b"")
        return
    mapping, _, trace = data.partition(SPLIT)
    cache_bytes = convert(mapping)
    parsed = parse(mapping)
    summary = scan(io.BytesIO(mapping))
    if summary.uuid != mapping_uuid(mapping) or summary.classes != len(parsed.classes):
        raise Violation("wrong", f"scan read {summary.classes} classes, uuid {summary.uuid}; parse "
                                 f"{len(parsed.classes)}, uuid {mapping_uuid(mapping)}")
    cache = ProguardCache(cache_bytes)
    if cache.uuid != summary.uuid or cache.has_line_info != parsed.has_line_info:
        raise Violation("wrong", "the cache header disagrees with the mapping")
    frames = [(c.obfuscated, m.obf_name, line) for c in parsed.classes for m in c.members
              for line in (m.obf_first, m.obf_last, m.obf_last + 1, 0)][:MAX_FRAMES]
    _lookups(cache, frames, trace)


def _lookups(cache: ProguardCache, frames: list[tuple[str, str, int]] | None, trace: bytes) -> None:
    remapper = Remapper(cache)
    for class_name, method, line in frames or [("a", "a", 1), ("a.a", "<init>", 0)]:
        remapper.transform(class_name, method, line)
        remapper.remap_method(class_name, method)
        cache.field_names(remapper.original_class(class_name), method)
    if frames:
        remapper.remap_stacktrace(frames, "java.lang.NullPointerException")
    text = trace.decode("utf-8", errors="replace") if trace else "".join(
        f"\tat {c}.{m}(SourceFile{':' + str(line) if line else ''})\n" for c, m, line in frames or [])
    retrace_text(remapper, "Exception in thread \"main\" a.a: x\n" + text)


def inputs() -> SearchStrategy[bytes]:
    from hypothesis import strategies as st

    from fuzz.strategies import ints, rarely

    names = st.sampled_from(["a", "b", "a.a", "com.example.Main", "Main$Inner", "<init>", "<clinit>", "x$$0", "é", ""])
    types = st.sampled_from(["void", "int", "java.lang.String", "int[]", "a.a", ""])
    comments = st.sampled_from([
        '# {"id":"sourceFile","fileName":"Main.kt"}', '# {"id":"com.android.tools.r8.synthesized"}',
        '# {"id":"com.android.tools.r8.outline"}',
        '# {"id":"com.android.tools.r8.outlineCallsite","positions":{"1":5,"2":-1,"x":3},"outline":"La;a()I"}',
        '# {"id":"com.android.tools.r8.rewriteFrame","conditions":["throws(Ljava/lang/NullPointerException;)"],'
        '"actions":["removeInnerFrames(1)","removeInnerFrames(99)"]}',
        '# {"id":"com.android.tools.r8.outlineCallsite","positions":[1]}', "# {", "# compiler: R8", "#",
    ])

    @st.composite
    def member(draw: st.DrawFn) -> str:
        lines = draw(st.sampled_from(["", "{a}:{b}:", "{a}:{b}:"]))
        orig = draw(st.sampled_from(["", ":{c}", ":{c}:{d}"]))
        args = draw(st.sampled_from(["()", "(int)", "({t},{t})", "(", ""]))
        text = f"    {lines}{{t}} {{n}}{args}{orig} -> {{o}}"
        return text.format(a=draw(ints()), b=draw(ints()), c=draw(ints()), d=draw(ints()), t=draw(types),
                           n=draw(names), o=draw(names))

    class_line = st.builds(lambda o, n: f"{o} -> {n}:", names, names)
    line = st.one_of(class_line, member(), comments, st.text(max_size=20))
    mapping = st.lists(line, max_size=25).map(lambda ls: "\n".join(["a.a -> a:", *ls]).encode("utf-8", "surrogatepass"))
    trace_line = st.one_of(
        st.builds(lambda c, m, n: f"\tat {c}.{m}(SourceFile:{n})", names, names, ints()),
        st.builds(lambda c: f"Caused by: {c}: boom", names), st.text(max_size=30),
    )
    trace = st.lists(trace_line, max_size=8).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass"))
    with_trace = st.builds(lambda m, t: m + SPLIT + t, mapping, trace)
    return st.one_of(mapping, with_trace, rarely(st.binary(max_size=64), st.just(MAGIC + bytes(60)), one_in=4))


def seeds() -> dict[str, bytes]:
    """The fixture mappings with their traces, and the cache of the real one."""
    out = {"real-cache": convert((_FIXTURES / "mapping.txt").read_bytes())}
    mapping = (_FIXTURES / "mapping.txt").read_bytes()
    for trace in sorted((_FIXTURES / "traces").glob("*.txt")):
        out[f"real-{trace.stem}"] = mapping + SPLIT + trace.read_bytes()
    for name in ("edge-mapping", "r8-mapping"):
        out[name] = (_FIXTURES / "handwritten" / f"{name}.txt").read_bytes()
    return out
