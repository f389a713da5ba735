"""Apple crash reports (`.crash` text and `.ips` JSON) → the `/symbolicate` request they stand for.

* `model.py`: the data both formats parse into and the parsing helpers they share;
* `text.py`: the legacy `.crash` text (and bug_type 109 `.ips`, a JSON header over that text);
* `ips.py`: the modern `.ips` JSON body;
* `report.py`: picks the parser, and turns a report into the `/symbolicate` request and the
  fields Symbolicator adds to its answer.

Imports run one way (`report` → `ips` → `text` → `model`), with no cycle.

The public names are importable from the package.
"""

from symbolicator.native.apple_crash.model import (
    AppleCrashReport,
    AppleFrame,
    AppleThread,
    BinaryImage,
    MalformedCrashReport,
    SystemInfo,
)
from symbolicator.native.apple_crash.report import parse_apple_crash_report, response_fields, to_symbolicate_request

__all__ = [
    "AppleCrashReport", "AppleFrame", "AppleThread", "BinaryImage", "MalformedCrashReport", "SystemInfo",
    "parse_apple_crash_report", "response_fields", "to_symbolicate_request",
]
