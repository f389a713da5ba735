"""Apple crash reports (`.crash` text and `.ips` JSON) → the `/symbolicate` request they stand for.

* `model.py`: the data both formats parse into, the shared parsing helpers, and the request and
  response fields a report becomes;
* `text.py`: the legacy `.crash` text (and bug_type 109 `.ips`, a JSON header over that text);
* `ips.py`: the modern `.ips` JSON body.

The public names are importable from the package.
"""

from symbolicator.native.apple_crash.model import (
    AppleCrashReport,
    AppleFrame,
    AppleThread,
    BinaryImage,
    MalformedCrashReport,
    SystemInfo,
    parse_apple_crash_report,
    response_fields,
    to_symbolicate_request,
)

__all__ = [
    "AppleCrashReport", "AppleFrame", "AppleThread", "BinaryImage", "MalformedCrashReport", "SystemInfo",
    "parse_apple_crash_report", "response_fields", "to_symbolicate_request",
]
