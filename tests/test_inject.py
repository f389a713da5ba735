"""`symbolicator inject` against the real `sentry-cli sourcemaps inject` (3.8.0).

tests/fixtures/js_scopes/inject/input/ holds bundles from real bundlers plus hand-made corners;
expected/ is input/ after the real sentry-cli (both rebuilt by build.js there). Debug IDs are
normalised before comparing, since 3.x's ID input is unknown (we use 2.x's rule); the two
deliberate differences documented in symbolicator/sourcemaps/inject.py are asserted as such.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolicator.cli import main
from symbolicator.sourcemaps.inject import (
    SNIPPET,
    Ignored,
    Injection,
    debug_id_from_bytes,
    plan,
    shift_mappings,
)
from symbolicator.sourcemaps.vlq import decode_mappings
from tests.support.tools import SENTRY_CLI

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "js_scopes" / "inject"
INPUT, EXPECTED = FIXTURES / "input", FIXTURES / "expected"
SENTRY_CLI_ENTRY = ROOT / "node_modules" / "@sentry" / "cli" / "bin" / "sentry-cli"
HAVE_NODE = shutil.which("node") is not None and (ROOT / "node_modules" / "@jridgewell" / "trace-mapping").exists()
FILES = sorted(p.relative_to(EXPECTED).as_posix() for p in EXPECTED.rglob("*") if p.is_file())
DEVIATIONS = {"google.js.map"}
ID_LINE = re.compile(r"//# debugId=([0-9a-f-]{36})")
DATA_URL = re.compile(r"(sourceMappingURL=data:[^,]*;base64,)(\S+)")


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ours") / "dist"
    shutil.copytree(INPUT, out)
    assert main(["inject", str(out)]) == 0
    return out


def id_of(directory: Path, rel: str) -> str | None:
    js = rel[: -len(".map")] if rel.endswith(".map") else rel
    if rel == "other.js.map":
        js = "last.js"
    m = ID_LINE.search((directory / js).read_text(encoding="utf-8"))
    return m.group(1) if m else None


def normalised(directory: Path, rel: str) -> str:
    text = (directory / rel).read_bytes().decode("utf-8")
    text = DATA_URL.sub(lambda m: m.group(1) + base64.b64decode(m.group(2)).decode("utf-8"), text)
    debug_id = id_of(directory, rel)
    return text.replace(debug_id, "<DEBUG-ID>") if debug_id else text


@pytest.mark.parametrize("rel", [f for f in FILES if f not in DEVIATIONS])
def test_output_matches_sentry_cli(ours: Path, rel: str) -> None:
    mine, theirs = normalised(ours, rel), normalised(EXPECTED, rel)
    assert mine.splitlines() == theirs.splitlines()
    assert mine == theirs, "same lines, different line endings"


def test_documented_deviations(ours: Path) -> None:
    theirs = json.loads(normalised(EXPECTED, "google.js.map"))
    mine = json.loads(normalised(ours, "google.js.map"))
    assert "ignoreList" not in theirs and mine.pop("ignoreList") == [0]
    assert list(mine.items()) == list(theirs.items())


def test_debug_ids(ours: Path) -> None:
    for rel in ("plain.js", "abs.js", "missing.js"):
        assert id_of(ours, rel) == id_of(EXPECTED, rel), "no map: same rule as 3.8.0, same ID"
    for rel in ("app.min.js", "terser.js", "sub/rollup.mjs", "index.js"):
        debug_id = id_of(ours, rel)
        assert debug_id == debug_id_from_bytes((INPUT / f"{rel}.map").read_bytes())
        assert uuid.UUID(debug_id).version == 5
        assert json.loads((ours / f"{rel}.map").read_bytes())["debugId"] == debug_id
    assert id_of(ours, "done.js") == "11111111-2222-3333-4444-555555555555"
    assert id_of(ours, "predebug.js") == id_of(EXPECTED, "predebug.js") == "22222222-3333-4444-5555-666666666666"


@pytest.mark.skipif(not HAVE_NODE, reason="needs node + node_modules")
@pytest.mark.parametrize("side", ["ours", "sentry-cli"])
def test_positions_resolve_as_before_injection(ours: Path, side: str, tmp_path: Path) -> None:
    out = ours if side == "ours" else EXPECTED
    pairs = []
    for injection in plan([INPUT]):
        if not isinstance(injection, Injection) or injection.placement != "top":
            continue
        rel = injection.js_path.relative_to(INPUT).as_posix()
        old_map = injection.map_path.as_posix() if injection.map_path else None
        new_map = (out / injection.map_path.relative_to(INPUT)).as_posix() if injection.map_path else None
        pairs.append({"name": rel, "old_js": str(injection.js_path), "old_map": old_map, "new_js": str(out / rel), "new_map": new_map})
    (tmp_path / "pairs.json").write_text(json.dumps(pairs))
    result = subprocess.run(["node", str(FIXTURES / "check_positions.js"), str(tmp_path / "pairs.json")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert len(report) >= 20
    for name, entry in report.items():
        assert entry["checked"] > 0 and entry["mismatches"] == [], (name, entry)


def test_second_run_changes_nothing(ours: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    shutil.copytree(ours, again)
    results = plan([again])
    assert results and all(isinstance(r, Ignored) and r.reason == "already has a debug id" for r in results)
    assert main(["inject", str(again)]) == 0
    for path in ours.rglob("*"):
        if path.is_file():
            assert (again / path.relative_to(ours)).read_bytes() == path.read_bytes()


@pytest.mark.skipif(not SENTRY_CLI_ENTRY.exists(), reason="needs @sentry/cli from npm")
def test_sentry_cli_sees_our_ids(ours: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(ours, copy)
    report = subprocess.run([*SENTRY_CLI, "sourcemaps", "inject", "."], cwd=copy, capture_output=True, text=True, timeout=120).stdout
    assert "Modified: The following source files" not in report
    assert "already have debug ids" in report


@pytest.mark.skipif(not SENTRY_CLI_ENTRY.exists(), reason="needs @sentry/cli from npm")
def test_recorded_expectation_is_what_sentry_cli_writes(tmp_path: Path) -> None:
    live = tmp_path / "live"
    shutil.copytree(INPUT, live)
    subprocess.run([*SENTRY_CLI, "sourcemaps", "inject", "."], cwd=live, check=True, capture_output=True, timeout=120)
    for rel in FILES:
        assert (live / rel).read_bytes() == (EXPECTED / rel).read_bytes(), rel


def test_dry_run_lists_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "dist"
    shutil.copytree(INPUT, work)
    assert main(["inject", "--dry-run", str(work)]) == 0
    out = capsys.readouterr().out
    assert "Would modify" in out and "app.min.js.map" in out and "done.js" in out
    for path in INPUT.rglob("*"):
        if path.is_file():
            assert (work / path.relative_to(INPUT)).read_bytes() == path.read_bytes()


def test_help_explains_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["inject", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for phrase in ("sentry-cli sourcemaps inject", "//# debugId=", "--dry-run", "debugId"):
        assert phrase in text


def test_missing_path_is_an_input_error(tmp_path: Path) -> None:
    assert main(["inject", str(tmp_path / "nope")]) == 1


@pytest.mark.parametrize(
    ("mappings", "line", "col", "expected"),
    [
        ("AAAA;AACA", 0, 0, ";;AAAA;AACA"),
        ("AAAA,cAAc;AACAA,IAAI", 0, 14, "AAAA;;AAAc;AACAA,IAAI"),
        ("AAAA", 0, 4, "AAAA;;AAAA"),
        ("AAAAA", 0, 4, "AAAAA;;AAAAA"),
        ("AAAA;;AAcO", 2, 0, "AAAA;;;;AAcO"),
        ("AAAA;;EAAE", 2, 0, "AAAA;;;;AAAA,EAAE"),
        ("", 0, 0, ""),
        ("AAAA;AACA;;", 0, 0, ";;AAAA;AACA"),
    ],
)
def test_shift_mappings(mappings: str, line: int, col: int, expected: str) -> None:
    assert shift_mappings(mappings, line, col) == expected


Segment = tuple[int, int, int, int, int, int]


def encode(segments: list[Segment]) -> str:
    """Reference encoder for the property test: absolute segments → VLQ, the plain way."""
    from symbolicator.sourcemaps.inject import _vlq

    lines: list[list[str]] = []
    last_col: list[int] = []
    prev = [0, 0, 0, 0]
    for gen_line, gen_col, src, src_line, src_col, name in sorted(segments):
        while len(lines) <= gen_line:
            lines.append([])
            last_col.append(0)
        values = [gen_col - last_col[gen_line], src - prev[0], src_line - prev[1], src_col - prev[2]]
        last_col[gen_line] = gen_col
        prev[:3] = [src, src_line, src_col]
        if name >= 0:
            values.append(name - prev[3])
            prev[3] = name
        lines[gen_line].append(_vlq(values))
    return ";".join(",".join(line) for line in lines)


@settings(max_examples=500)
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.integers(0, 40), st.integers(0, 2), st.integers(0, 30), st.integers(0, 30), st.integers(-1, 3)),
        max_size=25,
        unique_by=lambda s: (s[0], s[1]),
    ),
    st.integers(0, 5),
    st.integers(0, 45),
)
def test_shift_mappings_moves_every_segment_and_nothing_else(segments: list[Segment], line: int, col: int) -> None:
    shifted = decode_mappings(shift_mappings(encode(segments), line, col))
    got = list(zip(*(getattr(shifted, f).tolist() for f in ("gen_line", "gen_col", "src", "src_line", "src_col", "name"))))
    ordered = sorted(segments)
    want: list[Segment] = []
    covering = [s for s in ordered if (s[0], s[1]) < (line, col)]
    for s in ordered:
        if (s[0], s[1]) < (line, col):
            want.append(s)
        elif s[0] == line:
            want.append((line + 2, s[1] - col, *s[2:]))
        else:
            want.append((s[0] + 2, *s[1:]))
    exact = any((s[0], s[1]) == (line, col) for s in ordered)
    if covering and not exact:
        want.append((line + 2, 0, *covering[-1][2:]))
    assert sorted(got) == sorted(want)


def test_snippet_is_the_one_sentry_cli_writes() -> None:
    line = (EXPECTED / "app.min.js").read_text().splitlines()[1]
    debug_id = id_of(EXPECTED, "app.min.js")
    assert debug_id is not None and line == SNIPPET.replace("__SENTRY_DEBUG_ID__", debug_id)
