"""Scraping JS files and maps from the website that served them.

Only when the server's `scraping.enabled` and the request's (with the legacy
`allow_scraping`) are both true, and only from origins that both
`allowed_origins` lists admit. The fetcher checks one list on every redirect
hop; the other is checked here on the first URL and on the final one.

Downloads go through `fetch.Fetcher` (timeouts, byte cap, private addresses,
deny list) into the downloads cache, under a key of the URL, the request's
headers and an hour bucket: like Symbolicator, a scraped file is re-fetched at
most once an hour, and each URL's hour starts at its own offset so a deploy does
not re-fetch everything at once. 404s are remembered for an hour (a negative
entry); other failures are not cached, since they are often passing. Every
fetch is coalesced per key: 50 events needing one map cost the website one
request. A cached file is one JSON line of metadata (final URL, headers) then
the body, so the `SourceMap` header survives the cache.

Each outcome is recorded as a `scraping_attempts` entry through the callback.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from symbolicator import keys
from symbolicator.caching import Caches, Coalescer, get_or_compute
from symbolicator.config import ScrapingSettings
from symbolicator.errors import FetchError, JsErrorKind, Outcome, ScrapeFailure, SymbolicatorError
from symbolicator.fetch import Fetcher, origin_allowed

SCRAPE_EVERY_S = 3600
SCRAPED_CACHE_VERSION = 1
_URL_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://", re.IGNORECASE)
Attempt = Callable[..., None]


@dataclass(frozen=True)
class Scraped:
    """A scraped file: `digest` is the SHA-256 of its body; `load()` reads the body."""

    url: str
    headers: Mapping[str, str]
    digest: str
    load: Callable[[], Awaitable[bytes]]


class Scraper:
    """Fetches files for one request under the server's and the request's scraping options."""

    def __init__(self, fetcher: Fetcher | None, caches: Caches, coalescer: Coalescer, server: ScrapingSettings,
                 enabled: bool, allowed_origins: Sequence[str], headers: Mapping[str, str], max_bytes: int,
                 attempt: Attempt) -> None:
        self.fetcher = fetcher
        self.downloads = caches.downloads
        self.coalescer = coalescer
        self.server = server
        self.enabled = enabled and server.enabled
        self.allowed_origins = tuple(allowed_origins)
        self.headers = dict(headers)
        self.max_bytes = max_bytes
        self.attempt = attempt

    def fetch_origins(self, url: str) -> Sequence[str] | None:
        """The patterns handed to the fetcher; None when either list refuses `url`."""
        server = tuple(self.server.allowed_origins)
        if not origin_allowed(url, server) or not origin_allowed(url, self.allowed_origins):
            return None
        return server if self.allowed_origins == ("*",) else self.allowed_origins

    async def scrape(self, url: str) -> Scraped:
        scheme = _URL_SCHEME.match(url)
        if scheme is None:  # not a URL at all (a local path, `http//x`): nothing to scrape, as Symbolicator
            raise ScrapeFailure(JsErrorKind.MISSING_SOURCE)
        if not self.enabled:
            self.attempt(url, "failure", "disabled")
            raise ScrapeFailure(JsErrorKind.SCRAPING_DISABLED)
        if scheme[1].lower() not in ("http", "https"):
            self.attempt(url, "failure", "invalid_host", f"`{scheme[1]}` is not an allowed download scheme")
            raise ScrapeFailure(JsErrorKind.MISSING_SOURCE)
        origins = self.fetch_origins(url)
        if origins is None or self.fetcher is None:
            self.attempt(url, "failure", "invalid_host", f"{url} is not an allowed download origin")
            raise ScrapeFailure(JsErrorKind.MISSING_SOURCE)
        digest = hashlib.sha256(
            (url + "\0" + orjson.dumps(self.headers, option=orjson.OPT_SORT_KEYS).decode()).encode()
        ).hexdigest()
        bucket = int((time.time() + int(digest[:8], 16) % SCRAPE_EVERY_S) // SCRAPE_EVERY_S)
        key = keys.cache_key("scraped", SCRAPED_CACHE_VERSION, digest, str(bucket))
        try:
            entry = await get_or_compute(self.downloads, self.coalescer, key, lambda: self._download(url, origins))
        except FetchError as exc:
            self.attempt(url, "failure", exc.reason, str(exc))
            raise ScrapeFailure(JsErrorKind.MISSING_SOURCE) from None
        except SymbolicatorError as exc:
            self.attempt(url, "failure", "other", str(exc))
            raise ScrapeFailure(JsErrorKind.MISSING_SOURCE) from None
        if entry.path is None:
            self.attempt(url, "failure", "not_found", f"{url} was not found")
            raise ScrapeFailure(JsErrorKind.MISSING_SOURCE)
        path = entry.path
        try:
            meta, offset, body_digest = await asyncio.to_thread(_scraped_meta, path)
        except (OSError, ValueError):
            self.attempt(url, "failure", "other", "the cached download vanished")
            raise ScrapeFailure(JsErrorKind.MISSING_SOURCE) from None
        self.attempt(url, "success")

        async def load() -> bytes:
            try:
                return await asyncio.to_thread(_scraped_body, path, offset)
            except OSError:
                raise ScrapeFailure(JsErrorKind.MISSING_SOURCE) from None

        return Scraped(url, meta.get("headers") or {}, body_digest, load)

    async def _download(self, url: str, origins: Sequence[str]) -> Path | Outcome:
        assert self.fetcher is not None
        body = self.downloads.temp_path(".body")
        try:
            result = await self.fetcher.fetch(url, headers=self.headers, max_bytes=self.max_bytes, dest=body,
                                              allowed_origins=origins)
            if not origin_allowed(result.url, self.server.allowed_origins):
                raise FetchError("invalid_host", f"redirected to {result.url}, not an allowed origin", url=url)
            out = self.downloads.temp_path(".scraped")
            await asyncio.to_thread(_pack_scraped, out, {"url": result.url, "headers": dict(result.headers)}, body)
            return out
        except FetchError as exc:
            if exc.reason == "not_found":
                return Outcome.NOT_FOUND
            raise
        finally:
            body.unlink(missing_ok=True)


def _pack_scraped(out: Path, meta: dict[str, Any], body: Path) -> None:
    with open(out, "wb") as f, open(body, "rb") as src:
        f.write(orjson.dumps(meta) + b"\n")
        while chunk := src.read(1024 * 1024):
            f.write(chunk)


def _scraped_meta(path: Path) -> tuple[dict[str, Any], int, str]:
    """(metadata, body offset, SHA-256 of the body) of a cached scraped file."""
    with open(path, "rb") as f:
        meta = orjson.loads(f.readline())
        offset = f.tell()
    stat = path.stat()
    return meta, offset, _body_digest(str(path), stat.st_mtime_ns, stat.st_size, offset)


@lru_cache(maxsize=4096)
def _body_digest(path: str, mtime_ns: int, size: int, offset: int) -> str:
    """Memoized by path, mtime and size: a cached file never changes in place."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def _scraped_body(path: Path, offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read()
