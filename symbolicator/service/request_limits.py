"""The caps on how much one symbolication request may hold: stack traces, modules, frames.

Checked on the parsed body before the request model is built (`web/bodies.py` for JSON bodies,
`service/native/apple.py` for the request an Apple crash report becomes), because building the
model of a huge body is itself the cost to avoid. Over a cap is 413, not 422: the request is well
formed, only larger than this server takes.
"""

from __future__ import annotations

from typing import Any

from symbolicator.config import LimitsSettings
from symbolicator.errors import PayloadTooLarge


def check_counts(body: Any, limits: LimitsSettings) -> None:
    """PayloadTooLarge when a body holds more stack traces, modules or frames than the limits take."""
    if isinstance(body, dict):
        for key, limit, setting in (("stacktraces", limits.max_stacktraces_per_request, "max_stacktraces_per_request"),
                                    ("modules", limits.max_modules_per_request, "max_modules_per_request")):
            entries = body.get(key)
            if isinstance(entries, (list, dict)) and len(entries) > limit:
                raise PayloadTooLarge(f"the request has {len(entries)} {key}; limits.{setting} is {limit}")
    check_frame_count(body, limits.max_frames_per_request)


def check_frame_count(body: Any, limit: int) -> None:
    """PayloadTooLarge when `stacktraces[].frames` hold more than `limit` frames in all.

    413 rather than 422: the request is well formed, only larger than this
    server takes, exactly like a body over `max_body_bytes`, and a client
    treats both the same way (do not retry as is; split or trim). Shapes that
    are wrong are skipped here and left to the request model's 422.
    """
    traces = body.get("stacktraces") if isinstance(body, dict) else None
    if not isinstance(traces, list):
        return
    count = sum(len(frames) for t in traces if isinstance(t, dict) and isinstance(frames := t.get("frames"), list))
    if count > limit:
        raise PayloadTooLarge(f"the request has {count} frames; limits.max_frames_per_request is {limit}")
