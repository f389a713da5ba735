"""Settings precedence and validation (API.md §5), through the real loader and CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from symbolicator.config import ConfigError, describe, load_settings


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


def test_defaults_are_the_embedded_service() -> None:
    s = load_settings(env={})
    assert s.bind == "127.0.0.1:3021"
    assert s.storage.backend == "local" and s.storage.local_dir == Path("uploads")
    assert s.cache.dir == Path("cache")
    assert s.bound_to_loopback


def test_precedence_defaults_file_env_flags(tmp_path: Path) -> None:
    cfg = write(tmp_path, 'bind = "127.0.0.1:4000"\n[cache]\ndir = "/tmp/c"\ndownloads_max_bytes = "2 GiB"\n'
                          '[limits]\nmax_body_bytes = 1000\n')
    env = {"SYMBOLICATOR_CACHE_DIR": "/tmp/from-env", "SYMBOLICATOR_LIMITS_MAX_CONCURRENT_JOBS": "7"}
    s = load_settings(cfg, env=env, overrides={"bind": "127.0.0.1:5000"})
    assert s.bind == "127.0.0.1:5000"                   # flag beats file
    assert s.cache.dir == Path("/tmp/from-env")         # env beats file
    assert s.cache.downloads_max_bytes == 2 * 1024**3   # file beats default, sizes with units
    assert s.limits.max_body_bytes == 1000
    assert s.limits.max_concurrent_jobs == 7
    assert s.cache.derived_max_bytes == load_settings(env={}).cache.derived_max_bytes


def test_config_path_from_environment(tmp_path: Path) -> None:
    cfg = write(tmp_path, "workers = 3\n")
    assert load_settings(env={"SYMBOLICATOR_CONFIG": str(cfg)}).workers == 3


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("   \n# only a comment\n", "is empty"),
    ("bnid = \"x\"\n", "unknown setting: bnid"),
    ("[storage]\nbackend = \"local\"\nlocal_dri = \"u\"\n", "unknown setting: storage.local_dri"),
    ("[storage]\nbackend = \"ftp\"\n", "storage.backend: expected one of"),
    ("[storage]\nbackend = \"s3\"\n", "storage.s3.bucket: required"),
    ("workers = \"many\"\n", "workers: expected an integer"),
    ("[limits]\nchunk_size = 1000000\n", "power of two"),
    ("[auth.tokens.abc]\nrights = [\"delete\"]\n", "unknown right"),
    ("[scope_aliases]\n\"42\" = \"Acme/Web\"\n", "invalid scope"),
    ("bind = \"nonsense\"\n", "bind: expected HOST:PORT"),
    ("this is not toml", "not valid TOML"),
])
def test_bad_files_are_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text), env={})


def test_unknown_environment_variable_is_an_error() -> None:
    with pytest.raises(ConfigError, match="SYMBOLICATOR_CACHE_DRI"):
        load_settings(env={"SYMBOLICATOR_CACHE_DRI": "x"})


def test_env_json_for_tables() -> None:
    s = load_settings(env={"SYMBOLICATOR_AUTH_TOKENS": '{"t0ken-abcdef": {"scopes": ["acme/*"], "rights": ["upload"]}}',
                           "SYMBOLICATOR_SCOPE_ALIASES": '{"42": "acme/web"}'})
    assert s.auth.tokens["t0ken-abcdef"].scopes == ("acme/*",)
    assert s.scope_aliases == {"42": "acme/web"}


def test_secrets_are_masked(tmp_path: Path) -> None:
    cfg = write(tmp_path, '[auth.tokens."supersecret-token-123"]\nscopes = ["acme/web"]\n'
                          '[[sources]]\nid = "s"\ntype = "s3"\nbucket = "b"\nsecret_key = "SK-hidden"\naccess_key = "AK-hidden"\n')
    text = json.dumps(describe(load_settings(cfg, env={})))
    assert "supersecret-token-123" not in text and "SK-hidden" not in text and "AK-hidden" not in text
    assert "acme/web" in text


def _bare_env() -> dict[str, str]:
    """No SYMBOLICATOR_* settings, but the same code under test (`PYTHONPATH`, as the README runs it)."""
    return {"PATH": "/usr/bin:/bin", **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}


def test_serve_refuses_open_network_bind(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "symbolicator", "serve", "--bind", "0.0.0.0:0"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60, env=_bare_env())
    assert out.returncode == 1
    assert "auth.disabled" in out.stderr and "not loopback" in out.stderr


@pytest.mark.parametrize("source, message", [
    ('id = "x"\ntype = "ftp"', "unsupported type"),
    ('id = "x"\ntype = "filesystem"\npath = "relative/dir"', "path must be absolute"),
    ('id = "x"\ntype = "http"\nurl = "file:///etc"', r"http\(s\) URL"),
    ('type = "http"\nurl = "http://symbols.example"', "needs a non-empty string `id`"),
    ('id = "x"\ntype = "http"\nurl = "http://symbols.example"\nlayuot = {type = "native"}', "unknown key"),
])
def test_bad_sources_stop_startup(tmp_path: Path, source: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, f"[[sources]]\n{source}\n"), env={})


def test_sources_are_parsed_into_the_settings_each_object_its_own() -> None:
    """Parsed once at load, held by the settings: nothing keyed by `id(settings)` can hand one
    settings object another's sources after Python reuses the id."""
    from symbolicator.service.native.modules import RequestSources
    from symbolicator.sources import FilesystemSource

    wrong = 0
    for i in range(300):
        settings = load_settings(env={}, overrides={"sources": [{"id": f"s{i}", "type": "filesystem", "path": f"/srv/{i}"}]})
        assert settings.sources == (FilesystemSource(id=f"s{i}", path=Path(f"/srv/{i}")),)
        plan = RequestSources.from_request(settings, None).plan
        wrong += [s.id for s in plan.sources] != [f"s{i}"]
        del settings
    assert wrong == 0


def test_source_secrets_are_masked_in_the_description() -> None:
    settings = load_settings(env={}, overrides={"sources": [
        {"id": "h", "type": "http", "url": "https://symbols.example/", "headers": {"Authorization": "Bearer hunter2"}},
        {"id": "b", "type": "s3", "bucket": "syms", "access_key": "AKIA1", "secret_key": "hunter3"},
    ]})
    text = json.dumps(describe(settings))
    assert "hunter2" not in text and "hunter3" not in text and "AKIA1" not in text
    assert '"bucket": "syms"' in text
