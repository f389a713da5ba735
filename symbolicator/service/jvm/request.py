"""One `/symbolicate-jvm` request: validate the body, remap exceptions, frames and classes.

Symbolicator's shape and rules (`symbolicator-proguard`, docs/api.md): each frame is remapped
by the first mapping that knows it, trying the whole frame (class, method and line: one
frame becomes the inlined chain, outermost first as Sentry orders frames, every frame
keeping the obfuscated frame's `index`), then class and method, then the class alone, and
is returned unchanged when no mapping knows it. Frames of classes other than the real
method's lose `filename` and `abs_path`. `release_package` marks remapped frames of that
package `in_app` when the frame did not say. A mapping that cannot be used is an entry in
`errors` (`missing`, `invalid`, `no_line_info`); the request still answers.

Finding and converting mappings is `jvm_lookup.py`; this module is pure, and the offline
command uses it as the service does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from symbolicator.errors import InvalidShape, invalid_shape
from symbolicator.proguard.remap import RemappedFrame, Remapper
from symbolicator.service.jvm.sources import apply_context
from symbolicator.types import DebugId

FRAME_FIELDS = ("function", "module", "filename", "abs_path", "lineno", "in_app", "index", "platform",
                "pre_context", "context_line", "post_context", "signature")
MODULE_TYPES = ("proguard", "source")


@dataclass(frozen=True)
class JvmModule:
    uuid: DebugId
    type: str


@dataclass(frozen=True)
class JvmRequest:
    """A validated body. Frames and exceptions are kept as dicts of their known fields."""

    exceptions: list[dict[str, str]]
    stacktraces: list[list[dict[str, Any]]]
    modules: list[JvmModule]
    release_package: str | None
    classes: list[str]
    apply_source_context: bool = True

    @classmethod
    def from_json(cls, body: Any) -> JvmRequest:
        if not isinstance(body, dict):
            raise InvalidShape("the body must be a JSON object")
        exceptions = [_exception(e, i) for i, e in enumerate(_list(body, "exceptions"))]
        stacktraces = []
        for i, st in enumerate(_list(body, "stacktraces")):
            if not isinstance(st, dict):
                raise InvalidShape(f"stacktraces[{i}] must be an object")
            frames = _list(st, "frames")
            stacktraces.append([_frame(f, f"stacktraces[{i}].frames[{j}]", j) for j, f in enumerate(frames)])
        modules = [_module(m, i) for i, m in enumerate(_list(body, "modules"))]
        package = body.get("release_package")
        if package is not None and not isinstance(package, str):
            raise InvalidShape("release_package must be a string")
        classes = _list(body, "classes")
        if not all(isinstance(c, str) for c in classes):
            raise InvalidShape("classes must be a list of strings")
        options = body.get("options")
        options = {} if options is None else options
        apply_context = options.get("apply_source_context", True) if isinstance(options, dict) else None
        if not isinstance(apply_context, bool):
            raise InvalidShape("options must be an object; options.apply_source_context a boolean")
        return cls(exceptions, stacktraces, modules, package, [str(c) for c in classes], apply_context)


def _list(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidShape(f"{key} must be a list")
    return value


def _exception(value: Any, i: int) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(value.get(k), str) for k in ("type", "module")):
        raise InvalidShape(f"exceptions[{i}] must have a string `type` and `module`")
    return {"type": value["type"], "module": value["module"]}


def _frame(value: Any, where: str, position: int) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidShape(f"{where} must be an object")
    for key in ("function", "module"):
        if not isinstance(value.get(key), str):
            raise InvalidShape(f"{where}.{key} must be a string")
    lineno = value.get("lineno")
    if lineno is not None and (not isinstance(lineno, int) or isinstance(lineno, bool) or not 0 <= lineno < 2**32):
        raise InvalidShape(f"{where}.lineno must be a line number")
    index = value.get("index", position)
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise InvalidShape(f"{where}.index must be a non-negative integer")
    frame = {k: value[k] for k in FRAME_FIELDS if value.get(k) is not None}
    frame["index"] = index
    return frame


def _module(value: Any, i: int) -> JvmModule:
    if not isinstance(value, dict) or value.get("type") not in MODULE_TYPES or not isinstance(value.get("uuid"), str):
        raise InvalidShape(f"modules[{i}] must be {{\"uuid\": …, \"type\": \"proguard\" | \"source\"}}")
    with invalid_shape(f"modules[{i}].uuid"):
        return JvmModule(DebugId.parse(value["uuid"]), value["type"])


def remap_exception(remappers: list[Remapper], exception: dict[str, str]) -> dict[str, str] | None:
    if not remappers:
        return None
    key = f"{exception['module']}.{exception['type']}"
    for remapper in remappers:
        mapped = remapper.cache.remap_class(key)
        if mapped is not None and "." in mapped:
            module, _, type_ = mapped.rpartition(".")
            return {"type": type_, "module": module}
    return None


def remap_frames(remappers: list[Remapper], frames: list[dict[str, Any]], release_package: str | None,
                 exception: str | None = None) -> list[dict[str, Any]]:
    """A stack trace's frames (outermost first, as Sentry sends them) remapped, outermost first."""
    innermost_first = list(reversed(frames))
    expansions: list[list[dict[str, Any]] | None] = [None] * len(frames)
    for remapper in remappers:
        todo = [i for i, e in enumerate(expansions) if e is None]
        if not todo:
            break
        triples = [(innermost_first[i]["module"], innermost_first[i]["function"], innermost_first[i].get("lineno") or 0)
                   for i in todo]
        remapped = remapper.remap_stacktrace(triples, exception if todo[0] == 0 else None, zero_is_a_line=True)
        for i, triple, frames_out in zip(todo, triples, remapped, strict=True):
            if frames_out or _is_outline(remapper, triple):
                expansions[i] = _full(innermost_first[i], frames_out, release_package)
    out: list[dict[str, Any]] = []
    for i in reversed(range(len(frames))):
        expanded = expansions[i]
        out.extend(expanded if expanded is not None else [_partial(remappers, innermost_first[i], release_package)])
    return out


def _is_outline(remapper: Remapper, triple: tuple[str, str, int]) -> bool:
    return any(f.member is not None and f.member.outline for f in remapper.candidates(*triple, zero_is_a_line=True))


def _full(frame: dict[str, Any], remapped: list[RemappedFrame], release_package: str | None) -> list[dict[str, Any]]:
    if not remapped:
        return []
    bottom = remapped[-1].class_name
    out = []
    for new in reversed(remapped):
        mapped = {**frame, "module": new.class_name, "function": new.method or frame["function"], "lineno": new.line}
        if new.r8_source_file is not None:
            mapped["filename"] = mapped["abs_path"] = new.r8_source_file
        if new.class_name != bottom:
            mapped.pop("filename", None)
            mapped.pop("abs_path", None)
        out.append(_in_app(mapped, release_package))
    return out


def _partial(remappers: list[Remapper], frame: dict[str, Any], release_package: str | None) -> dict[str, Any]:
    for remapper in remappers:
        method = remapper.remap_method(frame["module"], frame["function"])
        if method is not None:
            return _in_app({**frame, "module": method[0], "function": method[1]}, release_package)
    for remapper in remappers:
        mapped = remapper.cache.remap_class(frame["module"])
        if mapped is not None:
            return _in_app({**frame, "module": mapped}, release_package)
    return frame


def _in_app(frame: dict[str, Any], release_package: str | None) -> dict[str, Any]:
    if release_package and frame["module"].startswith(release_package) and frame.get("in_app") is None:
        frame["in_app"] = True
    return frame


def remap_classes(remappers: list[Remapper], classes: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in classes:
        for remapper in remappers:
            mapped = remapper.cache.remap_class(name)
            if mapped is not None:
                out[name] = mapped
                break
    return out


def symbolicate(request: JvmRequest, remappers: list[Remapper], errors: list[dict[str, str]],
                source_lines: Callable[[str], list[str] | None] | None = None) -> dict[str, Any]:
    """The completed answer, given the mappings that could be opened and the errors of the others;
    `source_lines` gives a bundled file's lines by URL (`jvm_sources.py`) for source context.

    A stack trace is paired with the exception of the same position when the request has as
    many exceptions as stack traces (Sentry's order): R8 `rewriteFrame` rules need its class.
    """
    exceptions = [remap_exception(remappers, e) or e for e in request.exceptions]
    paired = len(exceptions) == len(request.stacktraces)
    stacktraces = []
    for i, frames in enumerate(request.stacktraces):
        thrown = f"{exceptions[i]['module']}.{exceptions[i]['type']}" if paired else None
        stacktraces.append({"frames": remap_frames(remappers, frames, request.release_package, thrown)})
    if request.apply_source_context and source_lines is not None:
        for trace in stacktraces:
            apply_context(trace["frames"], source_lines)
    return {"exceptions": exceptions, "stacktraces": stacktraces,
            "classes": remap_classes(remappers, request.classes), "errors": errors}
