"""An Apple crash report as a native request: the steps `/applecrashreport` and the CLI share.

`apple_crash_request` turns the report's bytes and the caller's JSON fields (`sources`,
`options`, `platform`) into a validated `NativeRequest` plus the fields Symbolicator adds to
the answer (`system_info`, `crashed`, `crash_reason`, ...); every way it can be refused is
raised here, before any job starts: a broken report (400), more frames or modules than the
limits take (413), a body of the wrong shape (422). `symbolicate_apple_crash` then answers it
with whatever module resolver the caller has: the service's (`NativeService`) or the CLI's
folders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from symbolicator.config import LimitsSettings
from symbolicator.native.apple_crash import parse_apple_crash_report, response_fields, to_symbolicate_request
from symbolicator.service.native.request import NativeRequest, Resolve, symbolicate
from symbolicator.service.request_limits import check_counts


@dataclass(frozen=True)
class AppleCrash:
    """A parsed, validated report: the request it stands for and the fields its answer adds."""

    request: NativeRequest
    response_fields: dict[str, Any]


def apple_crash_request(data: bytes | str, fields: Mapping[str, Any],
                        limits: LimitsSettings | None = None) -> AppleCrash:
    """Blocking (CPU, linear in the report): parse, build the `/symbolicate` body, check the
    counts against `limits` (None: the CLI, which has none), build the request model."""
    report = parse_apple_crash_report(data)
    platform = fields.get("platform")
    body = to_symbolicate_request(report, platform=platform if isinstance(platform, str) else None)
    if limits is not None:
        check_counts(body, limits)
    for name in ("sources", "options"):
        if name in fields:
            body[name] = fields[name]
    return AppleCrash(NativeRequest.from_json(body), response_fields(report))


async def symbolicate_apple_crash(crash: AppleCrash, resolve: Resolve) -> dict[str, Any]:
    """The completed payload: the report's fields, then the native answer."""
    return {**crash.response_fields, **await symbolicate(crash.request, resolve)}
