"""The skeleton of a minified file (`sourcemaps/skeleton.py`) changes the parse's cost, never its answer.

Every JavaScript file of the fixtures — the bundles esbuild, terser, rollup, webpack, Metro and
dart2js wrote, and the originals — gives the same scopes, extents and names through the skeleton
as through the whole file, and the skeleton is really used (it parses without error and has fewer
tokens). Small cases pin the lexing decisions the blanking rests on.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from symbolicator.sourcemaps.scopes import ScopeName, _parser, collect_scopes, resolve_scopes, token_count
from symbolicator.sourcemaps.skeleton import BYTES_PER_BRACKET, BYTES_PER_BYTE, skeleton

FIXTURES = Path(__file__).parent / "fixtures"
JS_FILES = sorted(p for pattern in ("**/*.js", "**/*.mjs", "**/*.bundle") for p in FIXTURES.glob(pattern)
                  if "node_modules" not in p.parts and p.read_bytes()[:4] != b"\xc6\x1f\xbc\x03")
MINIFIED = [p for p in JS_FILES if p.name.endswith((".min.js", ".bundle")) or "out" in p.parts]


def _scopes(source: bytes, use_skeleton: bool) -> list[ScopeName]:
    """Scopes with names that record where each name token is: a different tree shows."""
    pending = collect_scopes(source, use_skeleton=use_skeleton)
    return resolve_scopes(pending, lambda row, col: f"@{row}:{col}", lambda row, col: (f"function f{row}_{col}(", 0))


def _parses_cleanly(source: bytes) -> bool:
    return not _parser("javascript").parse(source).root_node.has_error


def test_the_fixtures_hold_real_bundles() -> None:
    assert len(JS_FILES) >= 90 and len(MINIFIED) >= 20
    assert {p.parent.name for p in MINIFIED} >= {"esbuild", "terser", "rollup", "webpack", "metro"}


@pytest.mark.parametrize("path", JS_FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_same_scopes_through_the_skeleton(path: Path) -> None:
    source = path.read_bytes()
    assert _scopes(source, True) == _scopes(source, False)
    reduced = skeleton(source)
    assert reduced is not None and len(reduced) == len(source)
    assert [i for i, b in enumerate(reduced) if b == 10] == [i for i, b in enumerate(source) if b == 10]
    if _parses_cleanly(source):
        assert _parses_cleanly(reduced), "the skeleton must be what is parsed, not a fallback"


def test_the_skeleton_of_a_bundle_is_much_smaller() -> None:
    source = (FIXTURES / "js_scopes" / "out" / "terser" / "vendor.min.js").read_bytes()
    reduced = skeleton(source)
    assert reduced is not None and token_count(reduced) < 0.7 * token_count(source)


@pytest.mark.parametrize(("source", "expected"), [
    # arguments, conditions and leaf bodies go; parameters, `for` heads and targets stay
    (b"function f(a,b){return g(a+b)}", b"function f(a,b){             }"),
    (b"x=a=>h(a,1);", b"x=a=>h(0  );"),
    (b"if(a&&b)c(d);while(e(f))g()", b"if(0   )c(0);while(0   )g()"),
    (b"for(let i=0;i<n;i++)f(i);", b"for(let i=0;i<n;i++)f(0);"),
    (b"for(const[a,b]of g(c))h(a);", b"for(const[a,b]of g(0))h(0);"),
    (b"(a)=1;(b)+=2;(c)++;(d)**=2;(e)??=1", b"(a)=1;(b)+=2;(c)++;(d)**=2;(e)??=1"),
    (b"(a,b)=>a;async(c)=>c", b"(a,b)=>a;async(c)=>c"),
    (b"f(a)==g(b)", b"f(0)==g(0)"),
    # a group that holds a function (or a `{`) stays; its inner groups may go
    (b"f(function(){return 1},g(2))", b"f(function(){        },g(0))"),
    (b"f({m(){return 1}})", b"f({m(){        }})"),
    (b"class A{x=g(1);m(a){return a}}", b"class A{x=g(0);m(a){        }}"),
    # literals: brackets inside strings, templates, comments and regular expressions are not code
    (b'x=f("(}");y=1', b'x=f(0   );y=1'),
    (b"a=/[{(]\"'/g.test(s);function k(){}", b"a=/[{(]\"'/g.test(0);function k(){}"),
    (b"a=b/c/d;function k(){return 1}", b"a=b/c/d;function k(){        }"),
    (b"t=`${f({a:1})}${`${g(x)}`}`;function k(){}", b"t=`${f({   })}${`${g(0)}`}`;function k(){}"),
    (b"/* { ( */function k(){}// } )\n", b"/* { ( */function k(){}// } )\n"),
    (b"function k(){return/}/.test(s)}", b"function k(){                 }"),
    (b"if(a){b()}/[{]/.test(c);function k(){return 1}", b"if(a){   }/[{]/.test(0);function k(){        }"),
    # newlines stay: rows and columns of everything else are the original's
    (b"f(a,\nb);function k(){\nreturn 1}", b"f(0 \n );function k(){\n        }"),
])
def test_blanking(source: bytes, expected: bytes) -> None:
    assert skeleton(source) == expected
    assert _parses_cleanly(expected)
    assert _scopes(source, True) == _scopes(source, False)


@pytest.mark.parametrize("source", [
    b"if(x)/re{/.test(y);function k(){return 1}",  # a regular expression after `)`: read as a division
    b"x='unterminated;function k(){}",
    b"f(a;function k(){}",
    b"`a${b`",
])
def test_what_the_skeleton_cannot_read_is_parsed_whole(source: bytes) -> None:
    reduced = skeleton(source)
    assert reduced is None or not _parses_cleanly(reduced)
    assert _scopes(source, True) == _scopes(source, False)


@pytest.mark.parametrize("source", [
    (FIXTURES / "js_scopes" / "out" / "terser" / "vendor.min.js").read_bytes(),
    b"()" * 100_000, b"(" * 100_000 + b")" * 100_000, b"{}" * 100_000, b"f(a)," * 40_000,
    b'""' * 100_000, b"`${" * 50_000 + b"}`" * 50_000, b"=/a/" * 50_000,
], ids=["bundle", "parens", "nested", "braces", "calls", "strings", "templates", "regex"])
def test_what_the_skeleton_allocates_stays_under_its_own_bound(source: bytes) -> None:
    """`BYTES_PER_BYTE` and `BYTES_PER_BRACKET` are what the budget check charges before any array
    is made: measured here on real and crafted input, so the name pass's budget holds."""
    brackets = sum(source.count(b) for b in (b"(", b")", b"{", b"}"))
    tracemalloc.start()
    try:
        reduced = skeleton(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reduced is not None
    assert peak <= len(source) * BYTES_PER_BYTE + brackets * BYTES_PER_BRACKET


def test_the_skeleton_is_not_made_where_the_budget_cannot_hold_its_arrays() -> None:
    source = b"f(a);" * 100_000
    need = len(source) * BYTES_PER_BYTE + source.count(b"(") * 2 * BYTES_PER_BRACKET
    assert skeleton(source, need + 1) is not None
    assert skeleton(source, need - 1) is None
    assert skeleton(source, len(source) * BYTES_PER_BYTE - 1) is None
