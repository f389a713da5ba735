"""Which URLs, addresses and hosts the outbound client may reach: rules and state, no network I/O.

`fetch.py` enforces these at three points: on the URL before a request (scheme,
origin patterns, IP literals in any spelling), in its DNS resolver (every name
is resolved by us and forbidden answers are dropped), and in the socket factory
(the address a socket is about to connect to). The last point is what makes DNS
rebinding useless: whatever a name resolved to earlier, the socket only ever
connects to an address that passed `AddressPolicy.permits`.

Why an address is refused (Symbolicator's `connect_to_reserved_ips = false`):
loopback, RFC 1918 private, link-local, CGNAT (100.64/10), multicast, reserved,
unspecified, documentation/benchmark ranges, unique-local and site-local IPv6.
IPv6 addresses that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo)
are judged by the IPv4 address inside. IPv4 literals are read the way
`inet_aton` (and so the OS resolver) reads them, so `2130706433`, `0177.0.0.1`,
`0x7f.1` and `127.1` are all 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from symbolicator.errors import ForbiddenAddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"http": 80, "https": 443}

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPAT = ipaddress.IPv6Network("::/96")
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_INET_ATON_CHARS = re.compile(r"^[0-9a-fA-FxX.]+$")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
MAX_HOSTNAME = 253


def parse_ip(host: str) -> IPAddress | None:
    """The address `host` denotes if it is an IP literal in any spelling, else None.

    `host` may carry IPv6 brackets, a zone id or one trailing dot. Legacy IPv4
    forms are accepted because the C resolver accepts them too: refusing to
    recognise them would let `http://0x7f.1/` past a check that only knows
    dotted quads.
    """
    h = host.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h.endswith(".") and not h.endswith(".."):
        h = h[:-1]
    if not h:
        return None
    try:
        return ipaddress.ip_address(h)
    except ValueError:
        pass
    if _INET_ATON_CHARS.match(h) and any(c.isdigit() for c in h[:1]):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(h))
        except OSError:
            return None
    return None


def hostname_problem(host: str) -> str | None:
    """Why `host` (not an IP literal) cannot be a DNS name, or None if it can.

    Checked before any lookup, so a name that no resolver could answer never
    costs a DNS query: at most 253 characters, dot-separated labels of 1 to 63
    letters, digits, `-` (not at either end) or `_` (seen in real names), one
    trailing dot, and a last label that is not all digits (no TLD is, and
    `1.2.3.999` is a bad address, not a name). Non-ASCII names arrive
    IDNA-encoded (`xn--`) from URL parsing, so they pass as ASCII.
    """
    name = host.removesuffix(".")
    if not name:
        return "the host name is empty"
    if len(name) > MAX_HOSTNAME:
        return f"the host name is longer than {MAX_HOSTNAME} characters"
    labels = name.lower().split(".")
    for label in labels:
        if not _LABEL.fullmatch(label):
            return f"{label[:70]!r} is not a valid host name label"
    if labels[-1].isdigit():
        return "the last label of a host name cannot be all digits"
    return None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a transition-mechanism IPv6 address routes to, if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or (ip in _IPV4_COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why `ip` must not be connected to by default, or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
        inner = embedded_ipv4(ip)
        if inner is not None:
            reason = forbidden_reason(inner)
            return f"embeds {inner}: {reason}" if reason else None
        if ip in _NAT64_LOCAL:
            return "local-use NAT64"
        if ip.is_site_local:
            return "site-local"
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    )
    for name, hit in checks:
        if hit:
            return name
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared address space (CGNAT)"
    if not ip.is_global:
        return "not globally routable"
    return None


def _split_host_port(entry: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` → (lower-case host, port)."""
    entry = entry.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:] else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port) if port else None
    return entry, None


@dataclass(frozen=True)
class AddressPolicy:
    """Which resolved addresses a socket may connect to.

    `allow_private` lifts every address rule (tests, trusted deployments).
    `allowed_networks` admits internal ranges (e.g. a symbol server on
    10.1.0.0/16) without opening all of them. `allowed_hosts` admits single
    `host[:port]` endpoints: an IP entry is matched against the socket address
    itself, a name entry lets its DNS answers through (port must match when
    given). Both exist so an internal symbol server can be reached while the
    scraper stays locked out of the rest of the network.
    """

    allow_private: bool = False
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    allowed_ips: frozenset[tuple[IPAddress, int | None]] = field(default_factory=frozenset)
    allowed_names: frozenset[tuple[str, int | None]] = field(default_factory=frozenset)

    @classmethod
    def build(
        cls,
        *,
        allow_private: bool = False,
        allowed_networks: Iterable[str] = (),
        allowed_hosts: Iterable[str] = (),
    ) -> AddressPolicy:
        """Parse the human spellings; raises ValueError on a bad entry."""
        ips: set[tuple[IPAddress, int | None]] = set()
        names: set[tuple[str, int | None]] = set()
        for entry in allowed_hosts:
            host, port = _split_host_port(entry)
            ip = parse_ip(host)
            if ip is not None:
                ips.add((ip, port))
            else:
                names.add((host.rstrip("."), port))
        return cls(
            allow_private=allow_private,
            allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks),
            allowed_ips=frozenset(ips),
            allowed_names=frozenset(names),
        )

    def name_allowed(self, host: str, port: int) -> bool:
        """Whether every DNS answer for `host` may be used (an allow-listed name)."""
        host = host.lower().rstrip(".")
        return (host, port) in self.allowed_names or (host, None) in self.allowed_names

    def refusal(self, ip: IPAddress, port: int) -> str | None:
        """Why connecting to `ip:port` is refused, or None if it is allowed."""
        if self.allow_private:
            return None
        if (ip, port) in self.allowed_ips or (ip, None) in self.allowed_ips:
            return None
        if any(ip.version == net.version and ip in net for net in self.allowed_networks):
            return None
        return forbidden_reason(ip)


def url_origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, lower-case host without brackets, effective port), or None if unusable."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return None
    if port is None:
        port = DEFAULT_PORTS.get(scheme)
        if port is None:
            return None
    return scheme, host, port


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        base = pattern[2:]
        return host == base or host.endswith("." + base)
    return host == pattern


def origin_allowed(url: str, patterns: Sequence[str]) -> bool:
    """Whether `url` matches one of Symbolicator's `allowed_origins` patterns.

    `*` anything; `*.example.com` the domain and its subdomains, any port;
    `example.com` that host, any port; `example.com:8080` that host and port;
    `*:8080` any host on that port; `http://example.com[:8080]` that scheme,
    host and port exactly (the scheme's default port when none is written).
    Matching is case-insensitive. An empty list allows nothing.
    """
    origin = url_origin(url)
    if origin is None:
        return False
    scheme, host, port = origin
    for raw in patterns:
        pattern = raw.strip().lower()
        if not pattern:
            continue
        if pattern == "*":
            return True
        want_scheme: str | None = None
        if "://" in pattern:
            want_scheme, _, pattern = pattern.partition("://")
            pattern = pattern.rstrip("/")
        try:
            p_host, p_port = _split_host_port(pattern)
        except ValueError:
            continue
        if want_scheme is not None:
            if want_scheme != scheme:
                continue
            if p_port is None:
                p_port = DEFAULT_PORTS.get(want_scheme)
        if p_port is not None and p_port != port:
            continue
        if _host_matches(p_host.rstrip("."), host):
            return True
    return False


class HostDenyList:
    """Blocks a host after `threshold` failures within `window_s`, for `block_s`, per tenant.

    Failures are counted per (tenant, host): a scope whose frames keep failing on a
    host blocks that host for itself only (`fetch_tenants`). Symbolicator blocks after 60
    failures in 60 s for an hour; we default to a smaller, faster-healing 20 in 60 s for
    5 minutes because one instance here
    serves fewer requests. Hosts in `never_block` (`host` or `host:port`) are
    exempt. Memory is bounded: at most `threshold` timestamps per host, and
    hosts whose failures have aged out are swept.
    """

    def __init__(
        self,
        *,
        threshold: int = 20,
        window_s: float = 60.0,
        block_s: float = 300.0,
        never_block: Iterable[str] = (),
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.threshold = max(1, threshold)
        self.window_s = window_s
        self.block_s = block_s
        self.never_block = frozenset(h.lower() for h in never_block)
        self.clock = clock or time.monotonic
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._blocked_until: dict[tuple[str, str], float] = {}

    def _exempt(self, host_key: str) -> bool:
        return host_key in self.never_block or host_key.rpartition(":")[0] in self.never_block

    def record_failure(self, host_key: str, tenant: str = "") -> None:
        """One failure of `host_key` seen by `tenant` (a scope): tenants never block a host for each other."""
        if self._exempt(host_key):
            return
        now = self.clock()
        key = (tenant, host_key)
        stamps = self._failures.setdefault(key, deque(maxlen=self.threshold))
        stamps.append(now)
        while stamps and stamps[0] < now - self.window_s:
            stamps.popleft()
        if len(stamps) >= self.threshold:
            self._blocked_until[key] = now + self.block_s
            del self._failures[key]
        if len(self._failures) > 10_000:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        for key in [k for k, v in self._failures.items() if not v or v[-1] < now - self.window_s]:
            del self._failures[key]
        for key in [k for k, until in self._blocked_until.items() if until <= now]:
            del self._blocked_until[key]

    def is_blocked(self, host_key: str, tenant: str = "") -> bool:
        key = (tenant, host_key)
        until = self._blocked_until.get(key)
        if until is None:
            return False
        if until <= self.clock():
            del self._blocked_until[key]
            return False
        return True


class HostSlots:
    """At most `per_host` concurrent requests per host key; idle hosts cost nothing."""

    def __init__(self, per_host: int) -> None:
        self.per_host = max(1, per_host)
        self._slots: dict[str, _Slot] = {}

    @contextlib.asynccontextmanager
    async def hold(self, host_key: str) -> AsyncIterator[None]:
        slot = self._slots.get(host_key)
        if slot is None:
            slot = self._slots[host_key] = _Slot(asyncio.Semaphore(self.per_host))
        slot.users += 1
        try:
            async with slot.semaphore:
                yield
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._slots[host_key]


@dataclass
class _Slot:
    semaphore: asyncio.Semaphore
    users: int = 0


_FORBIDDEN_MARK = "refused by address policy"


def forbidden_message(what: str) -> str:
    """A refusal's text, marked so `forbidden_cause` recognises it after a client wrapped it."""
    return f"{_FORBIDDEN_MARK}: {what}"


def forbidden_cause(exc: BaseException) -> str | None:
    """The policy refusal behind a connection error (aiohttp's or botocore's), if that is what it was."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        text = str(e)
        if isinstance(e, ForbiddenAddress):
            return text
        if _FORBIDDEN_MARK in text:
            return text[text.index(_FORBIDDEN_MARK):]
        todo += [e.__cause__, e.__context__, getattr(e, "os_error", None)]
        kwargs = getattr(e, "kwargs", None)  # botocore keeps the urllib3 error in `kwargs["error"]`
        if isinstance(kwargs, dict) and isinstance(kwargs.get("error"), BaseException):
            todo.append(kwargs["error"])
    return None
