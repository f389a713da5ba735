"""Errors in the user's words (issue 17 item 8).

A user should read `cannot open app.js.map: no such file or directory`, not
`[Errno 2] No such file or directory: 'app.js.map'`, and `not JSON (unexpected
character at line 3, column 7)`, not a decoder's `(char 1234)`. The commands
build their messages from these helpers so every command says it the same way.
"""

from __future__ import annotations

import json


def os_error(exc: OSError) -> str:
    """`cannot open PATH: reason`, lower case, without the errno number."""
    reason = (exc.strerror or str(exc)).lower()
    if exc.filename is not None:
        return f"cannot open {exc.filename}: {reason}"
    return reason


def json_error(exc: BaseException) -> str | None:
    """`not JSON (what, at line L, column C)` for a JSON decoder's error (orjson's included), else None."""
    cause = exc if isinstance(exc, json.JSONDecodeError) else exc.__cause__
    if not isinstance(cause, json.JSONDecodeError):
        return None
    if "utf-8" in cause.msg.lower():
        return "not UTF-8 text, so not JSON"
    return f"not JSON ({cause.msg} at line {cause.lineno}, column {cause.colno})"
