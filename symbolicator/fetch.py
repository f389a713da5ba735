"""The one outbound HTTP client: scraping websites and `http` symbol sources.

Every URL the service fetches was chosen by someone else (a stack trace, a
source map comment, a request's `sources`), so this client assumes hostility:

- **Where it may go.** Only http(s). The caller may pass `allowed_origins`
  (Symbolicator's patterns, see `fetch_policy.origin_allowed`) and/or an
  `origin_check` predicate; IPv4 literals are canonicalised first, as browsers
  do (`http://0x7f.1/` is `http://127.0.0.1/`). Addresses are
  checked by `fetch_policy.AddressPolicy` three times: IP literals in any
  spelling before the request, every DNS answer in our own resolver, and the
  address each socket is about to connect to (the socket factory). The last
  check sees what is really connected to, so DNS rebinding gains nothing.
- **Redirects** are followed by hand, at most `max_redirects`, each hop
  re-checked like the first; a loop is an error. Caller headers (tokens) are
  dropped when a redirect leaves the origin.
- **How long and how much.** Connect, read (between bytes) and total timeouts
  (the total covers every hop and any wait for a per-host slot);
  a byte cap checked against `Content-Length` and again while streaming, on the
  decompressed body. With `dest` the body streams to a temporary file beside it
  and is renamed into place only when complete.
- **Hosts that keep failing** (timeouts, connection errors, 5xx) are blocked
  for a while (`HostDenyList`), as Symbolicator does, and each host gets at
  most `per_host_concurrency` requests at a time. Hosts are keyed by
  `host:port`, so two services on one machine do not block each other.
- **Tenants** (`fetch_tenants`): inside a job, failures count per scope and
  host; a scope gets `per_scope_concurrency` fetches at once and all but a
  quarter of each host's slots; a URL that failed is not fetched twice for
  one request; a request fetches at most `max_fetches_per_request` URLs
  (past it: `other`, naming the setting).

Outcomes are `FetchError.reason`, Symbolicator's `scraping_attempts` reasons:
`not_found` (404/410), `permission_denied` (401/403), `invalid_host` (scheme,
origin or address refused), `denied` (deny list), `timeout`, `too_large`,
`download_error` (other statuses, connection failures, redirect trouble),
`other` (a URL we cannot parse, or `dest` cannot be written).

One `Fetcher` is shared by every request; its aiohttp session is created
lazily on the running loop. Coalescing identical fetches is the caller's job
(`symbolicator.caching.Coalescer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from symbolicator import fetch_tenants
from symbolicator.config import FetchSettings
from symbolicator.errors import ConfigError, FetchError, FetchReason, ForbiddenAddress
from symbolicator.fetch_policy import (
    AddressPolicy,
    HostDenyList,
    HostSlots,
    forbidden_cause,
    forbidden_message,
    hostname_problem,
    origin_allowed,
    parse_ip,
)

__all__ = ["FetchError", "FetchReason", "FetchResult", "Fetcher", "ForbiddenAddress", "HostDenyList",
           "forbidden_cause", "origin_allowed"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_LOOPBACK = IPv4Address("127.0.0.1")
_CHUNK = 64 * 1024
_WRITE_BATCH = 1024 * 1024


@dataclass(frozen=True)
class FetchResult:
    """A successful (2xx) download.

    `url` is the final URL after redirects; `headers` have lower-case names
    (repeated headers joined by ", "); exactly one of `body` / `path` is set;
    `size` is the decompressed body length in bytes.
    """

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes | None
    path: Path | None
    size: int


class Fetcher:
    """Shared outbound client; see the module docstring for the rules it enforces.

    `allow_private_addresses` overrides `settings.allow_private_addresses`.
    `allowed_hosts` (`"10.0.0.5:8080"`, `"symbols.internal"`) and
    `allowed_networks` (`"10.1.0.0/16"`) admit internal endpoints without
    opening the whole private network. The `deny_*` numbers set the host deny
    list (failures within a window → blocked); `clock` is monotonic seconds.
    `dns_resolver` builds the resolver whose answers are checked (default: the
    OS resolver in a thread); its answers never bypass the address policy.
    """

    def __init__(
        self,
        settings: FetchSettings,
        *,
        allow_private_addresses: bool | None = None,
        user_agent: str = "symbolicator-py/0.1",
        allowed_hosts: Iterable[str] = (),
        allowed_networks: Iterable[str] = (),
        deny_threshold: int = 20,
        deny_window_s: float = 60.0,
        deny_block_s: float = 300.0,
        never_block_hosts: Iterable[str] = (),
        max_connections: int = 256,
        clock: Callable[[], float] | None = None,
        dns_resolver: Callable[[], AbstractResolver] | None = None,
    ) -> None:
        self.settings = settings
        allow_private = settings.allow_private_addresses if allow_private_addresses is None else allow_private_addresses
        try:
            self.policy = AddressPolicy.build(
                allow_private=allow_private, allowed_networks=allowed_networks, allowed_hosts=allowed_hosts
            )
        except ValueError as e:
            raise ConfigError(f"fetch allow-list: {e}") from e
        self.user_agent = user_agent
        self.deny_list = HostDenyList(
            threshold=deny_threshold,
            window_s=deny_window_s,
            block_s=deny_block_s,
            never_block=never_block_hosts,
            clock=clock,
        )
        self._slots = HostSlots(settings.per_host_concurrency)
        self._scope_slots = HostSlots(settings.per_scope_concurrency)
        self._scope_host_slots = HostSlots(_scope_share(settings.per_host_concurrency))
        self._max_connections = max_connections
        self._dns_resolver = dns_resolver
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._resolver: GuardedResolver | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and not self._session.closed and self._loop is loop:
            return self._session
        self._loop = loop
        self._slots = HostSlots(self.settings.per_host_concurrency)
        self._scope_slots = HostSlots(self.settings.per_scope_concurrency)
        self._scope_host_slots = HostSlots(_scope_share(self.settings.per_host_concurrency))
        inner = self._dns_resolver() if self._dns_resolver is not None else None
        self._resolver = GuardedResolver(self.policy, inner)
        connector = aiohttp.TCPConnector(
            resolver=self._resolver,
            socket_factory=self._resolver.open_socket,
            limit=self._max_connections,
            ttl_dns_cache=10,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            headers={"User-Agent": self.user_agent},
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session

    async def close(self) -> None:
        """Close the pooled connections; the Fetcher can be used again afterwards."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def fetch(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        dest: Path | None = None,
        allowed_origins: Sequence[str] | None = None,
        origin_check: Callable[[str], bool] | None = None,
    ) -> FetchResult:
        """GET `url` under every rule of this module; raises `FetchError`.

        `allowed_origins` (patterns) and `origin_check` (any predicate on a
        URL, e.g. two pattern lists that must both match), when given, must
        accept the first URL and every redirect target before it is
        requested. `dest` streams the body to that file (written whole or not
        at all); otherwise the body is returned in memory.
        """
        limit = self.settings.max_bytes if max_bytes is None else max_bytes
        request = fetch_tenants.current()
        state = _HopState(url, tenant=request.scope if request is not None else "")
        if request is not None:
            known = request.failures.get(url)
            if known is not None:  # this request saw it fail: the same answer, no second request
                raise FetchError(known.reason, str(known), url=known.url, status=known.status)
            refusal = request.admit(url)
            if refusal is not None:
                raise FetchError("other", refusal, url=url)
        try:
            async with asyncio.timeout(self.settings.total_timeout_s):
                check = _origin_predicate(allowed_origins, origin_check)
                return await self._follow(url, headers or {}, limit, dest, check, state)
        except TimeoutError as e:
            self._record_failure(state)
            error = FetchError("timeout", f"timed out fetching {state.url}", url=state.url)
            if request is not None:
                request.failures[url] = error
            raise error from e
        except FetchError as e:
            if request is not None and e.reason != "other":
                request.failures[url] = e
            raise

    async def _follow(
        self,
        url: str,
        headers: Mapping[str, str],
        limit: int,
        dest: Path | None,
        origin_ok: Callable[[str], bool] | None,
        state: _HopState,
    ) -> FetchResult:
        seen: set[str] = set()
        current = self._check_url(url, origin_ok)
        first_origin = current.origin()
        for _ in range(self.settings.max_redirects + 1):
            state.url, state.host_key = str(current), _host_key(current)
            seen.add(str(current))
            if current.origin() != first_origin:
                headers = {}
            target = await self._hop(current, headers, limit, dest, state)
            if isinstance(target, FetchResult):
                return target
            if str(target) in seen:
                raise FetchError("download_error", f"redirect loop at {target}", url=str(target))
            current = self._check_url(str(target), origin_ok)
        raise FetchError(
            "download_error", f"more than {self.settings.max_redirects} redirects from {url}", url=state.url
        )

    def _check_url(self, url: str, origin_ok: Callable[[str], bool] | None) -> URL:
        try:
            parsed = URL(url)
            host = parsed.raw_host
        except (ValueError, TypeError) as e:
            raise FetchError("other", f"cannot parse URL {url!r}", url=url) from e
        if parsed.scheme not in ("http", "https"):
            raise FetchError("invalid_host", f"scheme {parsed.scheme!r} is not allowed", url=url)
        port = parsed.port
        if not host or port is None:
            raise FetchError("invalid_host", f"URL {url!r} has no host", url=url)
        ip = parse_ip(host.replace("%25", "%"))
        if ip is not None and ip.version == 4 and host != str(ip):
            parsed = parsed.with_host(str(ip))
        if origin_ok is not None and not origin_ok(str(parsed)):
            raise FetchError("invalid_host", f"origin of {url} is not allowed", url=url)
        if ip is not None:
            refusal = self.policy.refusal(ip, port)
            if refusal:
                raise FetchError("invalid_host", f"address {ip} is not allowed ({refusal})", url=url)
        elif (problem := hostname_problem(host)) is not None:
            raise FetchError("invalid_host", f"host of {url!r} cannot be valid: {problem}", url=url)
        elif _is_localhost(host) and not self.policy.name_allowed(host, port):
            refusal = self.policy.refusal(_LOOPBACK, port)
            if refusal:
                raise FetchError("invalid_host", f"host {host} is not allowed ({refusal})", url=url)
        return parsed

    async def _hop(
        self, url: URL, headers: Mapping[str, str], limit: int, dest: Path | None, state: _HopState
    ) -> FetchResult | URL:
        """One request; a redirect target or the finished result."""
        if self.deny_list.is_blocked(state.host_key, state.tenant):
            raise FetchError("denied", f"host {state.host_key} is blocked after repeated failures", url=str(url))
        session = self._get_session()
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.settings.connect_timeout_s, sock_read=self.settings.read_timeout_s
        )
        async with self._tenant_slots(state), self._slots.hold(state.host_key):
            try:
                async with session.get(url, headers=headers, allow_redirects=False, timeout=timeout) as resp:
                    return await self._handle(resp, url, limit, dest, state)
            except FetchError:
                raise
            except TimeoutError:
                raise
            except (aiohttp.ClientError, OSError) as e:
                forbidden = forbidden_cause(e)
                if forbidden is not None:
                    raise FetchError("invalid_host", f"{url.host}: {forbidden}", url=str(url)) from e
                if isinstance(e, aiohttp.InvalidURL):
                    raise FetchError("invalid_host", f"invalid URL {url}: {e}", url=str(url)) from e
                self._record_failure(state)
                raise FetchError("download_error", f"fetching {url} failed: {e}", url=str(url)) from e

    async def _handle(
        self, resp: aiohttp.ClientResponse, url: URL, limit: int, dest: Path | None, state: _HopState
    ) -> FetchResult | URL:
        status = resp.status
        if status in REDIRECT_STATUSES:
            location = resp.headers.get("Location")
            if not location:
                raise FetchError("download_error", f"HTTP {status} without Location from {url}", url=str(url))
            try:
                return resp.url.join(URL(location))
            except ValueError as e:
                raise FetchError("download_error", f"bad redirect Location {location!r}", url=str(url)) from e
        if status in (404, 410):
            raise FetchError("not_found", f"HTTP {status} from {url}", url=str(url), status=status)
        if status in (401, 403):
            raise FetchError("permission_denied", f"HTTP {status} from {url}", url=str(url), status=status)
        if not 200 <= status < 300:
            if status >= 500:
                self._record_failure(state)
            raise FetchError("download_error", f"HTTP {status} from {url}", url=str(url), status=status)
        length = resp.content_length
        if length is not None and length > limit:
            raise FetchError("too_large", f"{url} is {length} bytes, over the {limit} byte limit", url=str(url))
        if dest is None:
            body = await _read_capped(resp, limit, url)
            path, size = None, len(body)
        else:
            body, path = None, dest
            size = await _stream_to_file(resp, limit, url, dest)
        return FetchResult(url=str(url), status=status, headers=_lower_headers(resp), body=body, path=path, size=size)

    @contextlib.asynccontextmanager
    async def _tenant_slots(self, state: _HopState) -> AsyncIterator[None]:
        """Inside a job: the scope's slot, then the scope's share of the host's slots (taken before the host's)."""
        if not state.tenant:
            yield
            return
        async with self._scope_slots.hold(state.tenant), \
                self._scope_host_slots.hold(f"{state.tenant} {state.host_key}"):
            yield

    def _record_failure(self, state: _HopState) -> None:
        if state.host_key:
            self.deny_list.record_failure(state.host_key, state.tenant)


class GuardedResolver(AbstractResolver):
    """The OS resolver with every answer checked, plus the matching socket factory.

    Answers for an allow-listed name are remembered ("vouched") so the socket
    factory, which only sees an address, admits exactly those.
    """

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None, *,
                 max_vouched: int = 1024) -> None:
        self.policy = policy
        self._inner = inner if inner is not None else aiohttp.ThreadedResolver()
        self._vouched: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._max_vouched = max_vouched

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        if self.policy.name_allowed(host, port):
            for answer in answers:
                self._vouch(answer["host"], answer["port"])
            return answers
        kept: list[ResolveResult] = []
        refused: list[str] = []
        for answer in answers:
            reason = self.policy.refusal(ip_address(answer["host"]), answer["port"])
            if reason is None:
                kept.append(answer)
            else:
                refused.append(f"{answer['host']} ({reason})")
        if not kept:
            raise ForbiddenAddress(forbidden_message(f"{host} resolves to {', '.join(refused) or 'nothing'}"))
        return kept

    async def close(self) -> None:
        await self._inner.close()

    def _vouch(self, host: str, port: int) -> None:
        key = (str(ip_address(host)), port)
        self._vouched[key] = None
        self._vouched.move_to_end(key)
        while len(self._vouched) > self._max_vouched:
            self._vouched.popitem(last=False)

    def open_socket(self, addr_info: tuple[int, int, int, str, tuple[Any, ...]]) -> socket.socket:
        """aiohttp's `socket_factory`: the last check, on the address about to be connected to."""
        family, type_, proto, _, sockaddr = addr_info
        ip, port = ip_address(sockaddr[0]), int(sockaddr[1])
        if (str(ip), port) not in self._vouched:
            reason = self.policy.refusal(ip, port)
            if reason is not None:
                raise ForbiddenAddress(forbidden_message(f"{ip} ({reason})"))
        return socket.socket(family, type_, proto)


def _origin_predicate(
    patterns: Sequence[str] | None, check: Callable[[str], bool] | None
) -> Callable[[str], bool] | None:
    if patterns is None:
        return check
    if isinstance(patterns, str):
        patterns = (patterns,)
    fixed = tuple(patterns)
    if check is None:
        return lambda u: origin_allowed(u, fixed)
    return lambda u: origin_allowed(u, fixed) and check(u)


def _is_localhost(host: str) -> bool:
    """RFC 6761: `localhost` and `*.localhost` are loopback whatever DNS says."""
    host = host.rstrip(".").lower()
    return host == "localhost" or host.endswith(".localhost")


@dataclass
class _HopState:
    """Where a fetch currently is, so a total timeout is blamed on the right host."""

    url: str
    host_key: str = ""
    tenant: str = ""


def _scope_share(per_host: int) -> int:
    """One scope's share of a host's slots: all but a quarter, which stays for the other scopes."""
    return max(1, per_host - per_host // 4)


def _host_key(url: URL) -> str:
    return f"{(url.raw_host or '').lower()}:{url.port}"


def _lower_headers(resp: aiohttp.ClientResponse) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in resp.headers.items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _too_large(url: URL, limit: int) -> FetchError:
    return FetchError("too_large", f"{url} is over the {limit} byte limit", url=str(url))


async def _read_capped(resp: aiohttp.ClientResponse, limit: int, url: URL) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _too_large(url, limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _stream_to_file(resp: aiohttp.ClientResponse, limit: int, url: URL, dest: Path) -> int:
    """Write the body to a temporary file beside `dest`, then rename it into place.

    Disk errors are `other` (not the website's fault, so not held against its
    host); file calls run in threads so a slow disk never stalls the loop.
    """
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
    f: BinaryIO = await _disk(url, open, tmp, "wb")
    size = 0
    try:
        pending: list[bytes] = []
        pending_size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise _too_large(url, limit)
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= _WRITE_BATCH:
                block, pending, pending_size = b"".join(pending), [], 0
                await _disk(url, f.write, block)
        if pending:
            await _disk(url, f.write, b"".join(pending))
        await _disk(url, f.close)
        await _disk(url, os.replace, tmp, dest)
    except BaseException:
        f.close()
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return size


async def _disk(url: URL, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return await asyncio.to_thread(fn, *args)
    except OSError as e:
        raise FetchError("other", f"cannot store {url}: {e}", url=str(url)) from e
