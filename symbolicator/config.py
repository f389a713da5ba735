"""Settings: defaults → TOML file → `SYMBOLICATOR_*` environment → command-line flags.

Settings are frozen dataclasses, built once at start and passed down; nothing
reads the environment later. The schema *is* the dataclasses below: a key that
is not a field is an error (a typo must not silently fall back to a default),
and so is an empty file. Environment names are derived from the schema
(`storage.s3.bucket` ↔ `SYMBOLICATOR_STORAGE_S3_BUCKET`), so every key can be
set either way. `describe()` renders the effective settings with secrets masked
for the startup log.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import ipaddress
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from symbolicator.errors import ConfigError, InvalidId
from symbolicator.sources.config import SourceConfig, parse_config_sources
from symbolicator.types import Scope

ENV_PREFIX = "SYMBOLICATOR_"
CONFIG_ENV = "SYMBOLICATOR_CONFIG"
# The `upload` client's variables (`upload --help`): not settings of the service, so a shell
# or CI job set up for uploads can run `serve` too.
CLIENT_ENV = ("SYMBOLICATOR_URL", "SYMBOLICATOR_TOKEN")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# Sizes whose key does not end in `_bytes`; they take `"8 MiB"` as every size does.
SIZE_KEYS = ("limits.chunk_size",)
KiB, MiB, GiB = 1024, 1024**2, 1024**3

RIGHTS = ("upload", "symbolicate")
JSON_MAX_DEPTH = 254  # orjson writes nothing nested deeper, and responses echo what requests nest


@dataclass(frozen=True)
class S3Settings:
    """Where `storage.backend = "s3"` keeps objects; credentials come from boto3's usual chain."""

    bucket: str = ""
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class StorageSettings:
    backend: Literal["local", "s3"] = "local"
    local_dir: Path = Path("uploads")
    s3: S3Settings = field(default_factory=S3Settings)


@dataclass(frozen=True)
class CacheSettings:
    """Two budgets: downloads are big and short-lived, derived caches small and long-lived."""

    dir: Path = Path("cache")
    downloads_max_bytes: int = 20 * GiB
    derived_max_bytes: int = 10 * GiB
    shared: str = ""  # converted files shared by instances: "s3://bucket/prefix" or a folder (caching/shared.py)
    shared_endpoint_url: str | None = None  # default: storage.s3.endpoint_url
    shared_region: str | None = None  # default: storage.s3.region


@dataclass(frozen=True)
class TokenSettings:
    """What one bearer token may do: `scopes` are scope names, `org/*` or `*`."""

    scopes: tuple[str, ...] = ()
    rights: tuple[str, ...] = RIGHTS


@dataclass(frozen=True)
class AuthSettings:
    tokens: Mapping[str, TokenSettings] = field(default_factory=dict)
    symbolicate: Literal["open", "token"] = "open"
    disabled: bool = False


@dataclass(frozen=True)
class LimitsSettings:
    """Caps that keep one request (or one hostile file) from taking the service down.

    Request shape: `max_body_bytes` (413), `max_frames_per_request` summed over
    all stack traces (413: well formed but bigger than we take, as for bytes),
    `max_json_depth` (400; at most 254, the deepest the JSON writer can echo
    back). Work: `max_concurrent_jobs` (503 + `Retry-After` beyond),
    `job_timeout_s` (the job ends `timeout`). Files: `max_file_bytes`,
    `max_bundle_entries`, `max_bundle_uncompressed_bytes` (zip bombs),
    `max_decompressed_section_bytes` (a compressed DWARF section claiming or
    inflating to more is `malformed`, and is never inflated past it).
    Tenants: `max_concurrent_jobs_per_scope` is one scope's share of the job
    slots (503 beyond, while other scopes still get theirs; unset, all but a
    quarter of `max_concurrent_jobs`, which stays for the other scopes); `max_stacktraces_per_request`
    and `max_modules_per_request` (413) bound the work of bodies of many empty
    entries. Connections: `header_timeout_s` to send a request's headers,
    `body_timeout_s` to send its body (408, then the connection closes), and
    `max_connections` open at once (more are closed as they arrive). Memory:
    `js_names_max_memory_bytes` (the function-name pass of one minified file;
    over it the frames keep exact positions without original function names),
    `worker_max_memory_bytes` (RLIMIT_DATA of each conversion worker; 0: none).
    Conversions: `conversion_memory_bytes` (rows a symcache conversion holds in memory before it
    spills sorted runs to the cache folder; see docs/performance.md).
    """

    max_body_bytes: int = 55 * MiB
    max_download_bytes: int = 15 * GiB
    max_concurrent_jobs: int = 200
    job_timeout_s: float = 900.0
    chunk_size: int = 8 * MiB
    max_file_bytes: int = 4 * GiB
    max_bundle_entries: int = 10_000
    max_bundle_uncompressed_bytes: int = 2 * GiB
    max_frames_per_request: int = 10_000
    max_json_depth: int = 64
    max_decompressed_section_bytes: int = 4 * GiB
    max_concurrent_jobs_per_scope: int | None = None
    max_stacktraces_per_request: int = 2_000
    max_modules_per_request: int = 5_000
    header_timeout_s: float = 15.0
    body_timeout_s: float = 300.0
    max_connections: int = 1_024
    js_names_max_memory_bytes: int = 384 * MiB
    worker_max_memory_bytes: int = 2 * GiB
    conversion_memory_bytes: int = 1 * GiB


def jobs_per_scope(limits: LimitsSettings) -> int:
    """One scope's share of the job slots: the setting, else all but a quarter (kept for the other scopes)."""
    if limits.max_concurrent_jobs_per_scope is not None:
        return limits.max_concurrent_jobs_per_scope
    return limits.max_concurrent_jobs - limits.max_concurrent_jobs // 4


@dataclass(frozen=True)
class FetchSettings:
    """The outbound client. Tenants: `per_scope_concurrency` fetches at once per scope
    (and all but a quarter of `per_host_concurrency` per scope and host); `max_fetches_per_request`
    distinct outbound fetches per request, frames past it fail with a reason naming it."""

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    total_timeout_s: float = 300.0
    max_redirects: int = 5
    max_bytes: int = 64 * MiB
    per_host_concurrency: int = 8
    per_scope_concurrency: int = 32
    max_fetches_per_request: int = 200
    allow_private_addresses: bool = False
    allowed_hosts: tuple[str, ...] = ()
    allowed_networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScrapingSettings:
    enabled: bool = True
    allowed_origins: tuple[str, ...] = ("*",)


@dataclass(frozen=True)
class Settings:
    bind: str = "127.0.0.1:3021"
    log_level: str = "info"
    storage: StorageSettings = field(default_factory=StorageSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    scraping: ScrapingSettings = field(default_factory=ScrapingSettings)
    scope_aliases: Mapping[str, str] = field(default_factory=dict)
    sources: tuple[SourceConfig, ...] = ()
    allow_request_sources: bool = False
    workers: int = max(1, os.cpu_count() or 1)

    @property
    def host(self) -> str:
        return self.bind.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.bind.rsplit(":", 1)[1])

    @property
    def bound_to_loopback(self) -> bool:
        host = self.host
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def load_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings; `overrides` are dotted keys from flags (`{"bind": "…"}`)."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    path = path or env.get(CONFIG_ENV) or None
    if path is not None:
        data = _read_toml(Path(path))
    for dotted, value in _env_values(env).items():
        _set_dotted(data, dotted, value)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, dotted, value)
    settings: Settings = _build(Settings, data, "")
    _validate(settings)
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    if not text.strip():
        raise ConfigError(f"config file {path} is empty")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    if not data:
        raise ConfigError(f"config file {path} is empty: it sets nothing")
    return data


def _leaf_paths(cls: type, prefix: str = "") -> dict[str, Any]:
    """Every settable dotted key of the schema with its type."""
    out: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            out.update(_leaf_paths(hint, f"{prefix}{f.name}."))  # type: ignore[arg-type]
        else:
            out[f"{prefix}{f.name}"] = hint
    return out


def env_name(dotted: str) -> str:
    return ENV_PREFIX + dotted.replace(".", "_").upper()


def _env_values(env: Mapping[str, str]) -> dict[str, Any]:
    known = {env_name(k): k for k in _leaf_paths(Settings)}
    values: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV or name in CLIENT_ENV:
            continue
        if name not in known:
            raise ConfigError(f"unknown setting in environment: {name}")
        values[known[name]] = _parse_env(raw, name)
    return values


def _parse_env(raw: str, name: str) -> Any:
    """Environment values are strings; JSON spells lists, tables and numbers."""
    text = raw.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{name}: not valid JSON: {exc}") from exc
    return text


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part} is not a table")
        node = child
    node[leaf] = value


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": KiB, "m": 1000**2, "mb": 1000**2, "mib": MiB,
          "g": 1000**3, "gb": 1000**3, "gib": GiB, "t": 1000**4, "tb": 1000**4, "tib": 1024**4}


def parse_size(value: Any, where: str) -> int:
    """Byte sizes as integers or strings such as `"64 MiB"` or `"10GB"`."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a size, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m and (m.group(2) or "").lower() in _UNITS:
            return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])
    raise ConfigError(f"{where}: expected a size such as 1048576 or \"64 MiB\", got {value!r}")


def _convert(hint: Any, value: Any, where: str) -> Any:
    if hint == tuple[SourceConfig, ...]:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list of source tables, got {value!r}")
        return parse_config_sources(value)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table")
        return _build(hint, value, where + ".")  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value == "" and type(None) in args):
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if where.endswith("_bytes") or where in SIZE_KEYS:
            return parse_size(value, where)
        try:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if hint is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        if args and args[1] is Any:
            return dict(value)
        return {str(k): _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    raise ConfigError(f"{where}: unsupported setting type {hint!r}")  # pragma: no cover


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown setting: {', '.join(prefix + u for u in unknown)}")
    return cls(**{k: _convert(hints[k], v, prefix + k) for k, v in data.items()})


def _validate(s: Settings) -> None:
    if s.log_level.lower() not in LOG_LEVELS:
        raise ConfigError(f"log_level: expected one of {', '.join(LOG_LEVELS)}, got {s.log_level!r}")
    try:
        if not 0 <= s.port < 65536:
            raise ValueError
    except (ValueError, IndexError):
        raise ConfigError(f"bind: expected HOST:PORT, got {s.bind!r}") from None
    if s.storage.backend == "s3" and not s.storage.s3.bucket:
        raise ConfigError("storage.s3.bucket: required when storage.backend = \"s3\"")
    if s.cache.shared.startswith("s3://") and not s.cache.shared[len("s3://"):].partition("/")[0]:
        raise ConfigError(f"cache.shared: expected s3://BUCKET/PREFIX or a folder, got {s.cache.shared!r}")
    chunk = s.limits.chunk_size
    if chunk < 64 * KiB or chunk & (chunk - 1):
        raise ConfigError("limits.chunk_size: must be a power of two of at least 65536 (sentry-cli requires it)")
    _validate_limits(s.limits)
    for name in ("per_host_concurrency", "per_scope_concurrency", "max_fetches_per_request"):
        if getattr(s.fetch, name) < 1:
            raise ConfigError(f"fetch.{name}: must be at least 1")
    for token, t in s.auth.tokens.items():
        if not token:
            raise ConfigError("auth.tokens: empty token")
        for right in t.rights:
            if right not in RIGHTS:
                raise ConfigError(f"auth.tokens.<token>.rights: unknown right {right!r} (known: {', '.join(RIGHTS)})")
        for pattern in t.scopes:
            if pattern != "*":
                _scope(pattern.removesuffix("/*"), "auth.tokens.<token>.scopes")
    for alias, target in s.scope_aliases.items():
        _scope(target, f"scope_aliases.{alias}")
    if s.workers < 1:
        raise ConfigError("workers: must be at least 1")


def _validate_limits(limits: LimitsSettings) -> None:
    """Zero or negative caps would refuse everything; a deeper JSON limit would let 500s through."""
    for name in ("max_body_bytes", "max_concurrent_jobs", "max_frames_per_request", "max_json_depth",
                 "max_decompressed_section_bytes", "max_stacktraces_per_request",
                 "max_modules_per_request", "max_connections", "conversion_memory_bytes"):
        if getattr(limits, name) < 1:
            raise ConfigError(f"limits.{name}: must be at least 1")
    if limits.max_concurrent_jobs_per_scope is not None and limits.max_concurrent_jobs_per_scope < 1:
        raise ConfigError("limits.max_concurrent_jobs_per_scope: must be at least 1")
    for name in ("job_timeout_s", "header_timeout_s", "body_timeout_s"):
        if getattr(limits, name) <= 0:
            raise ConfigError(f"limits.{name}: must be more than 0")
    if limits.js_names_max_memory_bytes < 0 or limits.worker_max_memory_bytes < 0:
        raise ConfigError("limits.js_names_max_memory_bytes, limits.worker_max_memory_bytes: must not be negative")
    if 0 < limits.worker_max_memory_bytes < 256 * MiB:
        raise ConfigError("limits.worker_max_memory_bytes: at least 256 MiB (a worker needs ~100 MiB to start), "
                          "or 0 for no limit")
    if limits.max_json_depth > JSON_MAX_DEPTH:
        raise ConfigError(f"limits.max_json_depth: at most {JSON_MAX_DEPTH} (responses echo frames, and the JSON "
                          "writer refuses anything deeper)")


def _scope(text: str, where: str) -> None:
    try:
        Scope.parse(text)
    except InvalidId as exc:
        raise ConfigError(f"{where}: {exc}") from None


def check_serving(s: Settings) -> None:
    """Refuse to serve uploads to the network with nobody to check tokens against."""
    if not s.bound_to_loopback and not s.auth.tokens and not s.auth.disabled:
        raise ConfigError(
            f"bind {s.bind} is not loopback and auth.tokens is empty: configure tokens, "
            "or set auth.disabled = true to run without authentication on purpose"
        )


_SECRET_NAMES = ("secret", "token", "password", "access_key", "authorization", "cookie", "headers")


def _secret(name: str) -> bool:
    return any(n in name.lower() for n in _SECRET_NAMES)


def describe(s: Settings) -> dict[str, Any]:
    """The effective settings as plain data with every secret masked, for the startup log."""

    def mask(value: Any, key: str = "") -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: "***" if f.name != "tokens" and _secret(f.name) and getattr(value, f.name)
                    else mask(getattr(value, f.name), f.name) for f in dataclasses.fields(value)}
        if key == "tokens" and isinstance(value, Mapping):
            return {f"{t[:4]}…({len(t)} chars)": mask(v) for t, v in value.items()}
        if isinstance(value, Mapping):
            return {k: ("***" if _secret(str(k)) else mask(v, str(k)))
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [mask(v) for v in value]
        if isinstance(value, (set, frozenset)):
            return sorted(mask(v) for v in value)
        if isinstance(value, Path):
            return str(value)
        return value

    return mask(s)  # type: ignore[no-any-return]
