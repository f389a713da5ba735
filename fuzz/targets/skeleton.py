"""`skeleton`: a minified file's skeleton (`sourcemaps/skeleton.py`), differential against the whole parse.

The skeleton blanks the bracketed groups that hold no function before tree-sitter parses the
file; it may only change the cost. So beyond the crash contract, for every input:
- the skeleton (when there is one) has the input's length and its newlines at the same offsets;
- where the whole file parses without a syntax error, `collect_scopes` through the skeleton and
  through the whole file give the same scopes, extents and names (names resolved by stubs that
  record each name token's position, so a different tree shows as a different answer). A
  syntax error inside a blanked group is blanked with it: there the skeleton keeps the structure
  around the error where tree-sitter's recovery of the whole file may lose some of it, so only
  the crash contract applies.

Inputs: the fixtures' bundles and originals, cuts of them, and code made of the tokens the
skeleton's lexing decides on: quotes and escapes, template literals with nested `${…}`,
comments, regular expressions against divisions, `for` heads, arrows, parameters, assignment
targets, non-ASCII text.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fuzz.contract import Violation
from symbolicator.sourcemaps.scopes import ScopeName, _parser, collect_scopes, resolve_scopes
from symbolicator.sourcemaps.skeleton import skeleton

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

_FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
_PIECES = [
    "function f(a,b){return g(a+b)}", "x=/[{(]\"'`/g.test(y);", "a=b/c/d;", "`t${u({v:1})}${`n${w}`}`",
    "/* { ( ` */", "// } ) '\n", "\"s\\\"{\"", "'\\\\'", "for(let i=0;i<n;i++)g(i);", "for(const[a,b]of c)h(a);",
    "(([a,b],{c})=>a)", "(a)=1;", "(b)+=2;", "(c)++;", "(d)>>>=1;", "async(a)=>a;", "if(a)b();else c();",
    "while(f(x))y();", "f({m(){return 1}});", "class A{x=1;static y=f(2);#p(){}}", "export{a as b};",
    "return/re/.test(s);", "}", "{", "(", ")", "\n", " ", ";", "x=(1,2)/3;", "z=a?.(b);", "new X(1);",
    "o={get p(){return 1},set p(v){}};", "if(x)/re{/.test(y);", "é", "\U0001f600", "a=>", "=>", "function",
    "class", "${", "`", "/", "\\", "'", "\"", "switch(a){case 1:f()}", "try{a()}catch(e){b()}finally{c()}",
    "label:{break label}", "a=b=>({c:d});", "for await(const x of y)z(x);", "do{a()}while(b(c));",
]


def _scopes(data: bytes, use_skeleton: bool) -> list[ScopeName]:
    pending = collect_scopes(data, use_skeleton=use_skeleton)
    return resolve_scopes(pending, lambda row, col: f"@{row}:{col}", lambda row, col: (f"function f{row}_{col}(", 0))


def run(data: bytes) -> None:
    reduced = skeleton(data)
    if reduced is not None:
        if len(reduced) != len(data):
            raise Violation("wrong", f"the skeleton has {len(reduced)} bytes, the input {len(data)}")
        if [i for i, b in enumerate(reduced) if b == 10] != [i for i, b in enumerate(data) if b == 10]:
            raise Violation("wrong", "the skeleton moved a newline")
    through, whole = _scopes(data, True), _scopes(data, False)
    if through != whole and not _parser("javascript").parse(data).root_node.has_error:
        first = next((i for i, (a, b) in enumerate(zip(through, whole, strict=False)) if a != b),
                     min(len(through), len(whole)))
        raise Violation("wrong", f"scope {first} differs: skeleton {through[first:first + 1]}, "
                                 f"whole {whole[first:first + 1]} ({len(through)} vs {len(whole)} scopes)")


def _files() -> list[bytes]:
    found = [p.read_bytes() for pattern in ("js_scopes/src/*.js", "js_scopes/out/*/*.min.js", "js/out/*/*.js",
                                             "rn/src/*.js", "js_dart/out/*.js")
             for p in sorted(_FIXTURES.glob(pattern))]
    return [data for data in found if len(data) < 200_000]


def inputs() -> SearchStrategy[bytes]:
    from hypothesis import strategies as st

    files = _files()
    code = st.lists(st.one_of(st.sampled_from(_PIECES), st.text(alphabet="ab0(){}[]/`'\"\\$=>;,.\n ", max_size=6)),
                    max_size=40).map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass"))
    cut = st.tuples(st.sampled_from(files), st.floats(0, 1), st.floats(0, 1)).map(
        lambda c: c[0][int(len(c[0]) * min(c[1], c[2])):int(len(c[0]) * max(c[1], c[2]))])
    return st.one_of(code, cut, st.sampled_from(files), st.binary(max_size=64))


def seeds() -> dict[str, bytes]:
    """Small fixture bundles and originals, and the pieces above joined."""
    out = {f"file-{i}": data for i, data in enumerate(_files()) if len(data) < 20_000}
    out["pieces"] = "".join(_PIECES).encode()
    return out
