"""One `/symbolicate-js` request: validate the body, map every frame, answer Symbolicator's shape.

The work splits in two. *Finding* the minified file and its map for an `abs_path`
(uploads, `sourceMappingURL`, scraping, conversion in the worker pool) is
`lookup.JsLookup`, which hands back a `Module`. *Mapping* a frame through a
module is here, and it is the same code for the service and for the offline
`symbolicator symbolicate` command (`offline.py` builds its modules from
folders), so both print the same JSON.

Per-frame failures are data (docs/api.md): the frame comes back unchanged,
with the minified source context when the minified file was found, and an entry
in `errors`. One output frame per input frame, always.

A minified file over the memory bound of the function-name pass still has its
positions mapped; its frames carry `data.function_names = "skipped"`.

Function names follow Symbolicator: the original name of the enclosing scope
(from the sourcemap cache; for Dart's `$async$` rewrites the token's name); for
an anonymous scope, the name of the token at the *caller's* call site ("caller
naming": the previous frame in caller-first order), which names what was called;
else the name the engine printed; else no `function`. Repeated dotted segments
are folded (`a.b.b.c` → `a.{b#2}.c`).

One deliberate difference: a minified file without any map reference is
reported as `missing_sourcemap` (Symbolicator stays silent), so a front-end team
sees why the frame was not mapped.
"""

from __future__ import annotations

import re
import string
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from symbolicator.errors import InvalidId, InvalidShape, JsErrorKind, invalid_shape
from symbolicator.sourcemaps.context import (
    Context,
    context_from_lines,
    minified_context,
)
from symbolicator.sourcemaps.smcache import SmCache
from symbolicator.sourcemaps.urls import strip_hostname
from symbolicator.types import DebugId, check_dist, check_release

USELESS_FN_NAMES = frozenset({"<anonymous>", "__webpack_require__", "__webpack_modules__"})
CONTEXT_LINES = 5
_WEBPACK_NAMESPACE = re.compile(r"^webpack://[a-zA-Z0-9_\-@.]+/\./")
_NODE_MODULES = re.compile(r"\bnode_modules/")
_URL_SOURCE = re.compile(r"^(https?|webpack|app):")
_CLEAN_MODULE = re.compile(
    r"^(?:/|(?:(?:java)?scripts?|js|build|static|node_modules|bower_components|[_.~].*?|v?(?:\d+\.)*\d+"
    r"|[a-f0-9]{7,8}|[a-f0-9]{32}|[a-f0-9]{40})/)+|(?:[-.][a-f0-9]{7,}$)",
    re.I,
)


@dataclass(frozen=True)
class ScrapingOptions:
    """The request's `scraping` (AND-ed with `allow_scraping`); the server's settings are applied on top."""

    enabled: bool = True
    allowed_origins: tuple[str, ...] = ("*",)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JsRequest:
    """A validated body. `stacktraces` keep every input key; frames are dicts as sent."""

    stacktraces: tuple[dict[str, Any], ...]
    modules: Mapping[str, DebugId]
    release: str | None
    dist: str | None
    scraping: ScrapingOptions
    apply_source_context: bool = True
    callee_first: bool = False

    @classmethod
    def from_json(cls, body: Any) -> JsRequest:
        """422 (InvalidShape) for JSON of the wrong shape; missing frame fields are per-frame errors."""
        if not isinstance(body, dict):
            raise InvalidShape("the body must be a JSON object")
        raw_traces = body.get("stacktraces", [])
        if not isinstance(raw_traces, list):
            raise InvalidShape("`stacktraces` must be an array")
        traces = []
        for i, trace in enumerate(raw_traces):
            if not isinstance(trace, dict) or not isinstance(trace.get("frames", []), list):
                raise InvalidShape(f"stacktraces[{i}] must be an object with a `frames` array")
            frames = trace.get("frames", [])
            for j, frame in enumerate(frames):
                _check_frame(frame, f"stacktraces[{i}].frames[{j}]")
            traces.append({**trace, "frames": [dict(f) for f in frames]})
        options = _object(body, "options")
        order = options.get("frame_order", "caller_first")
        if order not in ("caller_first", "callee_first"):
            raise InvalidShape("options.frame_order must be `caller_first` or `callee_first`")
        apply_context = options.get("apply_source_context", True)
        if not isinstance(apply_context, bool):
            raise InvalidShape("options.apply_source_context must be a boolean")
        return cls(
            stacktraces=tuple(traces),
            modules=_modules(body.get("modules")),
            release=_optional_name(body, "release", check_release),
            dist=_optional_name(body, "dist", check_dist),
            scraping=_scraping(body),
            apply_source_context=apply_context,
            callee_first=order == "callee_first",
        )


def _object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidShape(f"`{key}` must be an object")
    return value


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidShape(f"`{key}` must be a string or null")
    return value or None


def _optional_name(body: dict[str, Any], key: str, check: Callable[[object, str], str]) -> str | None:
    value = _optional_str(body, key)
    with invalid_shape():
        return None if value is None else check(value, f"`{key}`")


def _check_frame(frame: Any, where: str) -> None:
    if not isinstance(frame, dict):
        raise InvalidShape(f"{where} must be an object")
    for key in ("abs_path", "function", "filename", "module"):
        if frame.get(key) is not None and not isinstance(frame[key], str):
            raise InvalidShape(f"{where}.{key} must be a string")
    for key in ("lineno", "colno"):
        value = frame.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidShape(f"{where}.{key} must be an integer")
    if frame.get("data") is not None and not isinstance(frame["data"], dict):
        raise InvalidShape(f"{where}.data must be an object")


def _modules(value: Any) -> dict[str, DebugId]:
    """`code_file` → debug id of `type: sourcemap` modules; other types and unparsable ids are skipped."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise InvalidShape("`modules` must be an array")
    out: dict[str, DebugId] = {}
    for i, module in enumerate(value):
        if not isinstance(module, dict):
            raise InvalidShape(f"modules[{i}] must be an object")
        if module.get("type") != "sourcemap":
            continue
        code_file, debug_id = module.get("code_file"), module.get("debug_id")
        if not isinstance(code_file, str) or not isinstance(debug_id, str):
            raise InvalidShape(f"modules[{i}] needs string `code_file` and `debug_id`")
        try:
            out[code_file] = DebugId.parse(debug_id)
        except InvalidId:
            continue
    return out


def _scraping(body: dict[str, Any]) -> ScrapingOptions:
    raw = _object(body, "scraping")
    enabled = raw.get("enabled", True)
    allow = body.get("allow_scraping", True)
    if not isinstance(enabled, bool) or not isinstance(allow, bool):
        raise InvalidShape("scraping.enabled and allow_scraping must be booleans")
    origins = raw.get("allowed_origins", ["*"])
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise InvalidShape("scraping.allowed_origins must be an array of strings")
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise InvalidShape("scraping.headers must be an object of strings")
    return ScrapingOptions(enabled and allow, tuple(origins), dict(headers))


class MapError(TypedDict):
    """A JS error object without its `abs_path`: why a found minified file has no usable map."""

    type: JsErrorKind
    url: NotRequired[str | None]
    details: NotRequired[str]


@dataclass
class Module:
    """What was found for one `abs_path`.

    `minified_error` is the JS error type when the minified file is missing (`minified_details`
    why, when it was found but cannot be read: a bundle member over the size cap);
    `map_error` the error object (without `abs_path`) when its map is missing
    or broken; `cache` the opened sourcemap cache on success.
    """

    abs_path: str
    lines: Sequence[str] | None = None
    minified_error: JsErrorKind | None = None
    minified_details: str | None = None
    cache: SmCache | None = None
    map_error: MapError | None = None
    sourcemap: str | None = None
    sourcemap_origin: Any = None
    resolved_with: str | None = None

    def naming(self, source_index: int, resolved: str) -> SourceNaming:
        """How frames mapped into `sources[source_index]` (resolved: `resolved`) are named; worked out
        once per source and opened cache, since every frame there is named alike."""
        if self.cache is None:
            return SourceNaming.of(resolved, None)
        known = _NAMINGS.get(self.cache)
        if known is None:
            known = _NAMINGS[self.cache] = {}
        naming = known.get(source_index)
        if naming is None:
            raw_sources = self.cache.raw_sources
            raw = raw_sources[source_index] if 0 <= source_index < len(raw_sources) else None
            naming = known[source_index] = SourceNaming.of(resolved, raw)
        return naming


@dataclass(frozen=True, slots=True)
class SourceNaming:
    """`filename` is the map's own `sources[i]` (as the bundler wrote it; the resolved URL when it has
    none); `module` Sentry's module name, for URL-like sources; `in_app` the verdict of the path alone."""

    filename: str
    module: str | None
    in_app: bool | None

    @classmethod
    def of(cls, source: str, raw: str | None) -> SourceNaming:
        filename, module = raw or source, None
        if filename.startswith("webpack:"):
            filename = fixup_webpack_filename(filename)
            module = generate_module(filename)
        elif _URL_SOURCE.match(source):
            module = generate_module(source)
        return cls(filename, module, is_in_app(source, filename))


_NAMINGS: weakref.WeakKeyDictionary[SmCache, dict[int, SourceNaming]] = weakref.WeakKeyDictionary()


GetModule = Callable[[str], Awaitable[Module]]
OriginalSource = Callable[[str], Awaitable["Sequence[str] | None"]]
OriginalFunction = Callable[[str, int, int], Awaitable[str | None]]
"""`(source URL, 1-based original line, column)` → the function enclosing it in the fetched original
("" anonymous; None: no answer): `lookup.JsLookup.original_function`."""


@dataclass
class FrameOutcome:
    frame: dict[str, Any]
    raw: dict[str, Any]
    token_name: str | None = None


class FrameMapper:
    """Maps the frames of one request through modules; collects `errors`."""

    def __init__(self, get_module: GetModule, original_source: OriginalSource, apply_source_context: bool,
                 valid_abs_path: Callable[[Any], bool] | None = None,
                 original_function: OriginalFunction | None = None) -> None:
        self.get_module = get_module
        self.original_function = original_function
        self.valid_abs_path = valid_abs_path or is_valid_abs_path
        self.original_source = original_source
        self.apply_source_context = apply_source_context
        self.errors: dict[tuple[Any, ...], dict[str, Any]] = {}

    def error(self, abs_path: str | None, kind: JsErrorKind, **extra: Any) -> None:
        entry = {"abs_path": abs_path, "type": kind, **extra}
        self.errors.setdefault(tuple(sorted((k, repr(v)) for k, v in entry.items())), entry)

    def sorted_errors(self) -> list[dict[str, Any]]:
        return sorted(self.errors.values(), key=lambda e: (str(e["abs_path"]), e["type"], repr(sorted(e.items()))))

    async def stacktrace(self, frames: Sequence[dict[str, Any]], callee_first: bool) -> tuple[list[Any], list[Any]]:
        """(symbolicated frames, raw frames), both in input order; callers first feed caller naming."""
        out: list[Any] = [None] * len(frames)
        raw: list[Any] = [None] * len(frames)
        order = range(len(frames) - 1, -1, -1) if callee_first else range(len(frames))
        callsite: str | None = None
        for i in order:
            outcome = await self.frame(frames[i], callsite)
            out[i], raw[i] = outcome.frame, outcome.raw
            callsite = outcome.token_name
        return out, raw

    async def frame(self, frame: dict[str, Any], callsite: str | None) -> FrameOutcome:
        raw = {**frame, "data": {**(frame.get("data") or {}), "symbolicated": False}}
        abs_path = frame.get("abs_path")
        if isinstance(abs_path, str) and abs_path.startswith("async "):
            abs_path = abs_path[6:]
            raw["abs_path"] = abs_path
        lineno, colno = frame.get("lineno"), frame.get("colno")
        if lineno is None or lineno < 1:
            self.error(abs_path, JsErrorKind.INVALID_LOCATION, line=lineno, col=colno)
            return FrameOutcome(raw, raw)
        if not self.valid_abs_path(abs_path):
            self.error(abs_path, JsErrorKind.INVALID_ABS_PATH)
            return FrameOutcome(raw, raw)
        assert isinstance(abs_path, str)
        module = await self.get_module(abs_path)
        if module.lines is None:
            details = {"details": module.minified_details} if module.minified_details else {}
            self.error(abs_path, module.minified_error or JsErrorKind.MISSING_SOURCE, **details)
            return FrameOutcome(raw, raw)
        if self.apply_source_context:
            _set_context(raw, minified_context(module.lines, lineno, colno or 1, CONTEXT_LINES))
        if module.cache is None:
            found = module.map_error or MapError(type=JsErrorKind.MISSING_SOURCEMAP)
            kind = found["type"]
            self.error(abs_path, kind, **{k: v for k, v in found.items() if k != "type"})
            if kind is JsErrorKind.MALFORMED_SOURCEMAP and module.resolved_with:
                return FrameOutcome({**raw, "data": {**raw["data"], "resolved_with": module.resolved_with}}, raw)
            return FrameOutcome(raw, raw)
        if colno is None:
            self.error(abs_path, JsErrorKind.NO_COLUMN)
            return FrameOutcome(raw, raw)
        token = module.cache.lookup(lineno, colno)
        if token is None:
            self.error(abs_path, JsErrorKind.INVALID_LOCATION, line=lineno, col=colno)
            return FrameOutcome(raw, raw)
        out = {k: v for k, v in raw.items() if k not in ("pre_context", "context_line", "post_context")}
        naming = module.naming(token.source_index, token.source)
        out["abs_path"] = token.source
        if naming.module is not None:
            out["module"] = naming.module
        out["filename"] = naming.filename
        out["lineno"], out["colno"] = token.original_line, token.original_column
        scope_name = token.function
        if self.original_function is not None and module.cache.names_from_fetched_original(token):
            fetched = await self.original_function(token.source, token.original_line, token.original_column)
            if fetched is not None:  # the original function, fetched (step 2 of docs/javascript.md)
                scope_name = fetched or None
        if scope_name and scope_name.startswith("$async$"):
            scope_name = token.name or scope_name
        out["function"] = function_name(frame.get("function"), scope_name, callsite)
        if out["function"] is None:
            out.pop("function")
        in_app = False if not token.in_app else naming.in_app
        if in_app is not None:
            out["in_app"] = in_app
        out["data"] = {**raw["data"], "sourcemap": module.sourcemap, "resolved_with": module.resolved_with,
                       "symbolicated": True}
        if module.sourcemap_origin is not None:
            out["data"]["sourcemap_origin"] = module.sourcemap_origin
        if module.cache.names_skipped:
            out["data"]["function_names"] = "skipped"  # over the name pass's memory bound (docs/security.md)
        if self.apply_source_context:
            context = module.cache.source_context(token.source_index, token.original_line, CONTEXT_LINES)
            if context is None:
                lines = await self.original_source(token.source)
                context = context_from_lines(lines, token.original_line, CONTEXT_LINES) if lines else None
                if context is None:
                    self.error(abs_path, JsErrorKind.MISSING_SOURCE_CONTENT, source=token.source,
                               sourcemap=module.sourcemap)
            _set_context(out, context)
        return FrameOutcome(out, raw, token.name)


def _set_context(frame: dict[str, Any], context: Context | None) -> None:
    if context is None:
        return
    frame["pre_context"] = context.pre_context
    frame["context_line"] = context.context_line
    frame["post_context"] = context.post_context


def is_valid_abs_path(abs_path: Any) -> bool:
    """Anything that can name a file: not `<anonymous>`, None or blank.

    A path that is not a URL (`http//example.com/a.js`, `foo.js`) is still looked up, as
    Symbolicator does: uploads may hold it verbatim, and otherwise it is `missing_source`.
    """
    return isinstance(abs_path, str) and bool(abs_path.strip()) and not abs_path.startswith("<")


def function_name(frame_fn: str | None, token_fn: str | None, callsite_fn: str | None) -> str | None:
    """Symbolicator's `get_function_for_token`, then folding; None when nothing names the frame."""
    if token_fn and token_fn not in USELESS_FN_NAMES:
        name: str | None = token_fn
    elif callsite_fn and callsite_fn not in USELESS_FN_NAMES:
        name = callsite_fn
    elif frame_fn is None and token_fn:
        name = token_fn
    else:
        name = frame_fn
    return fold_function_name(name) if name else None


def fold_function_name(name: str) -> str:
    """`a.b.b.b.c` → `a.{b#3}.c` (the last segment is never folded)."""
    parts = name.split(".")
    if len(parts) == 1:
        return name
    tail = parts.pop()
    groups: list[list[str]] = [[]]
    for part in parts:
        if not groups[-1] or groups[-1][-1] == part:
            groups[-1].append(part)
        else:
            groups.append([part])
    folded = ".".join(g[0] if len(g) == 1 else f"{{{g[0]}#{len(g)}}}" for g in groups)
    return f"{folded}.{tail}"


def fixup_webpack_filename(filename: str) -> str:
    if "/~/" in filename:
        return "~/" + filename.split("/~/", 1)[1]
    if _WEBPACK_NAMESPACE.match(filename):
        return _WEBPACK_NAMESPACE.sub("./", filename, count=1)
    return filename.removeprefix("webpack:///")


def is_in_app(abs_path: str, filename: str) -> bool | None:
    if abs_path.startswith("webpack:"):
        return filename.startswith("./") and "/node_modules/" not in filename
    if abs_path.startswith("app:"):
        return not _NODE_MODULES.search(filename)
    if "/node_modules/" in abs_path:
        return False
    return None


def generate_module(abs_path: str) -> str:
    """Sentry's made-up module name: no host, query, extension, `.min`, hashes or common folders."""
    path = re.split(r"[#?]", strip_hostname(abs_path), maxsplit=1)[0]
    cut = max(path.rfind("."), path.rfind("/"))
    if cut >= 0 and path[cut] == ".":
        path = path[:cut]
    path = path.removesuffix(".min")
    segments = path.split("/")
    for i, segment in enumerate(segments):
        if len(segment) == 32 or (len(segment) == 40 and all(c in string.hexdigits for c in segment)):
            return "/".join(segments[i + 1 :])
    return _CLEAN_MODULE.sub("", path)


async def symbolicate(request: JsRequest, get_module: GetModule, original_source: OriginalSource,
                      valid_abs_path: Callable[[Any], bool] | None = None,
                      original_function: OriginalFunction | None = None) -> dict[str, Any]:
    """The completed payload (without `status`): stacktraces, raw_stacktraces, errors.

    `valid_abs_path` replaces the URL check (offline traces name relative files); `original_function`
    names frames in flagged originals the map carries no text of (None: not looked for).
    """
    engine = FrameMapper(get_module, original_source, request.apply_source_context, valid_abs_path,
                         original_function)
    stacktraces, raw_stacktraces = [], []
    for trace in request.stacktraces:
        frames, raw = await engine.stacktrace(trace["frames"], request.callee_first)
        stacktraces.append({**trace, "frames": frames})
        raw_stacktraces.append({**trace, "frames": raw})
    return {"stacktraces": stacktraces, "raw_stacktraces": raw_stacktraces, "errors": engine.sorted_errors()}

