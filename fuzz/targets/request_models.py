"""`requests`: a JSON body through `/symbolicate`'s and `/symbolicate-js`'s models and work.

An input is the raw body. It is decoded the way every handler decodes one
(`web.bodies.loads` with the default `limits.max_json_depth`: not JSON or nested too deep →
`BadRequest`; then the caps on frames, stack traces and modules), then given to both request models —
`NativeRequest.from_json` and `JsRequest.from_json` — and whatever a model accepts is
symbolicated (`fuzz.service_calls`: real symcache and sourcemap-cache lookups) and
serialised as the handler serialises it. Each model is held to the contract on its own:
a body one model refuses still goes through the other.

Hypothesis builds valid bodies with edge values (addresses near 2^64, out-of-range
`rel:` modules, registers, sizes, signals, frame orders, line/column numbers at the integer
limits) and replaces up to two nodes of each with a value of any type (`damaged`);
atheris mutates real bodies from the tests node by node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fuzz.contract import ALLOWED
from fuzz.service_calls import symbolicate_js, symbolicate_native
from symbolicator.config import LimitsSettings
from symbolicator.service.js import JsRequest
from symbolicator.service.native import NativeRequest
from symbolicator.service.request_limits import check_counts
from symbolicator.web.bodies import loads

if TYPE_CHECKING:
    from hypothesis import strategies as st

_ELF_MODULE = {"type": "elf", "code_id": "5c1f8bc0e3be2a1e0d0ee2bd6f4cf0bb1e0e2a77",
               "debug_id": "c08b1f5c-bee3-1e2a-0d0e-e2bd6f4cf0bb", "code_file": "/usr/bin/c_gcc_O2_dwarf4",
               "image_addr": "0x7f0000000000", "image_size": 1048576}
_JS_URL = "https://example.test/static/app.js"
LIMITS = LimitsSettings()


def run(data: bytes) -> None:
    body = loads(data, LIMITS.max_json_depth)
    check_counts(body, LIMITS)
    try:
        symbolicate_native(NativeRequest.from_json(body))
    except ALLOWED:
        pass
    try:
        symbolicate_js(JsRequest.from_json(body))
    except ALLOWED:
        pass


def seeds() -> dict[str, bytes]:
    """Valid bodies shaped like the service tests' (`test_native_service.py`, `test_js_service.py`)."""
    from fuzz.strategies import dump

    return {
        "native-found-and-missing.json": dump({
            "stacktraces": [{"registers": {"rip": "0x7f0000001139", "rsp": "0x7ffd0000"}, "frames": [
                {"instruction_addr": "0x7f0000001139", "adjust_instruction_addr": False},
                {"instruction_addr": "0x7f0000001160"},
                {"instruction_addr": "0x10"},
                {"instruction_addr": "0x7f00000f0000", "function": "_ZN3foo3barEv"},
            ]}],
            "modules": [_ELF_MODULE, {"type": "elf", "debug_id": "0c1e7b7a-0000-4000-8000-000000000001",
                                      "code_file": "/lib/libgone.so", "image_addr": "0x7e0000000000",
                                      "image_size": 4096}],
            "options": {"dif_candidates": True},
        }),
        "native-relative-addresses.json": dump({
            "signal": 11, "platform": "native",
            "stacktraces": [{"thread_id": 1, "is_requesting": True,
                             "frames": [{"instruction_addr": "0x1139", "addr_mode": "rel:0"},
                                        {"instruction_addr": 4448, "addr_mode": "rel:1", "trust": "scan"}]}],
            "modules": [{"type": "elf", "debug_id": "0c1e7b7a-0000-4000-8000-000000000002", "image_addr": "0x1000"},
                        _ELF_MODULE],
            "options": {"frame_order": "caller_first"},
            "sources": [{"id": "sentry:project", "type": "sentry", "url": "http://127.0.0.1:1/"}],
        }),
        "js-release.json": dump({
            "release": "1.0.0", "dist": None,
            "stacktraces": [{"frames": [{"abs_path": _JS_URL, "lineno": 1, "colno": 40, "function": "x"},
                                        {"abs_path": _JS_URL, "lineno": 1, "colno": 1200},
                                        {"abs_path": "https://example.test/static/greet.js", "lineno": 1,
                                         "colno": 10}]}],
            "options": {"apply_source_context": True, "frame_order": "callee_first"},
        }),
        "js-debug-id.json": dump({
            "stacktraces": [{"frames": [{"abs_path": f"async {_JS_URL}", "lineno": 1, "colno": 99},
                                        {"abs_path": "<anonymous>", "lineno": 3}]}],
            "modules": [{"type": "sourcemap", "code_file": _JS_URL,
                         "debug_id": "8a5b0e5f-1c2d-4e3f-9a0b-1c2d3e4f5a6b"}],
            "scraping": {"enabled": False, "allowed_origins": ["*"], "headers": {"X-Token": "t"}},
        }),
    }


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    from fuzz.json_mutate import mutate as mutate_json

    return mutate_json(data, max_size, seed)


def inputs() -> st.SearchStrategy[bytes]:
    from hypothesis import strategies as st

    from fuzz.strategies import damaged, dump, hex_addrs, ints, json_values, rarely, texts

    native_frame = st.fixed_dictionaries({"instruction_addr": hex_addrs()}, optional={
        "addr_mode": rarely(st.one_of(st.just("abs"), st.integers(0, 5).map(lambda i: f"rel:{i}")),
                            st.sampled_from(["rel:", "rel:-1", "rel:99999999999", "REL:1", "rel:1 "])),
        "adjust_instruction_addr": st.booleans(), "function": texts(), "symbol": texts(),
        "trust": st.sampled_from(["scan", "cfi", "fp", "context"]), "filename": texts(), "platform": texts(),
    })
    registers = st.dictionaries(st.sampled_from(["pc", "rip", "eip", "lr", "sp", "rsp", "x29", "fp", "ip"]),
                                hex_addrs(), max_size=3)
    thread = st.fixed_dictionaries({"frames": st.lists(native_frame, min_size=1, max_size=6)}, optional={
        "registers": registers, "thread_id": ints(), "thread_name": texts(), "is_requesting": st.booleans(),
    })
    module = st.fixed_dictionaries({"type": st.sampled_from(["elf", "macho", "pe", "wasm", "unknown"]),
                                    "image_addr": hex_addrs()}, optional={
        "debug_id": st.one_of(st.uuids().map(str), texts()),
        "code_id": st.one_of(st.binary(min_size=1, max_size=20).map(bytes.hex), texts()),
        "code_file": texts(), "debug_file": texts(), "image_size": hex_addrs(), "arch": texts(),
    })
    native_body = st.fixed_dictionaries({"stacktraces": st.lists(thread, min_size=1, max_size=3)}, optional={
        "modules": st.lists(module, min_size=1, max_size=5), "signal": st.one_of(st.integers(0, 31), ints()),
        "platform": texts(),
        "options": st.fixed_dictionaries({}, optional={
            "frame_order": st.sampled_from(["callee_first", "caller_first"]), "dif_candidates": st.booleans()}),
        "sources": st.lists(st.fixed_dictionaries({"id": texts(), "type": texts()}), max_size=2),
    })
    position = st.one_of(st.integers(-2, 3), st.integers(1, 2000), ints())
    js_frame = st.fixed_dictionaries({"abs_path": st.sampled_from([
        _JS_URL, f"async {_JS_URL}", "https://example.test/greet.js?x=1", "https://example.test/missing.js",
        "<anonymous>", "", "native", "webpack:///./app.js", "/abs/app.js", "C:\\app.js", "app.js"]),
        "lineno": position}, optional={
        "colno": position, "function": texts(), "filename": texts(), "module": texts(),
        "data": st.dictionaries(texts(), json_values(), max_size=2),
    })
    js_body = st.fixed_dictionaries(
        {"stacktraces": st.lists(st.fixed_dictionaries({"frames": st.lists(js_frame, min_size=1, max_size=6)}),
                                 min_size=1, max_size=3)},
        optional={
            "modules": st.lists(st.fixed_dictionaries({
                "type": st.just("sourcemap"), "code_file": st.sampled_from([_JS_URL, "x"]),
                "debug_id": st.one_of(st.uuids().map(str), texts())}), max_size=3),
            "release": texts(), "dist": texts(),
            "options": st.fixed_dictionaries({}, optional={
                "frame_order": st.sampled_from(["callee_first", "caller_first"]),
                "apply_source_context": st.booleans()}),
            "scraping": st.fixed_dictionaries({}, optional={
                "enabled": st.booleans(), "allowed_origins": st.lists(texts(), max_size=2),
                "headers": st.dictionaries(texts(), texts(), max_size=2)}),
            "allow_scraping": st.booleans(),
        },
    )
    native_or_js = st.sampled_from([damaged(native_body), damaged(js_body)]).flatmap(lambda body: body)
    return rarely(native_or_js.map(dump), st.one_of(json_values().map(dump), st.binary(max_size=32)))
