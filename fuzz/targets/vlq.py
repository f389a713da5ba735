"""`vlq`: `decode_mappings` on arbitrary bytes, checked against `fuzz.vlq_reference`.

Beyond the crash contract this target is differential: the array decoder and the plain
reference must reject the same strings and agree on every segment of the others, so a
wrong column or a silently accepted overflow is a `Violation("wrong", …)` too. One
hypothesis input in 64 is long enough to be decoded in several chunks, the decoder's most
intricate path (values carried across a cut).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from fuzz import vlq_reference
from fuzz.contract import Violation
from symbolicator.errors import MalformedSourceMap
from symbolicator.sourcemaps.vlq import decode_mappings

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

_FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "js" / "out"
LONG = 140_000
"""Bytes of the rare long inputs: past the decoder's 128 KiB chunk, so chunking is checked too."""


def run(data: bytes) -> None:
    try:
        segments = decode_mappings(data)
    except MalformedSourceMap as exc:
        if vlq_reference.decode(data) is not None:
            raise Violation("wrong", f"rejected a valid mappings string: {exc}") from exc
        raise
    want = vlq_reference.decode(data)
    if want is None:
        raise Violation("wrong", f"accepted an invalid mappings string ({len(segments)} segments)")
    got = list(zip(*(a.tolist() for a in (segments.gen_line, segments.gen_col, segments.src, segments.src_line,
                                           segments.src_col, segments.name)), strict=True))
    if got != want:
        first = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w), min(len(got), len(want)))
        raise Violation("wrong", f"segment {first} differs: got {got[first:first + 1]}, reference "
                                 f"{want[first:first + 1]} ({len(got)} vs {len(want)} segments)")


def inputs() -> SearchStrategy[bytes]:
    from hypothesis import strategies as st

    from fuzz.strategies import mappings, rarely

    def past_a_chunk(text: str) -> bytes:
        """The string repeated until the decoder must cut it into chunks and carry its state across."""
        line = (text.rstrip(";") or "A") + ";"
        return (line * (LONG // len(line) + 1)).encode("utf-8", "surrogatepass")

    short = st.one_of(
        mappings().map(lambda m: m.encode("utf-8", "surrogatepass")),
        st.text(alphabet=vlq_reference.B64.decode() + ",;", max_size=200).map(str.encode),
        st.binary(max_size=64),
    )
    return rarely(short, mappings().map(past_a_chunk), one_in=64)


def seeds() -> dict[str, bytes]:
    """The `mappings` of the fixture maps (regular maps only; index maps hold them per section)."""
    out = {}
    for path in sorted(_FIXTURES.glob("*/*.map")):
        mappings = orjson.loads(path.read_bytes()).get("mappings")
        if isinstance(mappings, str) and len(mappings) < 8000:
            out[f"{path.parent.name}-{path.stem}"] = mappings.encode()
    return out
