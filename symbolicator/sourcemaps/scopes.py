"""Original function names from the scopes of a minified file.

A source map's `names` only tell what identifier sits at a position; a stack frame wants the
*enclosing function*. So we parse the minified source with tree-sitter (JavaScript grammar; in
fact the file's skeleton, `skeleton.py`, where groups that hold no function are blanked: half
the parse, the same scopes), collect every function-like scope with its extent, and name it
from the tokens that carry a name in the original program — the function's own identifier,
the class it belongs to, the variable or property it is assigned to — each mapped back through
the source map.

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
  first token maps to, when the caller passes `original`; so is a function expression's
  binding (`handlers.onClick = function`), before the minified one: terser moves such code
  into `const a=function…` and maps `a` to `handlers`. A mangled `#private` name whose mapping
  carries no name (terser) is read there too.

The naming convention is the one of `js-source-scopes`, which Sentry's Symbolicator shows, and
is defined once, in `NAMING`; the test expectations are computed with the same templates from
the original source by the TypeScript compiler API (`tests/fixtures/js_scopes/`). A class is a
scope of its own named `new Class` (constructor and field initialisers run there, and V8 prints
`new Class` for them); methods are `Class.method`, accessors `get Class.x` / `set Class.x`.

Positions are 0-based lines and 0-based columns in UTF-16 code units (what engines and source
maps count); `end` is exclusive. Tree-sitter reports UTF-8 byte columns: lines holding
non-ASCII text are converted.

The pass is bounded in memory (issue 15): a syntax tree costs ~100-150 bytes per token of real
minifier output (≈55× the file's size) and up to ~390 per token of crafted input (≈390×), all of
it alive until the walk ends. So `collect_scopes(…, max_memory=N)` first estimates the tree from a
token count (`estimated_cost`, one vectorised pass, the real-output rate) and refuses at once
above N; a file under the estimate is parsed through a read callback, 64 KiB at a time, that
watches the process's RSS and ends the input early once it grew by N, and the walk checks
again. Either refusal raises `NamesOverBudget`: the caller converts positions without names
and marks the frames.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, NamedTuple, TypeAlias

import numpy as np
import tree_sitter_javascript
import tree_sitter_typescript
from tree_sitter import Language, Node, Parser, Tree

from symbolicator.errors import NamesOverBudget
from symbolicator.sourcemaps.skeleton import skeleton

Resolve = Callable[[int, int], "str | None"]
OriginalLine = Callable[[int, int], "tuple[str, int] | None"]

NAMING: dict[str, str] = {
    "member": "{owner}.{key}",
    "getter": "get {name}",
    "setter": "set {name}",
    "class": "new {name}",
    "computed_key": "<computed>",
}

SCOPE_TYPES = frozenset({
    "function_declaration", "generator_function_declaration", "function_expression",
    "generator_function", "arrow_function", "method_definition", "class_declaration", "class",
})
# Every scope owns one of these tokens: `function`, `=>`, `class`, or the `)` of a method's
# parameters before its body. Candidates inside strings or identifiers are discarded by the tree.
_SCOPE_TOKENS = re.compile(rb"=>|\)(?:\s|/\*.*?\*/|//[^\n]*)*\{|function|class", re.DOTALL)
# TypeScript puts a return type between a method's `)` and its body: there every `{` is a
# candidate (a body's `{` leads to its function through the `statement_block`).
_TS_SCOPE_TOKENS = re.compile(rb"=>|\{|function|class")
_CLASSES = {"class_declaration", "class", "abstract_class_declaration"}
# Expressions that only wrap a function without changing what it is bound to (TypeScript's
# `as`, `!`, `<T>x`, `satisfies`; parentheses in both languages).
_WRAPPERS = {"parenthesized_expression", "as_expression", "non_null_expression", "type_assertion",
             "satisfies_expression"}
_TS_SCOPE_TYPES = SCOPE_TYPES | {"abstract_class_declaration"}
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_ASTRAL = re.compile(r"[\U00010000-\U0010ffff]")
_LOOK_BACK = 200
_PRIVATE_NAME = re.compile(r"#[A-Za-z_$][\w$]*")
_OWN_NAME = re.compile(r"(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)\s*\(")
# `function NAME(params)`, a TypeScript return type allowed, just before a body's `{`.
_OWN_NAME_BEFORE = re.compile(r"(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)\s*(?:<[^()]*>)?\([^()]*\)"
                              r"\s*(?::[^(){};=]*)?$")
_BOUND_TO = re.compile(
    r"(?:\b(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*(?::[^=;]*)?|([A-Za-z_$][\w$.]*)\s*)"
    r"=\s*(?:async\s*)?\(?\s*$"
)


class ScopeName(NamedTuple):
    """A function-like scope of the minified file.

    start/end: (line, column), 0-based, columns in UTF-16 code units, end exclusive.
    name: the original name per `NAMING`, None for anonymous scopes (callbacks, IIFEs).
    A named tuple: a bundle has tens of thousands, and a frozen dataclass's `object.__setattr__`
    per field made building them a fifth of the name resolution.
    """

    start_line: int
    start_col: int
    end_line: int
    end_col: int
    name: str | None


# Tree growth per token of the source, measured with tree-sitter-javascript 0.25 (docs/security.md):
# 140 bytes on esbuild's TypeScript bundle, 95-130 on other minifier output. Crafted input reaches
# ~390 (`[,,,…]`, `a?a:a?a:…`): the estimate only saves parsing what surely does not fit; the RSS
# watch is the bound.
BYTES_PER_TOKEN = 150
_READ_CHUNK = 64 * 1024
_WALK_CHECK_EVERY = 4096
_WORD = np.zeros(256, dtype=bool)
_WORD[np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$", dtype=np.uint8)] = True
_WORD[0x80:] = True
_SPACE = np.zeros(256, dtype=bool)
_SPACE[np.frombuffer(b" \t\r\n\f\v", dtype=np.uint8)] = True
_COUNT_CHUNK = 4 * 1024 * 1024


def token_count(source: bytes) -> int:
    """An upper estimate of the tokens of `source`: identifier/number runs plus every other
    non-space byte (a multi-byte operator counts several times). In 4 MiB slices, so the
    temporaries stay small whatever the file's size."""
    count = 0
    previous_word = False
    for start in range(0, len(source), _COUNT_CHUNK):
        chunk = np.frombuffer(source, dtype=np.uint8, count=min(_COUNT_CHUNK, len(source) - start), offset=start)
        word = _WORD[chunk]
        count += int(word[0] and not previous_word) + int(np.count_nonzero(word[1:] & ~word[:-1]))
        count += int(np.count_nonzero(~word & ~_SPACE[chunk]))
        previous_word = bool(word[-1])
    return count


def estimated_cost(source: bytes) -> int:
    """Bytes the syntax tree of `source` is expected to take if it is real minifier output."""
    return token_count(source) * BYTES_PER_TOKEN


def _rss() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


_PAGE = os.sysconf("SC_PAGE_SIZE")


class _Guard:
    """Watches the process's growth while the tree is built and walked."""

    def __init__(self, max_memory: int | None) -> None:
        self.limit = None if max_memory is None else _rss() + max_memory
        self.stopped = False

    def over(self) -> bool:
        if self.limit is not None and not self.stopped and _rss() > self.limit:
            self.stopped = True
        return self.stopped

    def reader(self, source: bytes) -> Callable[[int, object], bytes]:
        """Tree-sitter's input callback: the source in slices, and an early end once over budget
        (the parser then closes what is open; the partial tree is discarded)."""
        view = memoryview(source)

        def read(offset: int, _point: object) -> bytes:
            if offset >= len(source) or self.over():
                return b""
            return bytes(view[offset : offset + _READ_CHUNK])

        return read


Grammar: TypeAlias = "Literal['javascript', 'typescript', 'tsx']"


@lru_cache(maxsize=3)
def _parser(grammar: Grammar = "javascript") -> Parser:
    if grammar == "typescript":
        return Parser(Language(tree_sitter_typescript.language_typescript()))
    if grammar == "tsx":
        return Parser(Language(tree_sitter_typescript.language_tsx()))
    return Parser(Language(tree_sitter_javascript.language()))


def grammar_for(path: str) -> Grammar:
    """The grammar of a source by its name: TypeScript's for `.ts`/`.mts`/`.cts`, TSX's for `.tsx`."""
    stem = path.split("?", 1)[0].split("#", 1)[0].lower()
    if stem.endswith(".tsx"):
        return "tsx"
    if stem.endswith((".ts", ".mts", ".cts")):
        return "typescript"
    return "javascript"


def scope_nodes(root: Node, source: bytes, guard: _Guard | None = None, grammar: Grammar = "javascript") -> list[Node]:
    """The function-like nodes of the tree, sorted by start, outer before inner.

    Why not a tree-sitter query: it visits every node of the tree (0.5 s on a 3.6 MB bundle),
    while asking the tree about the ~2 candidate tokens per scope costs a third of that.
    """
    javascript = grammar == "javascript"
    tokens, types = (_SCOPE_TOKENS, SCOPE_TYPES) if javascript else (_TS_SCOPE_TOKENS, _TS_SCOPE_TYPES)
    found: dict[int, Node] = {}
    for i, match in enumerate(tokens.finditer(source)):
        if guard is not None and i % _WALK_CHECK_EVERY == 0 and guard.over():
            raise NamesOverBudget("the function-name pass outgrew its memory budget while walking the tree")
        token = root.descendant_for_byte_range(match.start(), match.start() + 1)
        owner = token.parent if token is not None else None
        if owner is not None and owner.type in ("formal_parameters", "statement_block"):
            owner = owner.parent
        if owner is not None and owner.type in types:
            found[owner.id] = owner
    return sorted(found.values(), key=lambda n: (n.start_byte, -n.end_byte))


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


class _At:
    """An identifier: the map's original name at its position, else its own (unmangled) text."""

    __slots__ = ("row", "col", "text")

    def __init__(self, row: int, col: int, text: str) -> None:
        self.row, self.col, self.text = row, col, text

    def eval(self, resolve: Resolve, original: OriginalLine | None) -> str | None:
        return resolve(self.row, self.col) or self.text


class _Private(_At):
    """A `#private` key: mangled by some minifiers, so resolved at the `#` or just after it."""

    __slots__ = ()

    def eval(self, resolve: Resolve, original: OriginalLine | None) -> str | None:
        mapped = resolve(self.row, self.col) or resolve(self.row, self.col + 1)
        if mapped:
            return mapped if mapped.startswith("#") else "#" + mapped
        if original is None:
            return self.text
        for col in (self.col, self.col + 1):
            found = original(self.row, col)
            if found is not None:
                # terser maps its mangled `#r` to the original `#priceOf` without a name
                line, col16 = found
                m = _PRIVATE_NAME.match(line, _utf16_to_index(line, col16))
                if m:
                    return m.group()
        return self.text


class _Original:
    """A name read from the original source line the scope's first token maps to.

    A function's own name can also be read where its body's `{` maps, when no mapping starts on
    its first token: Closure Compiler maps no token of a function's head (it turns
    `async function runAll(){…}` + `runAll()` into `(async function(){…})()` and maps only from
    the `{`). The `{` must map to a `{` that ends `function NAME(…)` in the original line.
    """

    __slots__ = ("row", "col", "pattern", "body")

    def __init__(self, row: int, col: int, pattern: re.Pattern[str], body: tuple[int, int] | None = None) -> None:
        self.row, self.col, self.pattern, self.body = row, col, pattern, body

    def eval(self, resolve: Resolve, original: OriginalLine | None) -> str | None:
        found = original(self.row, self.col) if original is not None else None
        if found is None:
            return self._from_body(original)
        line, col16 = found
        col = _utf16_to_index(line, col16)
        if self.pattern is _OWN_NAME:
            m = self.pattern.match(line, col)
        else:
            before = line[max(0, col - _LOOK_BACK) : col].rstrip()
            m = self.pattern.search(before) if _may_bind(before) else None
        return next((g for g in m.groups() if g), None) if m else None


    def _from_body(self, original: OriginalLine | None) -> str | None:
        found = original(*self.body) if original is not None and self.body is not None else None
        if found is None:
            return None
        line, col16 = found
        col = _utf16_to_index(line, col16)
        if line[col : col + 1] != "{":
            return None
        m = _OWN_NAME_BEFORE.search(line, max(0, col - _LOOK_BACK), col)
        return m.group(1) if m else None


def _may_bind(before: str) -> bool:
    """Whether `before` (right-stripped) can end as `_BOUND_TO` needs (`=`, then optionally
    `async`, then optionally `(`): a cheap test from the end that spares the regex's search from
    every start position on most lines (a call's `f(` before an arrow). `rstrip` and `\\s` agree
    on what is whitespace."""
    if before.endswith("("):
        before = before[:-1].rstrip()
    if before.endswith("async") and before[:-5].rstrip().endswith("="):
        return True
    return before.endswith("=")


class _First:
    """The first of several candidate names that turns out non-empty."""

    __slots__ = ("parts",)

    def __init__(self, *parts: Name) -> None:
        self.parts = parts

    def eval(self, resolve: Resolve, original: OriginalLine | None) -> str | None:
        for part in self.parts:
            value = evaluate(part, resolve, original)
            if value:
                return value
        return None


class _Member:
    """`owner.key`, or the key alone when there is no owner."""

    __slots__ = ("owner", "key")

    def __init__(self, owner: Name, key: Name) -> None:
        self.owner, self.key = owner, key

    def eval(self, resolve: Resolve, original: OriginalLine | None) -> str | None:
        return _member(evaluate(self.owner, resolve, original), evaluate(self.key, resolve, original))


class _Format:
    """A `NAMING` template around a name (`new {name}`, `get {name}`); nothing without a name."""

    __slots__ = ("template", "name")

    def __init__(self, template: str, name: Name) -> None:
        self.template, self.name = template, name

    def eval(self, resolve: Resolve, original: OriginalLine | None) -> str | None:
        name = evaluate(self.name, resolve, original)
        return NAMING[self.template].format(name=name) if name else None


Name: TypeAlias = "str | None | _At | _Original | _First | _Member | _Format"


def evaluate(name: Name, resolve: Resolve, original: OriginalLine | None) -> str | None:
    if name is None or isinstance(name, str):
        return name
    return name.eval(resolve, original)


class _Namer:
    """Describes how to name one scope node from its own tokens and its syntactic context.

    The description is built while the syntax tree is alive and evaluated against the map
    afterwards, so the tree (the bulk of the memory) and the parsed map are never held at once.
    """

    def __init__(self, columns: _Columns, source: bytes) -> None:
        self._columns = columns
        self._source = source
        # An object literal's binding, by node id: every function-valued property of the object
        # asks for it (a bundle's tables of arrows ask thousands of times). Descriptions are
        # immutable, so the scopes share one.
        self._objects: dict[int, Name] = {}

    def _text(self, node: Node) -> str:
        """From the source bytes: `node.text` of a tree parsed through a read callback calls it again."""
        return self._source[node.start_byte : node.end_byte].decode("utf-8", "replace")

    def scope(self, node: Node) -> Name:
        kind = node.type
        if kind in _CLASSES:
            return _Format("class", self._class_name(node))
        if kind == "method_definition":
            return self._method(node)
        own = node.child_by_field_name("name")
        if own is not None and kind != "arrow_function":
            return self._identifier(own)
        if kind == "arrow_function":
            return _First(self._binding(node), self._from_original(node, _BOUND_TO))
        return _First(self._from_original(node, _OWN_NAME, node.child_by_field_name("body")),
                      self._from_original(node, _BOUND_TO), self._binding(node))

    def _from_original(self, node: Node, pattern: re.Pattern[str], body: Node | None = None) -> Name:
        """A name the minifier dropped (`function increment(`, `const lookup =`), read from the
        original line the scope's first token maps to (or, for an own name, its body's `{`)."""
        row, byte_col = node.start_point
        at = None
        if body is not None:
            body_row, body_col = body.start_point
            at = (body_row, self._columns.utf16(body_row, body_col))
        return _Original(row, self._columns.utf16(row, byte_col), pattern, at)

    def _method(self, node: Node) -> Name:
        key = self._key(node.child_by_field_name("name"))
        if key is None:
            return None
        parent = node.parent
        owner: Name = None
        if parent is not None and parent.type == "class_body" and parent.parent is not None:
            owner = self._class_name(parent.parent)
            if key == "constructor":
                return _Format("class", owner)
        elif parent is not None and parent.type == "object":
            owner = self._object_binding(parent)
        name = _Member(owner, key)
        for child in node.children:
            if child.type == "get":
                return _Format("getter", name)
            if child.type == "set":
                return _Format("setter", name)
            if child.type in ("formal_parameters", "property_identifier"):
                break
        return name

    def _class_name(self, node: Node) -> Name:
        own = node.child_by_field_name("name")
        named = self._identifier(own) if own is not None else None
        if node.type == "class":
            return _First(self._binding(node), named)
        return named

    def _binding(self, node: Node) -> Name:
        """The name a function/class/object expression is bound to, from its parent."""
        child, parent = node, node.parent
        while parent is not None and parent.type in _WRAPPERS:
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
            owner = self._object_binding(obj) if obj is not None and obj.type == "object" else None
            return _Member(owner, self._key(parent.child_by_field_name("key")))
        if kind in ("field_definition", "public_field_definition") and _is_field(parent, "value", child):
            body = parent.parent
            cls = body.parent if body is not None else None
            owner = self._class_name(cls) if cls is not None else None
            key = parent.child_by_field_name("property") or parent.child_by_field_name("name")
            return _Member(owner, self._key(key))
        if kind == "assignment_pattern" and _is_field(parent, "right", child):
            return self._target(parent.child_by_field_name("left"))
        if kind in ("required_parameter", "optional_parameter") and _is_field(parent, "value", child):
            return self._target(parent.child_by_field_name("pattern"))
        return None

    def _object_binding(self, node: Node) -> Name:
        """`_binding` of an object literal, once per object."""
        key = node.id
        if key not in self._objects:
            self._objects[key] = self._binding(node)
        return self._objects[key]

    def _target(self, node: Node | None) -> Name:
        """An assignment target: `x`, `a.b.c`, `this.x`; patterns give no name."""
        if node is None:
            return None
        if node.type == "identifier":
            return self._identifier(node)
        if node.type == "member_expression":
            obj = node.child_by_field_name("object")
            prop = node.child_by_field_name("property")
            owner: Name = None
            if obj is not None:
                owner = "this" if obj.type == "this" else self._target(obj)
            return _Member(owner, self._key(prop))
        return None

    def _identifier(self, node: Node) -> Name:
        row, byte_col = node.start_point
        return _At(row, self._columns.utf16(row, byte_col), self._text(node))

    def _key(self, node: Node | None) -> Name:
        """A property key: minifiers keep them, so the text; `#private` names are mangled."""
        if node is None:
            return None
        kind = node.type
        if kind == "computed_property_name":
            return NAMING["computed_key"]
        if kind == "string":
            return self._text(node)[1:-1] or None
        if kind == "private_property_identifier":
            row, byte_col = node.start_point
            return _Private(row, self._columns.utf16(row, byte_col), self._text(node))
        return self._text(node)


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


@dataclass(slots=True)
class PendingScope:
    """A scope whose name is described but not yet resolved against a source map.

    Not frozen: one per scope of a bundle, built while the syntax tree is alive, where a frozen
    dataclass's `object.__setattr__` per field took 2.5× as long (and a named tuple's 8 bytes
    more are held at the conversion's peak).
    """

    start_line: int
    start_col: int
    end_line: int
    end_col: int
    name: Name


def source_bytes(minified_source: str | bytes) -> bytes:
    """UTF-8 bytes of the source without a leading byte-order mark (engines skip it). ASCII
    bytes are used as they are; other bytes go through a decode so invalid UTF-8 counts as
    U+FFFD, as everywhere else."""
    if isinstance(minified_source, bytes):
        if minified_source.isascii():
            return minified_source
        minified_source = minified_source.decode("utf-8", "replace")
    return minified_source.removeprefix("\ufeff").encode("utf-8")


def collect_scopes(minified_source: str | bytes, max_memory: int | None = None,
                   grammar: Grammar = "javascript", *, use_skeleton: bool = True) -> list[PendingScope]:
    """Every function-like scope of `minified_source`, sorted by start, outer before inner.

    Names are left as descriptions (`resolve_scopes` evaluates them), so the syntax tree is
    gone before the caller parses the map. Syntax errors do not stop extraction: tree-sitter
    recovers and the scopes it still recognises are returned. With `max_memory`, raises
    `NamesOverBudget` rather than grow the process by more (see the module docstring).

    JavaScript is parsed as its skeleton (`skeleton.py`: the groups that hold no function
    blanked, half the parse) when the budget holds the skeleton's arrays (else the whole file); `use_skeleton=False`
    parses the whole file, which gives the same scopes (the tests and the fuzz target check it).
    """
    source = source_bytes(minified_source)
    parsed = source
    if use_skeleton and grammar == "javascript":
        parsed = skeleton(source, max_memory) or source
    if max_memory is not None:
        cost = estimated_cost(parsed)
        if cost > max_memory:
            raise NamesOverBudget(f"the syntax tree of this {len(source)}-byte file is estimated at {cost} bytes, "
                                  f"over the {max_memory}-byte budget of the function-name pass")
    guard = _Guard(max_memory)
    tree = _parse(parsed, guard, grammar)
    if parsed is not source and tree.root_node.has_error:
        del tree  # the skeleton was misread (or the file has an error): the original decides
        parsed = source
        tree = _parse(parsed, guard, grammar)
    if guard.stopped:
        raise NamesOverBudget(f"parsing outgrew the {max_memory}-byte budget of the function-name pass")
    columns = _Columns(source)
    namer = _Namer(columns, source)
    pending: list[PendingScope] = []
    utf16 = None if source.isascii() else columns.utf16  # ASCII: byte columns are UTF-16 columns
    for i, node in enumerate(scope_nodes(tree.root_node, parsed, guard, grammar)):
        if i % _WALK_CHECK_EVERY == 0 and guard.over():
            raise NamesOverBudget(f"naming scopes outgrew the {max_memory}-byte budget of the function-name pass")
        (srow, scol), (erow, ecol) = node.start_point, node.end_point
        if utf16 is not None:
            scol, ecol = utf16(srow, scol), utf16(erow, ecol)
        pending.append(PendingScope(srow, scol, erow, ecol, namer.scope(node)))
    return pending


def _parse(source: bytes, guard: _Guard, grammar: Grammar) -> Tree:
    parser = _parser(grammar)
    return parser.parse(guard.reader(source)) if guard.limit is not None else parser.parse(source)


def resolve_scopes(
    pending: Sequence[PendingScope], resolve: Resolve, original: OriginalLine | None = None
) -> list[ScopeName]:
    """Evaluate the names of `collect_scopes`' result against a source map.

    `resolve(line0, utf16_col0)` returns the map's original `names` entry of the mapping that
    starts exactly at that minified position, or None. The optional `original(line0,
    utf16_col0)` returns (text of the original source line, UTF-16 column in it) for the
    mapping starting exactly there, or None: with it, names that minifiers drop (unreferenced
    function-expression names, bindings of inlined arrows) are read from the original source.
    """
    return [ScopeName(p.start_line, p.start_col, p.end_line, p.end_col, evaluate(p.name, resolve, original))
            for p in pending]


def scope_names(
    minified_source: str | bytes, resolve: Resolve, original: OriginalLine | None = None
) -> list[ScopeName]:
    """`collect_scopes` then `resolve_scopes`: every scope with its original name."""
    return resolve_scopes(collect_scopes(minified_source), resolve, original)


def _own_text(line: int, col: int) -> None:
    """An original source is not minified: every name is its own text."""
    return None


def original_scopes(path: str, text: str, max_memory: int | None = None) -> list[ScopeName]:
    """Every function-like scope of an ORIGINAL source (`sourcesContent`), named from its own text.

    The same convention as the minified file's scopes (`NAMING`); TypeScript sources (by their
    name, `grammar_for`) are parsed with tree-sitter's TypeScript grammar, whose tree has the
    JavaScript grammar's node types plus the type syntax (the JavaScript grammar loses methods
    with return types and abstract classes to error recovery). Bounded like `collect_scopes`.
    """
    return resolve_scopes(collect_scopes(text, max_memory, grammar_for(path)), _own_text)
