"""`symbolicator symbolicate` takes a `/symbolicate-js` JSON request too, answered from folders.

Expectations are the frames `node --enable-source-maps` printed for the fixture
bundle when it was built (tests/fixtures/js/expected/*.node.json).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "js"


def test_js_request_file_is_answered_like_the_endpoint(tmp_path: Path) -> None:
    node = json.loads((FIXTURES / "expected" / "esbuild.node.json").read_text())
    frames = [{"abs_path": "https://shop.example/assets/app.js", "lineno": f["line"], "colno": f["column"]}
              for f in node["frames"]]
    request = tmp_path / "event.json"
    request.write_text(json.dumps({"stacktraces": [{"frames": frames}], "modules": []}))
    cmd = [sys.executable, "-m", "symbolicator", "symbolicate", str(request), "--symbols", str(FIXTURES / "out" / "esbuild")]
    out = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["status"] == "completed"
    got = answer["stacktraces"][0]["frames"]
    assert len(got) == len(node["frames"])
    for frame, want in zip(got, node["frames"]):
        assert frame["abs_path"].endswith(want["original"]["file"]), frame
        assert (frame["lineno"], frame["colno"]) == (want["original"]["line"], want["original"]["column"])
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0 and "cart.ts:44:13" in text.stdout
