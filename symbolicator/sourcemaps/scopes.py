"""Original function names from the scopes of a minified file.

A source map's `names` only tell what identifier sits at a position; a stack frame wants the
*enclosing function*. So we parse the minified source with tree-sitter (JavaScript grammar),
collect every function-like scope with its extent, and name it from the tokens that carry a
name in the original program — the function's own identifier, the class it belongs to, the
variable or property it is assigned to — each mapped back through the source map.

Why tokens map the way they do:
- identifiers are mangled by minifiers, which record the original in the map's `names`, so an
  identifier's name is `resolve(pos)`; with no mapping name the minifier kept it, so its text;
- property keys and method names are not mangled by default, so their minified text is the
  original; mapping names at keys are ignored because terser attaches neighbouring names
  there. `#private` names can be mangled (terser does), so they are resolved at the `#` or
  just after it, else kept as written (terser's own mappings for them land further off);
- class *expressions* take their binding's name first: esbuild turns `class Shop {}` into
  `var e = class t {…}` where `e` maps to `Shop` and `t` to `_Shop`;
- names minifiers drop altogether (an unreferenced `function increment(` name, the binding of
  an arrow inlined into `return t=>…`) are read from the original source line the scope's
  first token maps to, when the caller passes `original`.

The naming convention is the one of `js-source-scopes`, which Sentry's Symbolicator shows, and
is defined once, in `NAMING`; the test expectations are computed with the same templates from
the original source by the TypeScript compiler API (`tests/fixtures/js_scopes/`). A class is a
scope of its own named `new Class` (constructor and field initialisers run there, and V8 prints
`new Class` for them); methods are `Class.method`, accessors `get Class.x` / `set Class.x`.

Positions are 0-based lines and 0-based columns in UTF-16 code units (what engines and source
maps count); `end` is exclusive. Tree-sitter reports UTF-8 byte columns: lines holding
non-ASCII text are converted.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import tree_sitter_javascript
from tree_sitter import Language, Node, Parser, Query, QueryCursor

Resolve = Callable[[int, int], "str | None"]
OriginalLine = Callable[[int, int], "tuple[str, int] | None"]

NAMING: dict[str, str] = {
    "member": "{owner}.{key}",
    "getter": "get {name}",
    "setter": "set {name}",
    "class": "new {name}",
    "computed_key": "<computed>",
}

_SCOPE_QUERY = """[
  (function_declaration) (generator_function_declaration) (function_expression)
  (generator_function) (arrow_function) (method_definition) (class_declaration) (class)
] @scope"""
_CLASSES = {"class_declaration", "class"}
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_ASTRAL = re.compile(r"[\U00010000-\U0010ffff]")
_LOOK_BACK = 200
_OWN_NAME = re.compile(r"(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)\s*\(")
_BOUND_TO = re.compile(
    r"(?:\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*(?::[^=;]*)?|([A-Za-z_$][\w$.]*)\s*)"
    r"=\s*(?:async\s*)?\(?\s*$"
)


@dataclass(frozen=True, slots=True)
class ScopeName:
    """A function-like scope of the minified file.

    start/end: (line, column), 0-based, columns in UTF-16 code units, end exclusive.
    name: the original name per `NAMING`, None for anonymous scopes (callbacks, IIFEs).
    """

    start_line: int
    start_col: int
    end_line: int
    end_col: int
    name: str | None

    def contains(self, line: int, col: int) -> bool:
        return (self.start_line, self.start_col) <= (line, col) < (self.end_line, self.end_col)


@lru_cache(maxsize=1)
def _language() -> tuple[Parser, Query]:
    language = Language(tree_sitter_javascript.language())
    return Parser(language), Query(language, _SCOPE_QUERY)


class _Columns:
    """Converts tree-sitter's (row, byte column) to (row, UTF-16 column), lazily per row."""

    def __init__(self, source: bytes) -> None:
        self._source = source
        self._ascii = source.isascii()
        self._line_starts: list[int] | None = None
        self._rows: dict[int, tuple[list[int], list[int]]] = {}

    def utf16(self, row: int, byte_col: int) -> int:
        if self._ascii:
            return byte_col
        ends, deltas = self._row(row)
        i = bisect.bisect_right(ends, byte_col)
        return byte_col - (deltas[i - 1] if i else 0)

    def _row(self, row: int) -> tuple[list[int], list[int]]:
        cached = self._rows.get(row)
        if cached is not None:
            return cached
        if self._line_starts is None:
            self._line_starts = [0] + [m.end() for m in re.finditer(b"\n", self._source)]
        start = self._line_starts[row]
        end = self._line_starts[row + 1] if row + 1 < len(self._line_starts) else len(self._source)
        line = self._source[start:end].decode("utf-8", "replace")
        ends: list[int] = []
        deltas: list[int] = []
        byte_pos = 0
        delta = 0
        last = 0
        for m in _NON_ASCII.finditer(line):
            ch = m.group()
            byte_pos += len(line[last : m.start()].encode("utf-8")) + len(ch.encode("utf-8"))
            last = m.end()
            delta += len(ch.encode("utf-8")) - (2 if ord(ch) > 0xFFFF else 1)
            ends.append(byte_pos)
            deltas.append(delta)
        self._rows[row] = (ends, deltas)
        return ends, deltas


class _Namer:
    """Names one scope node from its own tokens and its syntactic context."""

    def __init__(self, resolve: Resolve, columns: _Columns, original: OriginalLine | None) -> None:
        self._resolve = resolve
        self._columns = columns
        self._original = original

    def scope(self, node: Node) -> str | None:
        kind = node.type
        if kind in _CLASSES:
            name = self._class_name(node)
            return NAMING["class"].format(name=name) if name else None
        if kind == "method_definition":
            return self._method(node)
        own = node.child_by_field_name("name")
        if own is not None and kind != "arrow_function":
            return self._identifier(own)
        if kind == "arrow_function":
            return self._binding(node) or self._from_original(node, _BOUND_TO)
        return (
            self._from_original(node, _OWN_NAME)
            or self._binding(node)
            or self._from_original(node, _BOUND_TO)
        )

    def _from_original(self, node: Node, pattern: re.Pattern[str]) -> str | None:
        """Reads a name the minifier dropped (`function increment(`, `const lookup =`) in the
        original line the scope's first token maps to."""
        if self._original is None:
            return None
        row, byte_col = node.start_point
        found = self._original(row, self._columns.utf16(row, byte_col))
        if found is None:
            return None
        line, col16 = found
        col = _utf16_to_index(line, col16)
        if pattern is _OWN_NAME:
            m = pattern.match(line, col)
        else:
            m = pattern.search(line[max(0, col - _LOOK_BACK) : col].rstrip())
        return next((g for g in m.groups() if g), None) if m else None

    def _method(self, node: Node) -> str | None:
        key = self._key(node.child_by_field_name("name"))
        parent = node.parent
        owner: str | None = None
        if parent is not None and parent.type == "class_body" and parent.parent is not None:
            owner = self._class_name(parent.parent)
            if key == "constructor":
                return NAMING["class"].format(name=owner) if owner else None
        elif parent is not None and parent.type == "object":
            owner = self._binding(parent)
        name = _member(owner, key)
        if name is None:
            return None
        for child in node.children:
            if child.type == "get":
                return NAMING["getter"].format(name=name)
            if child.type == "set":
                return NAMING["setter"].format(name=name)
            if child.type in ("formal_parameters", "property_identifier"):
                break
        return name

    def _class_name(self, node: Node) -> str | None:
        own = node.child_by_field_name("name")
        if node.type == "class":
            bound = self._binding(node)
            if bound:
                return bound
        return self._identifier(own) if own is not None else None

    def _binding(self, node: Node) -> str | None:
        """The name a function/class/object expression is bound to, from its parent."""
        child, parent = node, node.parent
        while parent is not None and parent.type == "parenthesized_expression":
            child, parent = parent, parent.parent
        if parent is None:
            return None
        kind = parent.type
        if kind == "variable_declarator" and _is_field(parent, "value", child):
            return self._target(parent.child_by_field_name("name"))
        if kind in ("assignment_expression", "augmented_assignment_expression") and _is_field(
            parent, "right", child
        ):
            return self._target(parent.child_by_field_name("left"))
        if kind == "pair" and _is_field(parent, "value", child):
            obj = parent.parent
            owner = self._binding(obj) if obj is not None and obj.type == "object" else None
            return _member(owner, self._key(parent.child_by_field_name("key")))
        if kind == "field_definition" and _is_field(parent, "value", child):
            body = parent.parent
            cls = body.parent if body is not None else None
            owner = self._class_name(cls) if cls is not None else None
            return _member(owner, self._key(parent.child_by_field_name("property")))
        if kind == "assignment_pattern" and _is_field(parent, "right", child):
            return self._target(parent.child_by_field_name("left"))
        return None

    def _target(self, node: Node | None) -> str | None:
        """An assignment target: `x`, `a.b.c`, `this.x`; patterns give no name."""
        if node is None:
            return None
        if node.type == "identifier":
            return self._identifier(node)
        if node.type == "member_expression":
            obj = node.child_by_field_name("object")
            prop = node.child_by_field_name("property")
            owner = self._target(obj) if obj is not None else None
            if obj is not None and obj.type == "this":
                owner = "this"
            return _member(owner, self._key(prop))
        return None

    def _identifier(self, node: Node) -> str | None:
        mapped = self._resolve_at(node)
        return mapped if mapped else _text(node)

    def _key(self, node: Node | None) -> str | None:
        """A property key: minifiers keep them, so the text; `#private` names are mangled."""
        if node is None:
            return None
        kind = node.type
        if kind == "computed_property_name":
            return NAMING["computed_key"]
        if kind == "string":
            return _text(node)[1:-1] or None
        if kind == "private_property_identifier":
            row, byte_col = node.start_point
            col = self._columns.utf16(row, byte_col)
            mapped = self._resolve(row, col) or self._resolve(row, col + 1)
            if mapped:
                return mapped if mapped.startswith("#") else "#" + mapped
        return _text(node)

    def _resolve_at(self, node: Node) -> str | None:
        row, byte_col = node.start_point
        return self._resolve(row, self._columns.utf16(row, byte_col))


def _utf16_to_index(line: str, col16: int) -> int:
    """Only characters outside the BMP count twice in UTF-16: subtract those before col16."""
    astral = _astral_positions(line)
    return col16 - bisect.bisect_left(astral, col16) if astral else col16


@lru_cache(maxsize=256)
def _astral_positions(line: str) -> tuple[int, ...]:
    """UTF-16 positions of the non-BMP characters of a line (cached: str hashes are cached,
    and a huge minified original line is asked about once per scope)."""
    if line.isascii():
        return ()
    positions: list[int] = []
    for m in _ASTRAL.finditer(line):
        positions.append(m.start() + len(positions))
    return tuple(positions)


def _is_field(parent: Node, field: str, child: Node) -> bool:
    value = parent.child_by_field_name(field)
    return value is not None and value.id == child.id


def _member(owner: str | None, key: str | None) -> str | None:
    if key is None:
        return None
    return NAMING["member"].format(owner=owner, key=key) if owner else key


def _text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def scope_names(
    minified_source: str, resolve: Resolve, original: OriginalLine | None = None
) -> list[ScopeName]:
    """Every function-like scope of `minified_source`, sorted by start, outer before inner.

    `resolve(line0, utf16_col0)` returns the map's original `names` entry of the mapping that
    starts exactly at that minified position, or None. The optional `original(line0,
    utf16_col0)` returns (text of the original source line, UTF-16 column in it) for the
    mapping starting exactly there, or None: with it, names that minifiers drop (unreferenced
    function-expression names, bindings of inlined arrows) are read from the original source.
    Syntax errors do not stop extraction: tree-sitter recovers and the scopes it still
    recognises are returned. A leading byte-order mark is not counted, as engines skip it.
    """
    parser, query = _language()
    source = minified_source.removeprefix("\ufeff").encode("utf-8")
    tree = parser.parse(source)
    columns = _Columns(source)
    namer = _Namer(resolve, columns, original)
    nodes = QueryCursor(query).captures(tree.root_node).get("scope", [])
    nodes.sort(key=lambda n: (n.start_byte, -n.end_byte))
    scopes: list[ScopeName] = []
    for node in nodes:
        (srow, scol), (erow, ecol) = node.start_point, node.end_point
        scopes.append(
            ScopeName(
                srow, columns.utf16(srow, scol), erow, columns.utf16(erow, ecol), namer.scope(node)
            )
        )
    return scopes


def innermost(scopes: Sequence[ScopeName], line0: int, col0: int) -> ScopeName | None:
    """The innermost scope containing (line0, col0) in `scopes` as `scope_names` sorts them."""
    pos = (line0, col0)
    i = bisect.bisect_right(scopes, pos, key=lambda s: (s.start_line, s.start_col))
    for j in range(i - 1, -1, -1):
        scope = scopes[j]
        if pos < (scope.end_line, scope.end_col):
            return scope
    return None
