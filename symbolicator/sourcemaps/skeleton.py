"""The skeleton of a minified file: what the function-name pass needs, at a fraction of the parse.

Parsing a 3.6 MB bundle with tree-sitter costs about 1 s, 1.5× what `symbolic`'s whole
conversion takes, and almost all of it is spent on code that holds no function: argument lists,
conditions and the bodies of leaf functions. The name pass only needs the scopes (`function`,
`=>`, `class`, methods) with their extents and the syntax around them (bindings, keys, owners).
So before the parse, every bracketed group that holds none of that is blanked:

- a brace group `{…}` whose inside holds no `{`, `function`, `class` or `=>` becomes `{   }`,
  which is valid wherever the group was (empty block, object, class body, pattern, `switch`);
- a parenthesised group `(…)` with the same property becomes `(0   )`, except where the group
  is not an expression: the head of a `for`, parameters (followed by `=>` or `{`), an
  assignment target (followed by `=`, `+=`, `++`…).

Every byte keeps its offset and every newline stays, so rows, columns and the extents of the
remaining nodes are those of the original, and names are read from the original bytes. Blanking
only removes tokens inside balanced groups, so the tree outside them is the one the original
parses to: the function scopes found, their extents and their names are the same (checked on
every bundle of the fixtures, `tests/test_skeleton.py`), for half the parse and half the tree.

Finding the groups needs the lexical structure: strings, comments, template literals (with
nested `${…}`) and regular-expression literals are skipped by one sequential pass that only
stops at quotes, backticks and slashes (a few thousand in a bundle); brackets are then matched
with numpy. A `/` starts a regular expression where an expression may start (after an operator,
`(`, `,`, `;`, a keyword such as `return`), as every JavaScript tokenizer without a parser
decides. Anything this pass cannot read (an unterminated string, unbalanced brackets) gives no
skeleton; a guess that was wrong shows as a syntax error in the skeleton's tree, and the caller
then parses the original. (A file whose own syntax error sits inside a blanked group parses
cleanly as a skeleton: its scopes are then those around the error, where tree-sitter's recovery
of the whole file may lose some.)
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

# The next token the sequential pass must read: a whole string, or the start of a template, a
# comment, a regular expression or a division; inside a `${…}` also its braces.
_STRING = rb'"[^"\\\n\r]*(?:\\[\s\S][^"\\\n\r]*)*"|\'[^\'\\\n\r]*(?:\\[\s\S][^\'\\\n\r]*)*\''
_NEXT = re.compile(_STRING + rb"|[\"'`/]")
_NEXT_IN_TEMPLATE = re.compile(_STRING + rb"|[\"'`/{}]")
# The rest of a template literal from just after its backtick (or a substitution's `}`): text up
# to the closing backtick, or to the next `${`.
_TEMPLATE_PIECE = re.compile(rb"[^`\\$]*(?:(?:\\[\s\S]|\$(?!\{))[^`\\$]*)*(`|\$\{)")
_REGEX = re.compile(rb"/(?:[^/\\\[\n\r]|\\[^\n\r]|\[(?:[^\]\\\n\r]|\\[^\n\r])*\])+/[A-Za-z]*")
_BLOCK_COMMENT_END = re.compile(rb"\*/")
_LINE_END = re.compile(rb"[\n\r]|$")
# After these a `/` starts an expression, so a regular expression (after `}` too: it ends a block
# far more often than an object literal divided by something).
_BEFORE_REGEX = frozenset(b"(,=:[!&|?{};~+-*%<>^")
_KEYWORDS_BEFORE_REGEX = frozenset({
    b"return", b"typeof", b"instanceof", b"in", b"of", b"new", b"delete", b"void", b"throw",
    b"case", b"do", b"else", b"yield", b"await",
})
_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")
_SPACE = frozenset(b" \t\n\r\f\v")
# Inside a group, any of these keeps it: a scope may be there (`=>` is found with numpy).
_SCOPE_WORDS = (re.compile(rb"function"), re.compile(rb"class"))
_FOR_HEAD = re.compile(rb"for\s*(?:await\s*)?\(")

_OPEN_PAREN, _CLOSE_PAREN, _OPEN_BRACE, _CLOSE_BRACE, _BACKTICK, _SLASH = b"(){}`/"
_DELTA = np.zeros(256, dtype=np.int8)
_DELTA[[_OPEN_PAREN, _OPEN_BRACE]] = 1
_DELTA[[_CLOSE_PAREN, _CLOSE_BRACE]] = -1
_COMPOUND = np.frombuffer(b"+-*/%&|^", dtype=np.uint8)
_DOUBLED_COMPOUND = np.frombuffer(b"*<>&|?", dtype=np.uint8)
_STEP = np.frombuffer(b"+-", dtype=np.uint8)
_SPACES = np.zeros(256, dtype=bool)
_SPACES[list(_SPACE)] = True

IntArray = npt.NDArray[np.int32]
# What `skeleton` allocates at most: per byte of source (its copies and masks) and per bracket
# (positions, depths, the matching sort), measured with tracemalloc on bundles and on crafted
# files of nothing but brackets, strings or templates (`tests/test_skeleton.py`).
BYTES_PER_BYTE = 8
BYTES_PER_BRACKET = 24


def skeleton(source: bytes, max_memory: int | None = None) -> bytes | None:
    """`source` with every group that holds no scope blanked; None when it cannot be read, or when
    its arrays would take more than `max_memory` bytes (checked before they are made)."""
    n = len(source)
    if max_memory is not None and n * BYTES_PER_BYTE > max_memory:
        return None
    code = _without_literals(source)
    if code is None:
        return None
    data = np.frombuffer(code, dtype=np.uint8)
    delta = _DELTA[data]
    at = np.flatnonzero(delta).astype(np.int32)
    if max_memory is not None and n * BYTES_PER_BYTE + len(at) * BYTES_PER_BRACKET > max_memory:
        return None
    groups = _groups(data, delta[at], at)
    del data, delta, at, code
    if groups is None:
        return None
    opens, closes, has_brace = groups
    raw = np.frombuffer(source, dtype=np.uint8)
    keep = _holds_scope(source, raw, opens, closes) | has_brace
    paren = raw[opens] == _OPEN_PAREN
    keep |= paren & _not_expressions(source, raw, opens, closes)
    keep |= closes - opens < 2
    keep |= paren & _SPACES[raw[np.minimum(opens + 1, n - 1)]]
    opens, closes, paren = opens[~keep], closes[~keep], paren[~keep]
    if len(opens) == 0:
        return source
    order = np.argsort(opens, kind="stable")
    opens, closes, paren = opens[order], closes[order], paren[order]
    reach = np.maximum.accumulate(closes)
    outermost = np.ones(len(opens), dtype=bool)
    outermost[1:] = opens[1:] > reach[:-1]
    opens, closes, paren = opens[outermost], closes[outermost], paren[outermost]
    edges = np.zeros(n + 1, dtype=np.int8)
    edges[opens + 1] = 1
    edges[closes] -= 1
    blank = np.cumsum(edges[:-1], dtype=np.int8).view(bool)
    del edges
    blank &= raw != ord("\n")
    out = raw.copy()
    out[blank] = ord(" ")
    del blank
    out[opens[paren] + 1] = ord("0")
    return out.tobytes()


def _without_literals(source: bytes) -> bytearray | None:
    """`source` with strings, comments, template text and regular expressions zeroed, so only
    code brackets are left; None when one of them does not end."""
    code = bytearray(source)
    substitutions: list[int] = []  # open braces inside each `${` being read
    pos = 0
    next_token, next_in_template = _NEXT.search, _NEXT_IN_TEMPLATE.search
    while True:
        m = (next_in_template if substitutions else next_token)(source, pos)
        if m is None:
            if substitutions:
                return None
            return code
        at, pos = m.span()
        char = source[at]
        if pos - at > 1:  # a whole string
            code[at:pos] = bytes(pos - at)
        elif char == _BACKTICK or (char == _CLOSE_BRACE and not substitutions[-1]):
            if char == _CLOSE_BRACE:
                substitutions.pop()
            end = _template_piece(source, at + 1, substitutions)
            if end is None:
                return None
            code[at:end] = bytes(end - at)
            pos = end
        elif char == _OPEN_BRACE:
            substitutions[-1] += 1
        elif char == _CLOSE_BRACE:
            substitutions[-1] -= 1
        elif char == _SLASH:
            end = _slash(source, at)
            if end is None:
                return None
            if end > pos:
                code[at:end] = bytes(end - at)
            pos = end
        else:
            return None  # a quote that starts no string: it does not end on its line


def _template_piece(source: bytes, at: int, substitutions: list[int]) -> int | None:
    """Where the template text starting at `at` ends: after its backtick, or after a `${`
    (then a substitution is open)."""
    m = _TEMPLATE_PIECE.match(source, at)
    if m is None:
        return None
    if m.group(1) == b"${":
        substitutions.append(0)
    return m.end()


def _slash(source: bytes, at: int) -> int | None:
    """The end of the comment or regular expression starting at `at`, or `at + 1` for a division."""
    following = source[at + 1 : at + 2]
    if following == b"/":
        return _LINE_END.search(source, at).start()  # type: ignore[union-attr]
    if following == b"*":
        end = _BLOCK_COMMENT_END.search(source, at + 2)
        return None if end is None else end.end()
    if not _regex_may_start(source, at):
        return at + 1
    m = _REGEX.match(source, at)
    return None if m is None else m.end()


def _regex_may_start(source: bytes, at: int) -> bool:
    before = at - 1
    while before >= 0 and source[before] in _SPACE:
        before -= 1
    if before < 0:
        return True
    char = source[before]
    if char in _BEFORE_REGEX:
        return True
    if char not in _WORD:
        return False
    start = before
    while start > 0 and source[start - 1] in _WORD:
        start -= 1
    return source[start : before + 1] in _KEYWORDS_BEFORE_REGEX


def _groups(data: npt.NDArray[np.uint8], steps: npt.NDArray[np.int8],
            at: IntArray) -> tuple[IntArray, IntArray, npt.NDArray[np.bool_]] | None:
    """Matched `(…)` and `{…}` of the code (`steps` +1/-1 at the brackets' offsets `at`): open
    and close offsets, and whether a `{` is inside; None when they do not balance."""
    if len(at) == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, bool)
    depth = np.cumsum(steps, dtype=np.int32)
    if depth[-1] != 0 or depth.min() < 0:
        return None
    opening = steps > 0
    depth[~opening] += 1  # a pair's open and close now share a level
    order = np.argsort(depth, kind="stable")
    del depth
    first, second = order[0::2], order[1::2]
    if not (opening[first].all() and not opening[second].any()):
        return None
    kinds = data[at]
    if not np.array_equal(kinds[first] == _OPEN_PAREN, kinds[second] == _CLOSE_PAREN):
        return None
    braces = np.cumsum(kinds == _OPEN_BRACE, dtype=np.int32)
    has_brace = braces[second - 1] > braces[first]
    return at[first], at[second], has_brace


def _holds_scope(source: bytes, raw: npt.NDArray[np.uint8], opens: IntArray, closes: IntArray) -> npt.NDArray[np.bool_]:
    """Whether `function`, `class` or `=>` occurs inside each group (anywhere, even in a string:
    keeping a group is always safe)."""
    arrows = np.flatnonzero((raw[:-1] == ord("=")) & (raw[1:] == ord(">")))
    words = [np.fromiter((m.start() for m in word.finditer(source)), dtype=np.int64) for word in _SCOPE_WORDS]
    found = np.sort(np.concatenate([arrows, *words]))
    return np.searchsorted(found, closes) > np.searchsorted(found, opens + 1)


def _not_expressions(source: bytes, raw: npt.NDArray[np.uint8], opens: IntArray,
                     closes: IntArray) -> npt.NDArray[np.bool_]:
    """Parenthesised groups that may not be expressions: `for` heads, parameters (followed by
    `=>` or `{`), assignment targets (followed by `=`, `+=`, `++`…), and, to be safe, any group
    followed by a space."""
    last = len(raw) - 1
    b1, b2, b3, b4 = (np.where(closes + k <= last, raw[np.minimum(closes + k, last)], 0) for k in (1, 2, 3, 4))
    eq = ord("=")
    doubled = b1 == b2
    result: npt.NDArray[np.bool_] = _SPACES[b1] | (b1 == ord("{"))
    result |= (b1 == eq) & (b2 != eq)
    result |= np.isin(b1, _COMPOUND) & (b2 == eq)
    result |= np.isin(b1, _DOUBLED_COMPOUND) & doubled & (b3 == eq)
    result |= (b1 == ord(">")) & doubled & (b3 == ord(">")) & (b4 == eq)
    result |= np.isin(b1, _STEP) & doubled
    heads = np.fromiter((m.end() - 1 for m in _FOR_HEAD.finditer(source)
                         if not (m.start() and source[m.start() - 1] in _WORD)), dtype=np.int64)
    result |= np.isin(opens, heads)
    return result
