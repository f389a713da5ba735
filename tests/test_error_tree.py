"""The exception tree keeps HTTP out of the engines (issue 12 item 3).

Identifiers that do not parse are value errors: a file with a bad id is malformed, a request
with one is a 422, and only the request models and `web/errors.py` know the difference.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest

import symbolicator.errors as errors
from symbolicator.errors import (
    FormatError,
    InvalidId,
    InvalidShape,
    MalformedMinidump,
    MalformedObject,
    RequestError,
    SymbolicatorError,
)
from symbolicator.native.apple_crash import MalformedCrashReport, parse_apple_crash_report
from symbolicator.native.breakpad_sym import read_header
from symbolicator.service.js import JsRequest
from symbolicator.service.native import NativeRequest
from symbolicator.types import CodeId, DebugId, Scope, check_dist, check_release
from symbolicator.web.errors import status_for

BAD_IDS: list[tuple[str, Callable[[], object]]] = [
    ("scope", lambda: Scope.parse("acme/web/extra")),
    ("debug id", lambda: DebugId.parse("not-a-debug-id")),
    ("code id", lambda: CodeId.parse("xyz")),
    ("release", lambda: check_release("a/b")),
    ("dist", lambda: check_dist("d" * 65)),
]


@pytest.mark.parametrize(("what", "parse"), BAD_IDS, ids=[w for w, _ in BAD_IDS])
def test_a_bad_identifier_is_a_value_error_not_a_request_error(what: str, parse: Callable[[], object]) -> None:
    with pytest.raises(InvalidId) as info:
        parse()
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, SymbolicatorError), f"a bad {what} must not carry a request's meaning"
    assert status_for(info.value) is None


def test_request_models_turn_a_bad_identifier_into_a_422() -> None:
    frames = [{"abs_path": "app:///main.js", "lineno": 1, "colno": 1}]
    with pytest.raises(InvalidShape, match="at most 200") as info:
        JsRequest.from_json({"release": "r" * 400, "stacktraces": [{"frames": frames}]})
    assert status_for(info.value) == 422
    with pytest.raises(InvalidShape, match="at most 64"):
        JsRequest.from_json({"release": "1.0", "dist": "d" * 65, "stacktraces": [{"frames": frames}]})
    # A bad module id is not the request's fault: Symbolicator drops it and symbolicates the rest.
    request = NativeRequest.from_json({"stacktraces": [], "modules": [{"type": "elf", "debug_id": "zz"}]})
    assert request.modules[0].debug_id is None


def test_a_bad_identifier_inside_a_file_makes_the_file_malformed() -> None:
    with pytest.raises(MalformedObject, match="invalid debug id"):
        read_header("MODULE Linux x86_64 NOT-HEX app\n")


def test_engine_errors_inherit_no_http_meaning() -> None:
    """No `FormatError` is also a `RequestError`: the 400 for a bad upload is web/errors.py's choice."""
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, FormatError)]
    classes += [MalformedCrashReport]
    for cls in classes:
        assert not issubclass(cls, RequestError), f"{cls.__name__} is an engine error with an HTTP meaning"
    with pytest.raises(MalformedCrashReport) as info:
        parse_apple_crash_report(b"not a crash report at all\n")
    assert status_for(info.value) == 400
    assert status_for(MalformedMinidump("bad stream at 0x40")) == 400
