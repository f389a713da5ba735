"""One event with JS and native frames (`POST /symbolicate-any`, the CLI's `symbolicate`): split, run both, merge.

A React Native crash is one stack: JavaScript frames (Metro/Hermes bundles, `platform: "javascript"`)
around native ones (the iOS/Android runtime, `instruction_addr` + `modules`), in crash order. Sentry
sends the two halves to Symbolicator separately; here one request carries the whole event:

1. every frame says what it is: its `platform` (`javascript` and `node` are JS, all others native), else
   its content (an `instruction_addr` makes it native: a JS frame never has one); a frame without
   `platform` is answered with the request's `platform` when that names its kind;
2. the frames are split, per stack trace, into a `/symbolicate-js` request (with the `sourcemap`
   modules, `release`, `dist`, `scraping`) and a `/symbolicate` request (the other modules, `signal`,
   `sources`, the thread's registers), both validated before the job starts (422 on a wrong shape),
   both in the request's one `options.frame_order` (default `caller_first`, as Sentry's events list frames);
3. the job runs both engines concurrently and answers the frames merged back into the original order:
   each frame keeps its `platform` (or gets the one it was taken for) and gains `original_index` (its
   position in the request's trace; a native frame that inlined calls becomes several sharing it, and
   a native frame the engine drops, a stack-scanned false positive, is dropped); `errors`,
   `scraping_attempts` and `used_artifact_bundles` come from the JS half, `modules` (native
   statuses) from the native half.

Caller naming of JS frames (an anonymous function named by its caller's call site) looks at the
previous JS frame, native frames in between skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from symbolicator.errors import InvalidShape
from symbolicator.service.js.request import JsRequest
from symbolicator.service.native import NativeRequest

JS_PLATFORMS = frozenset({"javascript", "node"})
_NATIVE_TRACE_FIELDS = ("thread_id", "thread_name", "is_requesting", "registers")
_JS_FIELDS = ("release", "dist", "scraping", "allow_scraping")
_NATIVE_FIELDS = ("signal", "platform", "sources")

RunJs = Callable[[JsRequest], Awaitable[dict[str, Any]]]
RunNative = Callable[[NativeRequest], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class MixedRequest:
    """A validated body: its two halves, and where each input frame went (`layout[trace][frame]` is
    `(is_js, index in its half's trace)`)."""

    traces: tuple[dict[str, Any], ...]
    platforms: tuple[str, str]
    layout: tuple[tuple[tuple[bool, int], ...], ...]
    js: JsRequest
    native: NativeRequest
    has_native: bool

    @classmethod
    def from_json(cls, body: Any) -> MixedRequest:
        if not isinstance(body, dict):
            raise InvalidShape("the body must be a JSON object")
        if "symbolicate" in body and "stacktraces" not in body:
            raise InvalidShape("stored minidumps and crash reports (`symbolicate`) are not supported by this route")
        traces = body.get("stacktraces")
        if not isinstance(traces, list) or not all(isinstance(t, dict) for t in traces):
            raise InvalidShape("`stacktraces` must be an array of objects")
        modules = body.get("modules") or []
        if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
            raise InvalidShape("`modules` must be an array of objects")
        platform = body.get("platform")
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise InvalidShape("`options` must be an object")
        options = {"frame_order": "caller_first", **options}
        js_traces, native_traces, layout = [], [], []
        for i, trace in enumerate(traces):
            frames = trace.get("frames", [])
            if not isinstance(frames, list) or not all(isinstance(f, dict) for f in frames):
                raise InvalidShape(f"stacktraces[{i}].frames must be an array of objects")
            kinds = [is_js_frame(f) for f in frames]
            js_frames = [f for f, js in zip(frames, kinds, strict=True) if js]
            native_frames = [f for f, js in zip(frames, kinds, strict=True) if not js]
            counters = {True: 0, False: 0}
            places = []
            for js in kinds:
                places.append((js, counters[js]))
                counters[js] += 1
            layout.append(tuple(places))
            js_traces.append({"frames": js_frames})
            native_traces.append({**{k: trace[k] for k in _NATIVE_TRACE_FIELDS if k in trace}, "frames": native_frames})
        js_body = {k: body[k] for k in _JS_FIELDS if k in body}
        js_body.update(stacktraces=js_traces, options=options,
                       modules=[m for m in modules if m.get("type") == "sourcemap"])
        native_body = {k: body[k] for k in _NATIVE_FIELDS if k in body}
        native_body.update(stacktraces=native_traces, options=options,
                           modules=[m for m in modules if m.get("type") != "sourcemap"])
        has_native = any(t["frames"] for t in native_traces) or bool(native_body["modules"])
        default = platform if isinstance(platform, str) and platform else None
        platforms = (default if default in JS_PLATFORMS else "javascript",
                     default if default and default not in JS_PLATFORMS else "native")
        return cls(tuple(traces), platforms, tuple(layout), JsRequest.from_json(js_body),
                   NativeRequest.from_json(native_body), has_native)


def is_js_frame(frame: dict[str, Any]) -> bool:
    """Its `platform` decides; without one, its content: native frames have an `instruction_addr`, JS ones never."""
    platform = frame.get("platform")
    if isinstance(platform, str) and platform:
        return platform in JS_PLATFORMS
    return "instruction_addr" not in frame


async def symbolicate_mixed(request: MixedRequest, run_js: RunJs, run_native: RunNative) -> dict[str, Any]:
    """The completed payload (without `status`): both halves at once, merged in input order."""
    if request.has_native:
        js, native = await asyncio.gather(run_js(request.js), run_native(request.native))
    else:
        js, native = await run_js(request.js), {"stacktraces": [{"frames": []}] * len(request.traces), "modules": []}
    stacktraces, raw_stacktraces = [], []
    for i, trace in enumerate(request.traces):
        js_out, js_raw = js["stacktraces"][i]["frames"], js["raw_stacktraces"][i]["frames"]
        native_trace = native["stacktraces"][i]
        by_index: dict[int, list[dict[str, Any]]] = {}
        for frame in native_trace["frames"]:
            by_index.setdefault(frame["original_index"], []).append(frame)
        native_raw = request.native.stacktraces[i].frames
        frames, raw = [], []
        for j, (is_js, k) in enumerate(request.layout[i]):
            platform = {"platform": request.platforms[0 if is_js else 1]}
            if is_js:
                frames.append({**platform, **js_out[k], "original_index": j})
                raw.append({**platform, **js_raw[k], "original_index": j})
            else:
                frames.extend({**platform, **f, "original_index": j} for f in by_index.get(k, ()))
                raw.append({**platform, **native_raw[k].fields, "original_index": j})
        fields = {key: value for key, value in trace.items() if key != "frames"}
        extra = {key: native_trace[key] for key in ("registers",) if key in native_trace}
        stacktraces.append({**fields, **extra, "frames": frames})
        raw_stacktraces.append({**fields, "frames": raw})
    return {
        "stacktraces": stacktraces,
        "raw_stacktraces": raw_stacktraces,
        "modules": native.get("modules", []),
        "errors": js.get("errors", []),
        "scraping_attempts": js.get("scraping_attempts", []),
        "used_artifact_bundles": js.get("used_artifact_bundles", []),
    }
