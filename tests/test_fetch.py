"""The outbound client against real loopback servers: limits, redirects, SSRF, deny list.

Servers are `tests.support.websites` listeners on 127.0.0.1. Most tests opt in
to private addresses (the servers are on loopback); the SSRF tests do not, and
prove a refusal happened before any connection by the listener's `accepted`
counter, with a twin fetch that *is* allowed showing the counter can move.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolicator.config import FetchSettings
from symbolicator.fetch import Fetcher, FetchError, ForbiddenAddress, GuardedResolver
from symbolicator.fetch_policy import (
    AddressPolicy,
    forbidden_reason,
    origin_allowed,
    parse_ip,
)
from tests.support.websites import (
    FullBacklogListener,
    MiB,
    SilentListener,
    Website,
    ipv6_loopback_available,
)

SETTINGS = FetchSettings(
    connect_timeout_s=1.0, read_timeout_s=0.3, total_timeout_s=3.0, max_redirects=3, per_host_concurrency=2
)


@pytest.fixture
async def site() -> AsyncIterator[Website]:
    async with Website() as s:
        yield s


@pytest.fixture
async def other_site() -> AsyncIterator[Website]:
    async with Website() as s:
        yield s


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    f = Fetcher(SETTINGS, allow_private_addresses=True)
    yield f
    await f.close()


@pytest.fixture
async def strict() -> AsyncIterator[Fetcher]:
    """The production default: private and loopback addresses refused."""
    f = Fetcher(SETTINGS, allow_private_addresses=False)
    yield f
    await f.close()


async def fetch_error(f: Fetcher, url: str, **kwargs: object) -> FetchError:
    with pytest.raises(FetchError) as info:
        await f.fetch(url, **kwargs)  # type: ignore[arg-type]
    return info.value


# --- bodies, files, statuses -------------------------------------------------


async def test_small_body(site: Website, fetcher: Fetcher) -> None:
    site.add_body("/app.js", b"console.log(1)", content_type="application/javascript", headers={"SourceMap": "a.map"})
    r = await fetcher.fetch(site.url("/app.js"))
    assert (r.status, r.body, r.size, r.path) == (200, b"console.log(1)", 14, None)
    assert r.url == site.url("/app.js")
    assert r.headers["sourcemap"] == "a.map"
    assert r.headers["content-type"].startswith("application/javascript")


async def test_stream_to_dest_writes_whole_file(site: Website, fetcher: Fetcher, tmp_path: Path) -> None:
    site.add_huge("/big.map", 3 * MiB + 5, chunked=True)
    dest = tmp_path / "big.map"
    r = await fetcher.fetch(site.url("/big.map"), dest=dest)
    assert (r.body, r.path, r.size) == (None, dest, 3 * MiB + 5)
    assert dest.stat().st_size == 3 * MiB + 5
    assert list(tmp_path.iterdir()) == [dest]


async def test_too_large_to_dest_keeps_nothing(site: Website, fetcher: Fetcher, tmp_path: Path) -> None:
    site.add_huge("/big.map", 3 * MiB, chunked=True)
    err = await fetch_error(fetcher, site.url("/big.map"), dest=tmp_path / "big.map", max_bytes=MiB)
    assert err.reason == "too_large"
    assert list(tmp_path.iterdir()) == []


async def test_unwritable_dest_is_other_and_not_blamed_on_the_host(site: Website, tmp_path: Path) -> None:
    site.add_body("/a.js", b"x")
    f = Fetcher(SETTINGS, allow_private_addresses=True, deny_threshold=1)
    try:
        err = await fetch_error(f, site.url("/a.js"), dest=tmp_path / "missing-dir" / "a.js")
        assert err.reason == "other"
        assert (await f.fetch(site.url("/a.js"))).body == b"x"
    finally:
        await f.close()


async def test_origin_checked_on_the_first_url(site: Website, fetcher: Fetcher) -> None:
    site.add_body("/a.js", b"x")
    err = await fetch_error(fetcher, site.url("/a.js"), allowed_origins=["*.example.com"])
    assert err.reason == "invalid_host" and site.accepted == 0
    assert (await fetcher.fetch(f"http://0x7f.1:{site.port}/a.js", allowed_origins=["127.0.0.1"])).body == b"x"


async def test_origin_check_predicate_applies_to_every_hop(
    site: Website, other_site: Website, fetcher: Fetcher
) -> None:
    site.add_redirect("/a.js", other_site.url("/a.js"))
    other_site.add_body("/a.js", b"x")
    checked: list[str] = []

    def only_first_site(url: str) -> bool:
        checked.append(url)
        return url.startswith(site.base_url)

    err = await fetch_error(fetcher, site.url("/a.js"), allowed_origins=["*"], origin_check=only_first_site)
    assert err.reason == "invalid_host"
    assert checked == [site.url("/a.js"), other_site.url("/a.js")] and other_site.accepted == 0


async def test_html_where_a_map_is_expected_is_just_a_200(site: Website, fetcher: Fetcher) -> None:
    site.add_body("/app.js.map", b"<!doctype html><h1>Login</h1>", content_type="text/html")
    r = await fetcher.fetch(site.url("/app.js.map"))
    assert r.status == 200 and r.body is not None and r.body.startswith(b"<!doctype")


@pytest.mark.parametrize(
    ("status", "reason"),
    [(404, "not_found"), (410, "not_found"), (401, "permission_denied"), (403, "permission_denied"),
     (500, "download_error"), (503, "download_error"), (418, "download_error")],
)
async def test_status_mapping(site: Website, fetcher: Fetcher, status: int, reason: str) -> None:
    site.add_status("/x", status)
    err = await fetch_error(fetcher, site.url("/x"))
    assert (err.reason, err.status) == (reason, status)
    assert str(status) in str(err)


async def test_gzip_bomb_is_capped_on_decompressed_size(site: Website, fetcher: Fetcher) -> None:
    bomb = gzip.compress(b"\0" * (8 * MiB))
    site.add_body("/bomb.map", bomb, headers={"Content-Encoding": "gzip"})
    assert len(bomb) < 64 * 1024
    err = await fetch_error(fetcher, site.url("/bomb.map"), max_bytes=MiB)
    assert err.reason == "too_large"


# --- huge bodies: fast refusal, bounded memory -------------------------------


async def _peak_during(coro: object) -> tuple[int, float, BaseException | None]:
    tracemalloc.start()
    started = time.monotonic()
    error: BaseException | None = None
    try:
        await coro  # type: ignore[misc]
    except FetchError as e:
        error = e
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, time.monotonic() - started, error


async def test_70mb_with_content_length_refused_up_front(site: Website, fetcher: Fetcher) -> None:
    site.add_huge("/huge.map", 70 * MiB)
    peak, took, err = await _peak_during(fetcher.fetch(site.url("/huge.map")))
    assert isinstance(err, FetchError) and err.reason == "too_large"
    assert took < 2.0 and peak < 8 * MiB


async def test_70mb_chunked_streamed_to_dest_stops_at_cap(site: Website, tmp_path: Path) -> None:
    site.add_huge("/huge.map", 70 * MiB, chunked=True)
    f = Fetcher(FetchSettings(read_timeout_s=5.0, total_timeout_s=20.0), allow_private_addresses=True)
    try:
        peak, took, err = await _peak_during(f.fetch(site.url("/huge.map"), dest=tmp_path / "huge.map"))
    finally:
        await f.close()
    assert isinstance(err, FetchError) and err.reason == "too_large"
    assert peak < 16 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert took < 15.0
    assert list(tmp_path.iterdir()) == []


async def test_70mb_chunked_in_memory_bounded_by_the_cap(site: Website, fetcher: Fetcher) -> None:
    site.add_huge("/huge.map", 70 * MiB, chunked=True)
    peak, took, err = await _peak_during(fetcher.fetch(site.url("/huge.map"), max_bytes=2 * MiB))
    assert isinstance(err, FetchError) and err.reason == "too_large"
    assert peak < 8 * MiB and took < 2.0


# --- timeouts ------------------------------------------------------------------


async def test_slow_server_past_read_timeout(site: Website, fetcher: Fetcher) -> None:
    site.add_drip("/slow.js", b"abc", first_byte_delay_s=10)
    started = time.monotonic()
    err = await fetch_error(fetcher, site.url("/slow.js"))
    assert err.reason == "timeout"
    assert time.monotonic() - started < 1.5


async def test_dripping_server_cut_by_total_timeout(site: Website) -> None:
    site.add_drip("/drip.js", b"x" * 1000, interval_s=0.05)
    f = Fetcher(FetchSettings(read_timeout_s=1.0, total_timeout_s=0.6), allow_private_addresses=True)
    started = time.monotonic()
    try:
        err = await fetch_error(f, site.url("/drip.js"))
    finally:
        await f.close()
    assert err.reason == "timeout"
    assert 0.5 < time.monotonic() - started < 1.5


async def test_listener_that_never_answers_hits_total_timeout() -> None:
    f = Fetcher(FetchSettings(read_timeout_s=30.0, total_timeout_s=0.5), allow_private_addresses=True)
    async with SilentListener() as silent:
        started = time.monotonic()
        try:
            err = await fetch_error(f, silent.base_url + "/app.js")
        finally:
            await f.close()
        assert silent.accepted == 1
    assert err.reason == "timeout"
    assert time.monotonic() - started < 1.5


async def test_connect_that_hangs_hits_connect_timeout() -> None:
    f = Fetcher(FetchSettings(connect_timeout_s=0.3, read_timeout_s=10.0, total_timeout_s=5.0),
                allow_private_addresses=True)
    async with FullBacklogListener() as full:
        started = time.monotonic()
        try:
            err = await fetch_error(f, full.base_url + "/")
        finally:
            await f.close()
    assert err.reason == "timeout"
    assert time.monotonic() - started < 1.5


async def test_hung_handler_hits_read_timeout(site: Website, fetcher: Fetcher) -> None:
    site.add_hang("/never")
    err = await fetch_error(fetcher, site.url("/never"))
    assert err.reason == "timeout"


# --- redirects -----------------------------------------------------------------


async def test_relative_redirect_followed(site: Website, fetcher: Fetcher) -> None:
    site.add_redirect("/old.js", "/static/new.js", status=301)
    site.add_body("/static/new.js", b"new")
    r = await fetcher.fetch(site.url("/old.js"))
    assert (r.url, r.body) == (site.url("/static/new.js"), b"new")


async def test_redirect_loop(site: Website, fetcher: Fetcher) -> None:
    site.add_redirect("/a", "/b")
    site.add_redirect("/b", "/a")
    err = await fetch_error(fetcher, site.url("/a"))
    assert err.reason == "download_error" and "loop" in str(err)
    assert site.requests == ["/a", "/b"]


async def test_too_many_redirects(site: Website, fetcher: Fetcher) -> None:
    for i in range(6):
        site.add_redirect(f"/r{i}", f"/r{i + 1}")
    err = await fetch_error(fetcher, site.url("/r0"))
    assert err.reason == "download_error" and "redirects" in str(err)
    assert len(site.requests) == SETTINGS.max_redirects + 1


async def test_redirect_to_disallowed_origin(site: Website, other_site: Website, fetcher: Fetcher) -> None:
    site.add_redirect("/app.js", other_site.url("/app.js"))
    other_site.add_body("/app.js", b"x")
    origins = [f"127.0.0.1:{site.port}"]
    assert (await fetch_error(fetcher, site.url("/app.js"), allowed_origins=origins)).reason == "invalid_host"
    assert other_site.accepted == 0
    r = await fetcher.fetch(site.url("/app.js"), allowed_origins=origins + [f"http://127.0.0.1:{other_site.port}"])
    assert r.body == b"x" and other_site.accepted == 1


async def test_caller_headers_dropped_on_cross_origin_redirect(
    site: Website, other_site: Website, fetcher: Fetcher
) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get("X-Sentry-Token", "-"))

    site.add("/same", echo)
    other_site.add("/other", echo)
    site.add_redirect("/to-same", "/same")
    site.add_redirect("/to-other", other_site.url("/other"))
    headers = {"X-Sentry-Token": "secret"}
    assert (await fetcher.fetch(site.url("/to-same"), headers=headers)).body == b"secret"
    assert (await fetcher.fetch(site.url("/to-other"), headers=headers)).body == b"-"


async def test_redirect_from_allowed_host_to_private_address(site: Website, other_site: Website) -> None:
    """The allow-list admits one internal endpoint; a redirect elsewhere on the network is refused."""
    site.add_body("/ok", b"ok")
    site.add_redirect("/to-private", other_site.url("/secret"))
    site.add_redirect("/to-localhost", f"http://localhost:{other_site.port}/secret")
    other_site.add_body("/secret", b"secret")
    f = Fetcher(SETTINGS, allowed_hosts=[f"127.0.0.1:{site.port}"])
    try:
        assert (await f.fetch(site.url("/ok"))).body == b"ok"
        assert (await fetch_error(f, site.url("/to-private"))).reason == "invalid_host"
        assert (await fetch_error(f, site.url("/to-localhost"))).reason == "invalid_host"
    finally:
        await f.close()
    assert other_site.accepted == 0


async def test_redirect_to_other_scheme_refused(site: Website, fetcher: Fetcher) -> None:
    site.add_redirect("/x", "file:///etc/passwd")
    assert (await fetch_error(fetcher, site.url("/x"))).reason == "invalid_host"


# --- SSRF ------------------------------------------------------------------------

LOOPBACK_SPELLINGS = [
    "127.0.0.1", "127.0.0.1.", "127.1", "127.000.000.001", "2130706433", "0177.0.0.1", "0x7f.1", "0x7f000001",
    "017700000001", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]",
    "0.0.0.0", "0", "localhost", "LocalHost.", "[::]",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_loopback_spellings_refused_before_connecting(site: Website, strict: Fetcher, host: str) -> None:
    site.add_body("/", b"internal")
    err = await fetch_error(strict, f"http://{host}:{site.port}/")
    assert err.reason == "invalid_host"
    assert site.accepted == 0


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0177.0.0.1", "0x7f.1", "127.0.0.1.", "localhost", "0.0.0.0"])
async def test_same_spellings_reach_the_listener_when_private_is_allowed(
    site: Website, fetcher: Fetcher, host: str
) -> None:
    """Proves the `accepted == 0` above is a real observation, not a dead counter.

    Legacy spellings are canonicalised as browsers do (`0x7f.1` → 127.0.0.1).
    """
    site.add_body("/", b"internal")
    assert (await fetcher.fetch(f"http://{host}:{site.port}/")).body == b"internal"
    assert site.accepted == 1


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "224.0.0.1",
             "240.0.0.1", "255.255.255.255", "[fe80::1]", "[fc00::1]", "[fd12:3456::1]", "[ff02::1]",
             "[::ffff:169.254.169.254]", "[::ffff:10.0.0.1]"],
)
async def test_private_and_reserved_literals_refused(strict: Fetcher, host: str) -> None:
    err = await fetch_error(strict, f"http://{host}/latest/meta-data/")
    assert err.reason == "invalid_host"


async def test_only_http_schemes(strict: Fetcher) -> None:
    for url in ["ftp://example.com/a.js", "file:///etc/passwd", "gopher://example.com/", "data:,x"]:
        assert (await fetch_error(strict, url)).reason == "invalid_host"


async def test_ipv6_loopback_refused() -> None:
    if not ipv6_loopback_available():
        pytest.skip("no IPv6 loopback in this environment")
    async with Website(host="::1") as v6:
        v6.add_body("/", b"v6")
        strict = Fetcher(SETTINGS)
        lenient = Fetcher(SETTINGS, allow_private_addresses=True)
        try:
            assert (await fetch_error(strict, v6.url("/"))).reason == "invalid_host"
            assert v6.accepted == 0
            assert (await lenient.fetch(v6.url("/"))).body == b"v6"
        finally:
            await strict.close()
            await lenient.close()


class FixedDNS(AbstractResolver):
    """A stand-in DNS server: every name resolves to `ip` (as a rebinding attacker would answer)."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        self.queries: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.queries.append(host)
        return [{"hostname": host, "host": self.ip, "port": port, "family": socket.AF_INET, "proto": 0,
                 "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        pass


async def test_public_looking_name_resolving_to_loopback_refused(site: Website) -> None:
    dns = FixedDNS("127.0.0.1")
    site.add_body("/", b"internal")
    f = Fetcher(SETTINGS, dns_resolver=lambda: dns)
    try:
        err = await fetch_error(f, f"http://cdn.example.com:{site.port}/")
    finally:
        await f.close()
    assert err.reason == "invalid_host" and "127.0.0.1" in str(err)
    assert dns.queries == ["cdn.example.com"] and site.accepted == 0


async def test_socket_check_holds_even_if_dns_answers_slip_through(site: Website) -> None:
    """Rebinding defence: the socket factory checks the address actually connected to."""
    dns = FixedDNS("127.0.0.1")
    site.add_body("/", b"internal")
    f = Fetcher(SETTINGS, dns_resolver=lambda: dns)
    try:
        f._get_session()
        assert f._resolver is not None
        f._resolver.resolve = dns.resolve  # type: ignore[method-assign]  # DNS check bypassed on purpose
        err = await fetch_error(f, f"http://rebind.example.com:{site.port}/")
    finally:
        await f.close()
    assert err.reason == "invalid_host"
    assert dns.queries == ["rebind.example.com"] and site.accepted == 0


async def test_socket_factory_refuses_private_sockaddr() -> None:
    guard = GuardedResolver(AddressPolicy())
    for sockaddr in [("127.0.0.1", 80), ("10.1.2.3", 443)]:
        with pytest.raises(ForbiddenAddress):
            guard.open_socket((socket.AF_INET, socket.SOCK_STREAM, 6, "", sockaddr))
    guard.open_socket((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80))).close()


async def test_allow_listed_name_and_network(site: Website) -> None:
    site.add_body("/", b"internal")
    by_name = Fetcher(SETTINGS, allowed_hosts=[f"localhost:{site.port}"])
    by_net = Fetcher(SETTINGS, allowed_networks=["127.0.0.0/8"])
    wrong_port = Fetcher(SETTINGS, allowed_hosts=[f"localhost:{site.port + 1 if site.port < 65535 else 1}"])
    try:
        assert (await by_name.fetch(f"http://localhost:{site.port}/")).body == b"internal"
        assert (await by_net.fetch(site.url("/"))).body == b"internal"
        assert (await fetch_error(wrong_port, f"http://localhost:{site.port}/")).reason == "invalid_host"
    finally:
        for f in (by_name, by_net, wrong_port):
            await f.close()
    assert site.accepted == 2


# --- deny list and per-host concurrency ---------------------------------------


async def test_deny_list_blocks_after_failures_and_expires(site: Website) -> None:
    now = [1000.0]
    f = Fetcher(SETTINGS, allow_private_addresses=True, deny_threshold=3, deny_window_s=60, deny_block_s=30,
                clock=lambda: now[0])
    site.add_status("/err", 500)
    site.add_status("/missing", 404)
    try:
        for _ in range(5):
            assert (await fetch_error(f, site.url("/missing"))).reason == "not_found"
        for _ in range(3):
            assert (await fetch_error(f, site.url("/err"))).reason == "download_error"
        seen = len(site.requests)
        assert (await fetch_error(f, site.url("/missing"))).reason == "denied"
        assert len(site.requests) == seen
        now[0] += 31
        assert (await fetch_error(f, site.url("/missing"))).reason == "not_found"
        assert len(site.requests) == seen + 1
    finally:
        await f.close()


async def test_deny_list_window_forgets_old_failures(site: Website) -> None:
    now = [0.0]
    f = Fetcher(SETTINGS, allow_private_addresses=True, deny_threshold=3, deny_window_s=10, clock=lambda: now[0])
    site.add_status("/err", 502)
    try:
        for _ in range(2):
            await fetch_error(f, site.url("/err"))
        now[0] += 11
        for _ in range(2):
            assert (await fetch_error(f, site.url("/err"))).reason == "download_error"
    finally:
        await f.close()


async def test_per_host_concurrency_observed_at_server(site: Website, other_site: Website, fetcher: Fetcher) -> None:
    gate = asyncio.Event()
    site.add_gate("/held", gate)
    other_site.add_body("/free", b"free")
    tasks = [asyncio.create_task(fetcher.fetch(site.url("/held"))) for _ in range(6)]
    for _ in range(300):
        if site.in_flight >= SETTINGS.per_host_concurrency:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert site.in_flight == SETTINGS.per_host_concurrency
    assert (await fetcher.fetch(other_site.url("/free"))).body == b"free"
    gate.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert [r.body for r in results] == [b"ok"] * 6
    assert site.max_in_flight == SETTINGS.per_host_concurrency


# --- properties of the pure rules ---------------------------------------------

hosts = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True)
ports = st.integers(1, 65535)


@settings(max_examples=60, deadline=None)
@given(hosts, ports, st.sampled_from(["http", "https"]))
def test_origin_star_and_exact_host(host: str, port: int, scheme: str) -> None:
    url = f"{scheme}://{host}:{port}/a.js"
    assert origin_allowed(url, ["*"])
    assert origin_allowed(url, [host.upper()])
    assert origin_allowed(url, [f"{host}:{port}"])
    assert origin_allowed(url, [f"*:{port}"])
    assert not origin_allowed(url, [f"*:{port % 65535 + 1}"])
    assert origin_allowed(url, [f"{scheme}://{host}:{port}"])
    assert not origin_allowed(url, [f"{'https' if scheme == 'http' else 'http'}://{host}:{port}"])
    assert not origin_allowed(url, [])


@settings(max_examples=60, deadline=None)
@given(hosts, hosts, ports)
def test_origin_wildcard_subdomains(sub: str, base: str, port: int) -> None:
    assert origin_allowed(f"http://{sub}.{base}:{port}/", [f"*.{base}"])
    assert origin_allowed(f"http://{base}/", [f"*.{base}"])
    assert not origin_allowed(f"http://{sub}{base}/", [f"*.{base}"])
    assert not origin_allowed(f"http://{sub}.{base}/", [base])
    assert not origin_allowed(f"http://{base}.{sub}.evil/", [f"*.{base}"])


def test_origin_scheme_pattern_defaults_to_scheme_port() -> None:
    assert origin_allowed("http://example.com/a.js", ["http://example.com"])
    assert not origin_allowed("http://example.com:8080/a.js", ["http://example.com"])
    assert origin_allowed("https://cdn.example.com/a.js", ["https://*.example.com"])
    assert not origin_allowed("not a url", ["*"])


ipv4s = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
private_nets = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
                "100.64.0.0/10", "224.0.0.0/4", "240.0.0.0/4", "0.0.0.0/8"]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(private_nets), st.integers(0, 2**32 - 1))
def test_every_address_in_forbidden_ipv4_ranges_is_refused(net: str, offset: int) -> None:
    network = ipaddress.IPv4Network(net)
    ip = network[offset % network.num_addresses]
    assert forbidden_reason(ip) is not None


@settings(max_examples=60, deadline=None)
@given(ipv4s)
def test_ipv6_wrappers_judged_by_the_embedded_ipv4(ip: ipaddress.IPv4Address) -> None:
    verdict = forbidden_reason(ip) is None
    mapped = ipaddress.IPv6Address(f"::ffff:{ip}")
    nat64 = ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(ip))
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(ip) << 80) | 1)
    for wrapped in (mapped, nat64, sixtofour):
        assert (forbidden_reason(wrapped) is None) == verdict


@settings(max_examples=60, deadline=None)
@given(ipv4s)
def test_legacy_ipv4_spellings_parse_to_the_same_address(ip: ipaddress.IPv4Address) -> None:
    a, b, c, d = ip.packed
    n = int(ip)
    for spelling in (str(n), hex(n), f"0{n:o}", f"{a:#o}.{b:#o}.{c:#o}.{d:#o}".replace("0o", "0"),
                     f"{a:#x}.{b:#x}.{c:#x}.{d:#x}", f"{a}.{(b << 16) | (c << 8) | d}"):
        assert parse_ip(spelling) == ip, spelling


def test_public_addresses_allowed() -> None:
    for text in ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::200e"]:
        assert forbidden_reason(ipaddress.ip_address(text)) is None, text
    assert parse_ip("example.com") is None and parse_ip("cafe.be") is None and parse_ip("1.2.3.4.example") is None
