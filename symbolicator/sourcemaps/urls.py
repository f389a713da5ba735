"""Where things are: source names joined with `sourceRoot` and the map's location,
`sourceMappingURL` discovery, and `data:` URLs.

Source names are resolved exactly as `@jridgewell/trace-mapping` does it (the
resolver Node, Sentry's JS tooling and most bundlers share), so the `source` we
report is the string a front-end developer sees in their own tools:
`resolve_uri(sourceRoot + "/" + source, dirname(map_url))`, where `resolve_uri`
is a port of `@jridgewell/resolve-uri`. It treats URLs and plain paths alike:
absolute URLs win, relative paths stay relative to a relative base, `..` is
collapsed, and a relative result keeps a leading `./` when the input had one.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from dataclasses import dataclass

from symbolicator.errors import MalformedSourceMap

_SCHEME = re.compile(r"^[\w+.-]+://", re.ASCII)
_KEPT_AS_GIVEN = re.compile(r"^(?!https?:)(?:[a-z][a-z0-9+.-]*://|webpack:)", re.IGNORECASE)
_URL = re.compile(
    r"^([\w+.-]+:)//([^@/#?]*@)?(\[[^\]]+\]|[^:/#?]*)(:\d+)?(/[^#?]*)?(\?[^#]*)?(#.*)?", re.ASCII | re.DOTALL
)
_FILE_URL = re.compile(r"^file:(?://((?![a-z]:)[^/#?]*)?)?(/?[^#?]*)(\?[^#]*)?(#.*)?", re.IGNORECASE | re.DOTALL)
_SOURCE_MAPPING_URL = re.compile(
    r"(?://|/\*)[#@][ \t]*sourceMappingURL=[ \t]*([^\s'\"]+)[ \t]*(?:\*/)?[ \t]*$", re.MULTILINE
)

_EMPTY, _HASH, _QUERY, _RELATIVE_PATH, _ABSOLUTE_PATH, _SCHEME_RELATIVE, _ABSOLUTE = range(1, 8)


class InvalidBase64SourceMap(MalformedSourceMap):
    """A `data:` URL whose base64 payload does not decode (`invalid_base64_sourcemap`)."""


@dataclass(slots=True)
class _Url:
    scheme: str
    user: str
    host: str
    port: str
    path: str
    query: str
    hash: str
    kind: int


def _parse_absolute(text: str) -> _Url:
    m = _URL.match(text)
    assert m is not None
    return _Url(m[1], m[2] or "", m[3], m[4] or "", m[5] or "/", m[6] or "", m[7] or "", _ABSOLUTE)


def _parse(text: str) -> _Url:
    if text.startswith("//"):
        url = _parse_absolute("http:" + text)
        url.scheme, url.kind = "", _SCHEME_RELATIVE
        return url
    if text.startswith("/"):
        url = _parse_absolute("http://foo.com" + text)
        url.scheme, url.host, url.kind = "", "", _ABSOLUTE_PATH
        return url
    if text.startswith("file:"):
        m = _FILE_URL.match(text)
        assert m is not None
        path = m[2]
        return _Url(
            "file:", "", m[1] or "", "", path if path.startswith("/") else "/" + path, m[3] or "", m[4] or "", _ABSOLUTE
        )
    if _SCHEME.match(text):
        return _parse_absolute(text)
    url = _parse_absolute("http://foo.com/" + text)
    url.scheme, url.host = "", ""
    if not text:
        url.kind = _EMPTY
    elif text.startswith("?"):
        url.kind = _QUERY
    elif text.startswith("#"):
        url.kind = _HASH
    else:
        url.kind = _RELATIVE_PATH
    return url


def _strip_path_filename(path: str) -> str:
    if path.endswith("/.."):
        return path
    return path[: path.rfind("/") + 1]


def _normalize_path(url: _Url, kind: int) -> None:
    relative = kind <= _RELATIVE_PATH
    pieces = url.path.split("/")
    out: list[str] = []
    positive = 0
    trailing_slash = False
    for piece in pieces[1:]:
        if not piece:
            trailing_slash = True
            continue
        trailing_slash = False
        if piece == ".":
            continue
        if piece == "..":
            if positive:
                trailing_slash = True
                positive -= 1
                out.pop()
            elif relative:
                out.append(piece)
            continue
        out.append(piece)
        positive += 1
    path = "".join("/" + p for p in out)
    if not path or (trailing_slash and not path.endswith("/..")):
        path += "/"
    url.path = path


def resolve_uri(text: str, base: str | None = None) -> str:
    """Resolve `text` against `base` (a URL or a path), as `@jridgewell/resolve-uri`."""
    if not text and not base:
        return ""
    url = _parse(text)
    kind = url.kind
    if base and kind != _ABSOLUTE:
        b = _parse(base)
        if kind <= _RELATIVE_PATH:
            if kind == _EMPTY:
                url.hash = b.hash
            if kind <= _HASH:
                url.query = b.query
            _normalize_path(b, b.kind)
            url.path = b.path if url.path == "/" else _strip_path_filename(b.path) + url.path
        if kind <= _ABSOLUTE_PATH:
            url.user, url.host, url.port = b.user, b.host, b.port
        url.scheme = b.scheme
        kind = max(kind, b.kind)
    _normalize_path(url, kind)
    query_hash = url.query + url.hash
    if kind in (_HASH, _QUERY):
        return query_hash
    if kind == _RELATIVE_PATH:
        path = url.path[1:]
        if not path:
            return query_hash or "."
        if re.match(r"^[.?#]", base or text) and not re.match(r"^[.?#]", path):
            return "./" + path + query_hash
        return path + query_hash
    if kind == _ABSOLUTE_PATH:
        return url.path + query_hash
    return url.scheme + "//" + url.user + url.host + url.port + url.path + query_hash


def join_source_root(source: str | None, source_root: str | None) -> str:
    """`sourceRoot` + `/` (unless it ends in one) + source: the map-only half of the resolution."""
    if not source_root:
        return source or ""
    return source_root + ("" if source_root.endswith("/") else "/") + (source or "")


def resolve_joined(joined: str, map_url: str | None) -> str:
    """The other half: resolve a joined source against the map's own URL or path.

    A joined source that is already a URL of a naming scheme (`webpack:`, `app://`, `file://`…)
    is kept as the map gives it, as Symbolicator does: `webpack:///./src/x.tsx` keeps its `./`,
    which Sentry matches on. `http(s)` URLs and paths are resolved as trace-mapping does (dot
    segments of a fetchable URL are resolved by every client that fetches it).
    """
    if _KEPT_AS_GIVEN.match(joined):
        return joined
    directory = map_url[: map_url.rfind("/") + 1] if map_url else ""
    return resolve_uri(joined, directory)


def find_source_mapping_url(minified_source: str) -> str | None:
    """The last `//# sourceMappingURL=` (or legacy `//@`) comment's URL, or None.

    The last one wins because bundlers append theirs after any inlined library's.
    """
    last = None
    for m in _SOURCE_MAPPING_URL.finditer(minified_source):
        last = m[1]
    return last


def is_data_url(url: str) -> bool:
    return url[:5].lower() == "data:"


def decode_data_url(url: str) -> bytes:
    """The payload of a `data:[<type>][;base64],<data>` URL.

    Raises InvalidBase64SourceMap for a bad base64 payload and
    MalformedSourceMap for a URL without a comma.
    """
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise MalformedSourceMap("data: URL has no ',' before its payload")
    if header.lower().endswith(";base64"):
        text = urllib.parse.unquote(payload).strip()
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidBase64SourceMap(f"data: URL has invalid base64: {exc}") from exc
    return urllib.parse.unquote_to_bytes(payload)


def resolve_map_location(minified_location: str, source_mapping_url: str) -> str:
    """Where a `sourceMappingURL` points, relative to the minified file's URL or path."""
    return resolve_uri(source_mapping_url, minified_location)


def strip_hostname(path: str) -> str:
    """The path after the host (or after a leading `~`), with its leading `/`."""
    if path.startswith("~"):
        return path[1:]
    if "://" in path:
        rest = path.split("://", 1)[1]
        slash = rest.find("/")
        return rest[slash:] if slash >= 0 else rest
    return path
