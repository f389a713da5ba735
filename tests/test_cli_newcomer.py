"""Issue 17 (items 1, 3 to 9): the CLI and service as a newcomer meets them.

Every command runs for real (a subprocess, or `cli.main` in this process where a
test must look inside), on real fixtures from real compilers and bundlers, against a
real service where one is needed. Expectations are the tools' users' (llvm-symbolizer
echoes what it cannot read; bad input exits 1, usage 2), not this project's output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from symbolicator.config import load_settings
from symbolicator.errors import ConfigError
from tests.support.service import free_port
from tests.test_sourcemaps import _expected

NATIVE = Path(__file__).parent / "fixtures" / "native" / "out"
JS = Path(__file__).parent / "fixtures" / "js" / "out"
ELF = NATIVE / "elf" / "c_gcc_O2_dwarf5"
TOKEN = "sntryu_" + "cd" * 32


def cli(*argv: str, stdin: str | None = None, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "symbolicator", *argv], input=stdin, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})}, cwd=cwd, check=False)


def llvm_symbolizer(obj: Path, lines: str) -> list[str]:
    return subprocess.run(["llvm-symbolizer", f"--obj={obj}"], input=lines, capture_output=True, text=True,
                          check=True).stdout.splitlines()


# --- item 7: one answer per input line, in order; bad input exits 1, usage 2 -----------------

def test_resolve_keeps_one_answer_per_line_like_llvm_symbolizer() -> None:
    lines = "0x1139\nnot-an-address\n0x1140\n"
    run = cli("resolve", "--debug-file", str(ELF), stdin=lines)
    assert run.returncode == 1
    assert "not-an-address" in run.stderr and "Traceback" not in run.stderr
    assert [ln for ln in run.stdout.splitlines() if ln] == [ln for ln in llvm_symbolizer(ELF, lines) if ln]
    as_json = cli("resolve", "--debug-file", str(ELF), "--json", stdin=lines)
    answers = [json.loads(ln) for ln in as_json.stdout.splitlines()]
    assert [a.get("address") for a in answers] == ["0x1139", None, "0x1140"]
    assert answers[1] == {"input": "not-an-address", "error": "not a hex address"}
    assert as_json.returncode == 1


def test_resolve_js_keeps_one_answer_per_line() -> None:
    frame = _expected("esbuild", "node")["frames"][0]
    good = f"{frame['line']}:{frame['column']}"
    run = cli("resolve-js", "--minified", "esbuild/app.js", "--json", stdin=f"{good}\nabc\n{good}\n", cwd=JS)
    assert run.returncode == 1 and "'abc'" in run.stderr
    answers = [json.loads(ln) for ln in run.stdout.splitlines()]
    assert [a["error"] for a in answers] == [None, "invalid_position", None]
    assert answers[0]["source"] == answers[2]["source"] == "../src/shop/cart.ts"
    text = cli("resolve-js", "--minified", "esbuild/app.js", good, "abc", cwd=JS)
    assert text.stdout.splitlines()[1] == "abc -> ?? (invalid_position)" and text.returncode == 1


def test_usage_errors_exit_2_and_bad_input_exits_1(tmp_path: Path) -> None:
    dist = cli("upload", "--scope", "acme/web", "--dist", "7", str(tmp_path))
    assert dist.returncode == 2 and "--dist needs --release" in dist.stderr
    assert cli("upload", "--scope", "acme", str(tmp_path)).returncode == 2
    assert cli("resolve", "--debug-file", str(ELF), "--arch", "z80", "0x1").returncode == 2
    assert cli("resolve", "--debug-file", str(tmp_path / "nope"), "0x1").returncode == 1


# --- item 5: say what the input was taken for; missing folders; why frames stay unresolved ---

@pytest.mark.parametrize(("name", "content", "taken_for"), [
    ("notes.txt", "just some notes\nnothing else\n", "read as a JavaScript stack trace"),
    ("list.json", "[1, 2]", "read as JSON, but it is a JSON list"),
    ("object.json", '{"foo": 1}', "read as JSON, but it is an object without \"stacktraces\""),
    ("foo.ips", '{"foo": 1}', "taken for an Apple .ips crash report"),
])
def test_symbolicate_refuses_what_it_cannot_read(tmp_path: Path, name: str, content: str, taken_for: str) -> None:
    (tmp_path / name).write_text(content)
    run = cli("symbolicate", str(tmp_path / name), "--symbols", str(tmp_path))
    assert run.returncode == 1
    assert run.stdout == ""  # nothing echoed back as if it were an answer
    assert taken_for in run.stderr and name in run.stderr


def test_symbolicate_missing_symbols_folder_is_an_error(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text("Error: x\n    at f (https://example.com/app.js:1:1)\n")
    run = cli("symbolicate", str(trace), "--symbols", str(tmp_path / "no-such-folder"))
    assert run.returncode == 1 and "no-such-folder: no such folder" in run.stderr


def test_unresolved_frames_say_why_in_text_output(tmp_path: Path) -> None:
    from tests.support.native_service import elf_module

    request = {"stacktraces": [{"frames": [{"instruction_addr": "0x555555555234"}]}],
               "modules": [elf_module(ELF, 0x555555554000)]}
    (tmp_path / "request.json").write_text(json.dumps(request))
    (tmp_path / "empty").mkdir()
    native = cli("symbolicate", str(tmp_path / "request.json"), "--symbols", str(tmp_path / "empty"))
    assert native.returncode == 0
    assert "no debug file with this debug id in the --symbols folders (missing)" in native.stderr
    trace = tmp_path / "trace.txt"
    trace.write_text("Error: x\n    at f (https://example.com/static/vendor.js:1:10)\n")
    js = cli("symbolicate", str(trace), "--symbols", str(tmp_path / "empty"))
    assert js.returncode == 0
    assert "unresolved: https://example.com/static/vendor.js: no minified file" in js.stderr


# --- item 6: files are read only inside the --symbols folders --------------------------------

def test_symbolicate_reads_trace_paths_only_when_allowed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    shutil.copytree(JS / "esbuild", outside)
    (tmp_path / "symbols").mkdir()
    frame = _expected("esbuild", "node")["frames"][0]
    trace = tmp_path / "trace.txt"
    trace.write_text(f"Error: x\n    at e.checkout ({outside / 'app.js'}:{frame['line']}:{frame['column']})\n")
    confined = cli("symbolicate", str(trace), "--symbols", str(tmp_path / "symbols"), "--json")
    assert confined.returncode == 0
    assert json.loads(confined.stdout)["errors"] == [{"abs_path": str(outside / "app.js"), "type": "missing_source"}]
    allowed = cli("symbolicate", str(trace), "--symbols", str(tmp_path / "symbols"), "--json", "--allow-trace-paths")
    resolved = json.loads(allowed.stdout)["stacktraces"][0]["frames"][0]
    assert (resolved["lineno"], resolved["colno"]) == (44, 13) and resolved["abs_path"].endswith("cart.ts")


def test_sourcemapping_url_cannot_leave_the_symbols_folders(tmp_path: Path) -> None:
    (tmp_path / "symbols").mkdir()
    shutil.copy(JS / "esbuild" / "app.js.map", tmp_path / "secret.map")
    js = (JS / "esbuild" / "app.js").read_text().replace("sourceMappingURL=app.js.map", "sourceMappingURL=../secret.map")
    assert "../secret.map" in js
    (tmp_path / "symbols" / "app.js").write_text(js)
    frame = _expected("esbuild", "node")["frames"][0]
    trace = tmp_path / "trace.txt"
    trace.write_text(f"Error: x\n    at e.checkout (https://example.com/app.js:{frame['line']}:{frame['column']})\n")
    run = cli("symbolicate", str(trace), "--symbols", str(tmp_path / "symbols"), "--json")
    assert json.loads(run.stdout)["errors"] == [{"abs_path": "https://example.com/app.js", "type": "missing_sourcemap"}]


# --- item 8: errors in the user's words -------------------------------------------------------

def test_error_messages_name_the_file_and_the_problem(tmp_path: Path) -> None:
    (tmp_path / "bad.map").write_text("this is not json")
    (tmp_path / "folder").mkdir()
    cases = [
        (("resolve", "--debug-file", str(tmp_path / "gone"), "0x1"), "cannot open " + str(tmp_path / "gone")),
        (("resolve-js", "--sourcemap", str(tmp_path / "gone.map"), "1:1"), "no such file or directory"),
        (("resolve-js", "--sourcemap", str(tmp_path / "bad.map"), "1:1"), f"{tmp_path / 'bad.map'}: not a valid source map"),
        (("resolve", "--debug-file", str(tmp_path / "folder"), "0x1"), "a folder, but not a .dSYM bundle"),
        (("symbolicate", str(tmp_path / "gone.crash"), "--symbols", str(tmp_path)), "cannot open"),
        (("upload", "--scope", "acme/web", "--url", f"http://127.0.0.1:{free_port()}", str(ELF)),
         "cannot reach the server at http://127.0.0.1:"),
    ]
    for argv, expected in cases:
        run = cli(*argv)
        assert run.returncode == 1, (argv, run.stderr)
        assert expected in run.stderr, (argv, run.stderr)
        for raw in ("[Errno", "Traceback", "ssl:default", "(char "):
            assert raw not in run.stderr, (argv, run.stderr)


def test_upload_refuses_a_map_that_is_not_a_source_map(service_factory: Any, tmp_path: Path) -> None:
    svc = service_factory({"auth": {"tokens": {TOKEN: {"scopes": ["acme/*"]}}}})
    build = tmp_path / "build"
    shutil.copytree(JS / "esbuild", build)
    (build / "extra.js.map").write_text('{"hello": "world"}')
    run = cli("upload", "--url", svc.url, "--token", TOKEN, "--scope", "acme/web", "--release", "1.0", "--wait",
              str(build))
    assert run.returncode == 1
    assert f"ERROR {build / 'extra.js.map'}: not a source map" in run.stderr
    assert "OK artifact bundle" in run.stdout  # the real files still went up
    assert "extra.js.map" not in run.stdout


def test_second_serve_on_a_busy_port_says_so_before_listening(service_factory: Any, tmp_path: Path) -> None:
    svc = service_factory()
    run = cli("serve", "--bind", f"127.0.0.1:{svc.port}", cwd=tmp_path, env={"SYMBOLICATOR_CONFIG": ""})
    assert run.returncode == 1
    assert "address already in use" in run.stderr and "listening" not in run.stderr
    assert "Traceback" not in run.stderr
    assert requests.get(svc.url + "/healthcheck", timeout=5).text == "ok"


# --- item 1: the client's variables do not stop the service ----------------------------------

def test_serve_runs_with_the_upload_clients_variables_set(service_factory: Any) -> None:
    svc = service_factory(env={"SYMBOLICATOR_URL": "http://127.0.0.1:1", "SYMBOLICATOR_TOKEN": TOKEN})
    assert requests.get(svc.url + "/healthcheck", timeout=5).text == "ok"
    assert load_settings(env={"SYMBOLICATOR_URL": "x", "SYMBOLICATOR_TOKEN": "y"}) == load_settings(env={})
    with pytest.raises(ConfigError, match="SYMBOLICATOR_TOKENS"):
        load_settings(env={"SYMBOLICATOR_TOKENS": "y"})  # a typo of a setting is still refused


# --- item 3: log_level, sizes as strings ------------------------------------------------------

def test_bad_log_level_is_a_config_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="log_level: expected one of debug, info"):
        load_settings(env={"SYMBOLICATOR_LOG_LEVEL": "verbose"})
    assert load_settings(env={"SYMBOLICATOR_LOG_LEVEL": "WARNING"}).log_level == "WARNING"
    (tmp_path / "s.toml").write_text('log_level = "loud"\n')
    run = cli("serve", "--config", str(tmp_path / "s.toml"), "--bind", f"127.0.0.1:{free_port()}")
    assert run.returncode == 1 and "log_level" in run.stderr and "Traceback" not in run.stderr


def test_every_size_takes_a_string(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text('[limits]\nchunk_size = "4 MiB"\nmax_body_bytes = "10 MiB"\n')
    limits = load_settings(tmp_path / "s.toml", env={}).limits
    assert (limits.chunk_size, limits.max_body_bytes) == (4 * 1024**2, 10 * 1024**2)
    assert load_settings(env={"SYMBOLICATOR_LIMITS_CHUNK_SIZE": "1MiB"}).limits.chunk_size == 1024**2
    with pytest.raises(ConfigError, match="limits.chunk_size: must be a power of two"):
        load_settings(env={"SYMBOLICATOR_LIMITS_CHUNK_SIZE": "3 MiB"})


# --- item 4: the progress bar counts bytes ----------------------------------------------------

def test_upload_progress_ends_at_the_file_size(service_factory: Any, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from symbolicator import cli as cli_module
    from symbolicator.commands import upload_run

    svc = service_factory({"auth": {"tokens": {TOKEN: {"scopes": ["acme/*"]}}}, "limits": {"chunk_size": "64 KiB"}})
    elf = tmp_path / "cpp_gcc_O3_dwarf5"
    shutil.copy(NATIVE / "elf" / elf.name, elf)
    assert elf.stat().st_size % (64 * 1024)  # a short last chunk: what the old total got wrong
    seen: dict[str, int] = {"total": 0, "sent": 0}

    class Bar:
        def __init__(self, total: int, args: Any) -> None:
            seen["total"] += total

        def __enter__(self) -> Any:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def update(self, n: int) -> None:
            seen["sent"] += n

    monkeypatch.setattr(upload_run, "_bar", Bar)
    code = cli_module.main(["upload", "--url", svc.url, "--token", TOKEN, "--scope", "acme/web", "--wait",
                            "--no-compression", str(elf)])
    assert code == 0
    assert seen == {"total": elf.stat().st_size, "sent": elf.stat().st_size}
