"""Symbol source configs: parsed once, validated, frozen.

Sources arrive in two places with different trust. The server's `sources` (TOML) are the
operator's: a mistake there is a `ConfigError` and the service does not start. Sources in a
request (`sources` of `/symbolicate`, Symbolicator's wire shape, docs/configuration.md, "Symbol sources") are the
caller's: Sentry always sends a `sentry` source and often built-in public sources of types or
layouts we do not speak, so an unusable request source never fails the request. It is skipped
with a reason that ends up as a candidate entry (`SkippedSource`), visible with
`options.dif_candidates`. Request sources are used only when `allow_request_sources` is on,
and then only `http` and `s3`: a `filesystem` source would let a caller read server disks, and
an `s3` source without its own keys would borrow the server's credentials, so both are refused.

Only the `type` of a request source must be readable; a request whose `sources` is not a list
of objects is `InvalidShape` (422), as Symbolicator answers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from symbolicator.errors import ConfigError, InvalidShape, SourceConfigError
from symbolicator.sources.s3_guard import endpoint_problem

LAYOUT_TYPES = ("native", "unified", "debuginfod", "symstore", "symstore_index2", "ssqp")
CASINGS = ("default", "lowercase", "uppercase")
FILE_TYPES = ("pe", "pdb", "portablepdb", "mach_debug", "mach_code", "elf_debug", "elf_code", "wasm_debug",
              "wasm_code", "breakpad", "sourcebundle", "uuidmap", "bcsymbolmap", "il2cpp", "proguard")
_COMMON_KEYS = {"id", "type", "layout", "filters", "is_public", "has_index"}
_TYPE_KEYS = {
    "filesystem": {"path"},
    "http": {"url", "headers", "accept_invalid_certs"},
    "s3": {"bucket", "prefix", "region", "access_key", "secret_key", "aws_credentials_provider"},
}
SENTRY_SKIPPED = "sentry sources are not queried: this service's uploads for the scope stand in for them"
_S3_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()/=+-]*$")

Origin = Literal["config", "request"]


@dataclass(frozen=True, slots=True)
class Layout:
    """How ids map to paths on a source (docs/configuration.md, "Symbol sources"); `casing`
    applies to the whole path."""

    type: str = "native"
    casing: str = "default"


@dataclass(frozen=True, slots=True)
class SourceFilters:
    """`filetypes` empty = all; `path_patterns` are case-insensitive globs on code/debug file names."""

    filetypes: frozenset[str] = frozenset()
    path_patterns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FilesystemSource:
    """A folder on this machine laid out like a symbol server; config only."""

    id: str
    path: Path
    layout: Layout = field(default_factory=Layout)
    filters: SourceFilters = field(default_factory=SourceFilters)


@dataclass(frozen=True, slots=True)
class HttpSource:
    """A symbol server at base `url`; `headers` are sent with every request (auth tokens, kept out of repr)."""

    id: str
    url: str
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    layout: Layout = field(default_factory=Layout)
    filters: SourceFilters = field(default_factory=SourceFilters)


@dataclass(frozen=True, slots=True)
class S3Source:
    """A bucket (any S3-compatible store when `endpoint_url` is set); no keys = boto3's chain.

    `from_request` marks a caller's source: its endpoint must pass the outbound address policy.
    """

    id: str
    bucket: str
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    layout: Layout = field(default_factory=Layout)
    filters: SourceFilters = field(default_factory=SourceFilters)
    from_request: bool = False


@dataclass(frozen=True, slots=True)
class SentrySource:
    """Sentry's own project source: accepted, never queried (the scope's uploads stand in)."""

    id: str


SourceConfig = FilesystemSource | HttpSource | S3Source | SentrySource


@dataclass(frozen=True, slots=True)
class SkippedSource:
    """A request source that is not used, and why (reported as a candidate entry)."""

    id: str
    reason: str


@dataclass(frozen=True, slots=True)
class SourcePlan:
    """The sources one request searches, in order, plus the request sources left out."""

    sources: tuple[SourceConfig, ...] = ()
    skipped: tuple[SkippedSource, ...] = ()


def fingerprint(sources: Sequence[SourceConfig]) -> str:
    """A stable hex digest of every field of `sources`, secrets included but only as a hash.

    Meant for cache keys: two plans share cached search results only when they would look
    in the same places with the same credentials, so a caller without a source's token never
    gets what another caller fetched with it. Unlike `repr`, nothing is left out.
    """
    def plain(value: object) -> object:
        return sorted(value) if isinstance(value, frozenset) else str(value)

    canonical = [[type(s).__name__, dataclasses.asdict(s)] for s in sources]
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=plain).encode()).hexdigest()


def parse_source(raw: Mapping[str, Any], origin: Origin = "config") -> SourceConfig:
    """One source from its Symbolicator-shaped mapping; raises SourceConfigError."""
    if not isinstance(raw, Mapping):
        raise SourceConfigError("a source must be an object")
    sid = raw.get("id")
    kind = raw.get("type")
    if not isinstance(sid, str) or not sid:
        raise SourceConfigError("a source needs a non-empty string `id`")
    where = f"source {sid!r}"
    if kind == "sentry":
        return SentrySource(sid)
    if kind not in _TYPE_KEYS:
        raise SourceConfigError(f"{where}: unsupported type {kind!r} (supported: filesystem, http, s3, sentry)")
    if origin == "config":
        unknown = sorted(set(raw) - _COMMON_KEYS - _TYPE_KEYS[kind])
        if unknown:
            raise SourceConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    layout = _layout(raw.get("layout"), where)
    filters = _filters(raw.get("filters"), where)
    if kind == "filesystem":
        if origin == "request":
            raise SourceConfigError(f"{where}: filesystem sources are only allowed in the server's config")
        path = _string(raw, "path", where)
        if not Path(path).is_absolute():
            raise SourceConfigError(f"{where}: path must be absolute, got {path!r}")
        return FilesystemSource(sid, Path(path), layout, filters)
    if kind == "http":
        url = _string(raw, "url", where)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceConfigError(f"{where}: url must be an http(s) URL with a host, got {url!r}")
        headers = raw.get("headers") or {}
        if not isinstance(headers, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) and "\n" not in k + v and "\r" not in k + v
                for k, v in headers.items()):
            raise SourceConfigError(f"{where}: headers must map names to single-line strings")
        return HttpSource(sid, url, tuple(sorted(headers.items())), layout, filters)
    return _s3(raw, sid, where, origin, layout, filters)


def _s3(raw: Mapping[str, Any], sid: str, where: str, origin: Origin, layout: Layout,
        filters: SourceFilters) -> S3Source:
    bucket = _string(raw, "bucket", where)
    prefix = raw.get("prefix") or ""
    if not isinstance(prefix, str) or not _S3_PREFIX.match(prefix) or any(
            p in (".", "..") for p in prefix.strip("/").split("/")) or "//" in prefix:
        raise SourceConfigError(f"{where}: prefix must be a plain key prefix, got {prefix!r}")
    region = raw.get("region")
    endpoint_url: str | None = None
    if isinstance(region, (list, tuple)):
        if len(region) != 2 or not all(isinstance(r, str) and r for r in region):
            raise SourceConfigError(f"{where}: region must be a name or [name, endpoint_url]")
        region, endpoint_url = region[0], region[1]
        problem = endpoint_problem(endpoint_url)
        if problem is not None:
            raise SourceConfigError(f"{where}: endpoint_url {endpoint_url!r} is refused: {problem}")
    elif region is not None and not (isinstance(region, str) and region):
        raise SourceConfigError(f"{where}: region must be a name or [name, endpoint_url]")
    access_key, secret_key = raw.get("access_key"), raw.get("secret_key")
    if access_key is not None or secret_key is not None:
        if not (isinstance(access_key, str) and access_key and isinstance(secret_key, str) and secret_key):
            raise SourceConfigError(f"{where}: give both access_key and secret_key as strings, or neither")
    elif origin == "request":
        raise SourceConfigError(f"{where}: an s3 source in a request must carry its own access_key and secret_key")
    return S3Source(sid, bucket, prefix.strip("/"), region, endpoint_url, access_key, secret_key, layout, filters,
                    from_request=origin == "request")


def _string(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value or "\0" in value:
        raise SourceConfigError(f"{where}: `{key}` must be a non-empty string")
    return value


def _layout(raw: Any, where: str) -> Layout:
    if raw is None:
        return Layout()
    if not isinstance(raw, Mapping) or set(raw) - {"type", "casing"}:
        raise SourceConfigError(f"{where}: layout must be {{type, casing}}")
    kind, casing = raw.get("type", "native"), raw.get("casing", "default")
    if kind not in LAYOUT_TYPES:
        raise SourceConfigError(f"{where}: unsupported layout type {kind!r} (supported: {', '.join(LAYOUT_TYPES)})")
    if casing not in CASINGS:
        raise SourceConfigError(f"{where}: layout casing must be one of {', '.join(CASINGS)}, got {casing!r}")
    return Layout(kind, casing)


def _filters(raw: Any, where: str) -> SourceFilters:
    if raw is None:
        return SourceFilters()
    if not isinstance(raw, Mapping) or set(raw) - {"filetypes", "path_patterns", "requires_checksum"}:
        raise SourceConfigError(f"{where}: filters must be {{filetypes, path_patterns}}")
    types = raw.get("filetypes") or []
    patterns = raw.get("path_patterns") or []
    if not isinstance(types, list) or not all(t in FILE_TYPES for t in types):
        raise SourceConfigError(f"{where}: filters.filetypes must list file types among {', '.join(FILE_TYPES)}")
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        raise SourceConfigError(f"{where}: filters.path_patterns must be a list of glob strings")
    return SourceFilters(frozenset(types), tuple(patterns))


def parse_config_sources(raws: Sequence[Mapping[str, Any]]) -> tuple[SourceConfig, ...]:
    """The server's sources; any problem is a ConfigError naming `sources[i]`."""
    out: list[SourceConfig] = []
    seen: set[str] = set()
    for i, raw in enumerate(raws):
        try:
            source = parse_source(raw, "config")
        except SourceConfigError as e:
            raise ConfigError(f"sources[{i}]: {e}") from None
        if source.id in seen:
            raise ConfigError(f"sources[{i}]: duplicate source id {source.id!r}")
        seen.add(source.id)
        out.append(source)
    return tuple(out)


def plan_sources(config_sources: Sequence[SourceConfig], request_sources: Any,
                 allow_request_sources: bool) -> SourcePlan:
    """Config sources first, then the request's usable ones; `request_sources` is the raw JSON (or None)."""
    if request_sources is None:
        return SourcePlan(tuple(config_sources))
    if not isinstance(request_sources, list) or not all(isinstance(r, Mapping) for r in request_sources):
        raise InvalidShape("`sources` must be a list of source objects")
    used: list[SourceConfig] = []
    skipped: list[SkippedSource] = []
    for i, raw in enumerate(request_sources):
        sid = raw.get("id") if isinstance(raw.get("id"), str) and raw.get("id") else f"sources[{i}]"
        if raw.get("type") == "sentry":
            skipped.append(SkippedSource(sid, SENTRY_SKIPPED))
            continue
        if not allow_request_sources:
            skipped.append(SkippedSource(sid, "sources sent in a request are not used: the server's "
                                              "allow_request_sources is off"))
            continue
        try:
            used.append(parse_source(raw, "request"))
        except SourceConfigError as e:
            skipped.append(SkippedSource(sid, f"not used: {e}"))
    return SourcePlan(tuple(config_sources) + tuple(used), tuple(skipped))
