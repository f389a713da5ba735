"""`service.js.offline.symbolicate_trace`: pasted V8 / Firefox / Safari traces → original positions from folders.

The V8 trace is real: node runs the committed esbuild bundle (without source maps)
and the test reads what it printed. Expected original positions are the ones
`node --enable-source-maps` reported when the fixtures were built
(`tests/fixtures/js/expected/esbuild.node.json`); Firefox and Safari traces are
written in their documented formats with the same positions.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from symbolicator.service.js.offline import symbolicate_trace

REPO = Path(__file__).resolve().parent.parent
JS = REPO / "tests" / "fixtures" / "js"
NODE = json.loads((JS / "expected/esbuild.node.json").read_text())["frames"]


def originals(shift: int = 0) -> list[str]:
    return [f"{JS / f['original']['file']}:{f['original']['line']}:{f['original']['column']}" for f in NODE]


@pytest.fixture(scope="module")
def v8_trace() -> str:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    out = subprocess.run(["node", str(JS / "out/esbuild/app.js"), "shop"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and " at " in out.stderr, out.stderr
    return out.stderr


def test_real_v8_trace_becomes_the_original_trace(v8_trace: str) -> None:
    text = symbolicate_trace(v8_trace, [JS / "out/esbuild"], as_json=False)
    lines = text.splitlines()
    assert lines[0] == v8_trace.splitlines()[0]
    frames = [line for line in lines if line.startswith("    at ")]
    assert len(frames) == len([line for line in v8_trace.splitlines() if line.startswith("    at ")])
    expected = originals()
    assert frames[0] == f"    at Cart.checkout ({expected[0]})"
    assert frames[1].endswith(f"({expected[1]})") or frames[1] == f"    at {expected[1]}"
    assert frames[2] == "    at Array.forEach (<anonymous>)"
    assert frames[3] == f"    at main ({expected[2]})"


def test_json_is_what_the_endpoint_answers(v8_trace: str) -> None:
    answer = json.loads(symbolicate_trace(v8_trace, [JS / "out/esbuild"], as_json=True))
    assert answer["status"] == "completed" and answer["errors"] == []
    frames = answer["stacktraces"][0]["frames"]
    raw = answer["raw_stacktraces"][0]["frames"]
    assert len(frames) == len(raw) == 3
    innermost = frames[-1]
    original = NODE[0]["original"]
    assert innermost["abs_path"] == str(JS / original["file"])
    assert (innermost["lineno"], innermost["colno"]) == (original["line"], original["column"])
    source = (JS / original["file"]).read_text().splitlines()
    assert innermost["context_line"] == source[original["line"] - 1]
    assert innermost["data"]["symbolicated"] is True and innermost["data"]["sourcemap"].endswith("app.js.map")
    assert raw[-1]["context_line"].startswith("{snip} ") and raw[-1]["lineno"] == 1


@pytest.mark.parametrize("style", ["firefox", "safari"])
def test_firefox_and_safari_traces(style: str) -> None:
    url = "https://shop.example.com/static/js/app.js"
    if style == "firefox":
        trace = "\n".join([f"checkout@{url}:1:516", f"h/<@{url}:1:1288", f"h@{url}:1:1274", f"@{url}:1:1400"])
    else:
        trace = "\n".join([f"checkout@{url}:1:516", f"{url}:1:1288", "forEach@[native code]", f"h@{url}:1:1274"])
    text = symbolicate_trace("CheckoutError: too much\n" + trace + "\n", [JS / "out/esbuild"], as_json=False)
    lines = [line for line in text.splitlines() if line.startswith("    at ")]
    expected = originals()
    assert lines[0] == f"    at Cart.checkout ({expected[0]})"
    assert expected[1] in lines[1]
    assert any(line == f"    at main ({expected[2]})" for line in lines[2:])


def test_map_found_by_debug_id_and_missing_files_stay_unchanged(tmp_path: Path) -> None:
    dist, maps = tmp_path / "dist", tmp_path / "maps"
    dist.mkdir()
    maps.mkdir()
    js = (JS / "out/debugid/app.js").read_text()
    (dist / "app.js").write_text(re.sub(r"//# sourceMappingURL=\S+", "", js))
    shutil.copy(JS / "out/debugid/app.js.map", maps / "renamed.map")
    shift = js.split("\n").index((JS / "out/esbuild/app.js").read_text().split("\n")[0])
    trace = (f"Error: x\n    at e.checkout (https://cdn.example.com/app.js:{1 + shift}:516)\n"
             "    at other (https://cdn.example.com/vendor.js:1:10)\n")
    answer = json.loads(symbolicate_trace(trace, [tmp_path], as_json=True))
    frames = answer["stacktraces"][0]["frames"]
    assert frames[1]["data"]["resolved_with"] == "debug-id"
    assert (frames[1]["lineno"], frames[1]["colno"]) == (44, 13) and frames[1]["abs_path"].endswith("cart.ts")
    assert frames[0]["abs_path"] == "https://cdn.example.com/vendor.js"
    assert answer["errors"] == [{"abs_path": "https://cdn.example.com/vendor.js", "type": "missing_source"}]
    text = symbolicate_trace(trace, [tmp_path], as_json=False)
    assert "    at other (https://cdn.example.com/vendor.js:1:10)" in text
