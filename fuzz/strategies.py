"""Hypothesis building blocks shared by the targets: edge-case numbers, any-JSON, `mappings`.

Structured inputs reach deeper than random bytes: a body with the right keys and one
wrong value gets past the first `isinstance` and into the code that trusts it. So the
targets draw valid documents whose numbers sit at the edges (`ints`, `hex_addrs`), and
`damaged(s)` then replaces zero to two of their nodes with any JSON value: each check of a
parser meets the wrong type on its own, behind all the checks that pass.
"""

from __future__ import annotations

import json
import random
from functools import cache
from typing import Any

from hypothesis import strategies as st

from fuzz import vlq_reference
from fuzz.edges import EDGE_INTS, EDGE_TEXT


def ints() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(EDGE_INTS), st.integers(), st.integers(0, 300))


def texts() -> st.SearchStrategy[str]:
    """Edge-case strings, or short random ones (hypothesis draws text one character at a time)."""
    return st.one_of(st.sampled_from(EDGE_TEXT), st.text(max_size=16))


def json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.booleans(), ints(), st.floats(allow_nan=False, allow_infinity=False), texts())


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value, two levels deep at most: enough for "the wrong type", and cheap to draw."""
    scalars = json_scalars()
    return st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(texts(), scalars, max_size=3))


@st.composite
def damaged(draw: st.DrawFn, strategy: st.SearchStrategy[Any], max_edits: int = 2) -> Any:
    """A document from `strategy` with up to `max_edits` of its nodes replaced by any JSON value."""
    from fuzz.json_mutate import slots

    doc = draw(strategy)
    rng = draw(st.randoms(use_true_random=False))  # uniform over the nodes: hypothesis's integers favour 0
    for _ in range(rng.randint(0, max_edits)):
        found = slots(doc)
        if not found:
            return draw(json_values())
        container, key = rng.choice(found)
        container[key] = draw(json_values())
    return doc


def rarely(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], one_in: int = 8) -> st.SearchStrategy[Any]:
    """`rare` about once in `one_in` draws (a middle value: hypothesis favours the bounds of a range)."""
    return st.integers(0, one_in - 1).flatmap(lambda k: rare if k == one_in // 2 else common)


def hex_addrs() -> st.SearchStrategy[Any]:
    """Addresses as the wire sends them (hex strings, integers); one in eight out of range or not hex."""
    valid = st.one_of(st.integers(0, 2**64 - 1).map(hex), st.integers(0, 2**32).map(hex),
                      st.integers(0, 2**64 - 1), st.sampled_from([0, 2**64 - 1, 2**63]).map(hex))
    invalid = st.one_of(
        st.sampled_from(EDGE_INTS).map(lambda v: hex(v) if v >= 0 else f"-{hex(-v)}"),
        st.sampled_from(EDGE_INTS),
        st.text(alphabet="0123456789abcdefABCDEFxX -+_", max_size=24),
    )
    return rarely(valid, invalid)


def dump(value: Any) -> bytes:
    """JSON bytes as a client would send them (big integers included, NaN never)."""
    return json.dumps(value, ensure_ascii=True).encode()


def _line(rng: random.Random, sources: int, names: int, edgy: bool) -> list[tuple[int, ...]]:
    """One generated line as absolute segments (gen col, src, line, col, name), columns increasing;
    `edgy` lines now and then hold a value out of range or at an integer limit, or a bad field count."""
    out: list[tuple[int, ...]] = []
    col = 0
    for _ in range(rng.randint(0, 8)):
        col += rng.randint(0, 40)
        fields = rng.choice((1, 4, 4, 5, 5) if names else (1, 4, 4)) if sources else 1
        seg = (col, rng.randint(0, max(sources - 1, 0)), rng.randint(0, 200), rng.randint(0, 100),
               rng.randint(0, max(names - 1, 0)))[:fields]
        damage = rng.choice(("value", "fields")) if edgy and rng.random() < 0.25 else ""
        if damage == "value":
            at = rng.randrange(len(seg))
            value = rng.choice((rng.randint(-3, -1), sources + names, rng.choice(EDGE_INTS)))
            seg = seg[:at] + (value,) + seg[at + 1:]
        elif damage == "fields":
            seg = tuple(rng.randint(0, 9) for _ in range(rng.choice((2, 3, 6, 7))))
        out.append(seg)
    return out


def _deltas(lines: list[list[tuple[int, ...]]]) -> list[list[list[int]]]:
    """Absolute segments → the deltas `mappings` stores (column per line, the rest across lines)."""
    previous = [0, 0, 0, 0, 0]
    out = []
    for line in lines:
        previous[0] = 0
        encoded = []
        for seg in line:
            encoded.append([v - previous[i] if i < 5 else v for i, v in enumerate(seg)])
            for i, v in enumerate(seg[:5]):
                previous[i] = v
        out.append(encoded)
    return out


@st.composite
def _mappings(draw: st.DrawFn, sources: int, names: int, max_lines: int) -> str:
    # Everything below the line count comes from one seeded Random: drawing hundreds of values
    # one by one through hypothesis costs milliseconds per map. Shrinking then works on the
    # count and the seed only, which is why crashes are minimised by hand (fuzz/README.md).
    lines_count = draw(st.integers(1, max_lines))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    edgy = rng.random() < 1 / 6
    text = vlq_reference.encode(_deltas([_line(rng, sources, names, edgy) for _ in range(lines_count)]))
    damage = rng.choice(("char", "cut", "continuation", "repeat")) if rng.random() < 0.25 else ""
    if damage == "char":
        at = rng.randint(0, len(text))
        text = text[:at] + rng.choice(list("!=\u00e9 \n\"\\-_g/+,;\x00")) + text[at:]
    elif damage == "cut":
        text = text[: rng.randint(0, len(text))]
    elif damage == "continuation":
        text += rng.choice(("g", "gggggggg", "//////", "g;", "g,"))
    elif damage == "repeat":
        text = (text + ";") * rng.randint(1, 40)
    return text


@cache
def mappings(sources: int = 4, names: int = 4, max_lines: int = 12) -> st.SearchStrategy[str]:
    """A `mappings` string for a map with `sources` and `names` entries: plausible segments (one
    mapping in six with edge values), one string in four damaged by hand afterwards."""
    return _mappings(sources, names, max_lines)
