"""A request's S3 endpoint: read the way botocore reads it, and connected to only where the policy allows.

With `allow_request_sources = true` a caller names the S3 endpoint, so the
endpoint is an SSRF vector exactly like an `http` source's URL. Two ways past
a check that is made apart from the connection:

- **Parser differences.** `urlsplit("http://127.0.0.1:9\\@host:80")` says host
  `host`, port 80; urllib3 (which botocore hands the URL to) stops the authority
  at the `\\` and connects to 127.0.0.1:9. So `endpoint_problem` refuses `\\`,
  `@` (user info), whitespace and control characters outright, then requires
  `urlsplit` and urllib3's `parse_url` to agree on scheme, host and port.
- **Resolving twice.** A check that resolves the name and a client that
  resolves it again can get two answers (DNS rebinding). `guard_client`
  replaces the connection class of one boto3 client's pools: each new socket
  resolves the name once, drops the answers `AddressPolicy.refusal` forbids,
  and connects to an address that passed. That is the same rule `fetch.py`'s
  socket factory applies, and it covers every hop, region redirects included.

A refused address raises `ForbiddenAddress` (fetch_policy.py's), which `download.py`
reports as the candidate detail `invalid_host: …`.
"""

from __future__ import annotations

import re
import socket
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import botocore.awsrequest
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.util import parse_url

from symbolicator.errors import ForbiddenAddress
from symbolicator.fetch_policy import DEFAULT_PORTS, AddressPolicy, forbidden_message, hostname_problem, parse_ip

_BAD_CHARS = re.compile(r"[\\@\s\x00-\x1f\x7f]")


def endpoint_problem(url: str) -> str | None:
    """Why a request's S3 `endpoint_url` is refused before any lookup, or None if it may be tried."""
    bad = _BAD_CHARS.search(url)
    if bad is not None:
        return f"the endpoint contains {bad.group()!r} (backslash, @, whitespace and control characters are refused)"
    try:
        ours = urlsplit(url)
        ours_port = ours.port
        theirs = parse_url(url)
    except (ValueError, LocationParseError) as e:
        return f"the endpoint cannot be parsed: {e}"
    scheme = (ours.scheme or "").lower()
    if scheme not in DEFAULT_PORTS or not ours.hostname:
        return "the endpoint must be an http(s) URL with a host"
    host = ours.hostname.rstrip(".")
    port = ours_port or DEFAULT_PORTS[scheme]
    their_host = (theirs.host or "").strip("[]").lower().rstrip(".")
    if (theirs.scheme or "").lower() != scheme or their_host != host or (theirs.port or DEFAULT_PORTS[scheme]) != port:
        return "the endpoint reads differently to the S3 client than to the address check"
    if parse_ip(host) is None:
        return hostname_problem(host)
    return None


def guarded_connect(policy: AddressPolicy, host: str, port: int, timeout: Any,
                    source_address: Any = None, socket_options: Any = None) -> socket.socket:
    """Resolve `host` once and connect to the first answer the policy admits; ForbiddenAddress if none."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    vouched = policy.name_allowed(host, port)
    refused: list[str] = []
    last_error: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        reason = None if vouched else policy.refusal(ip_address(sockaddr[0]), int(sockaddr[1]))
        if reason is not None:
            refused.append(f"{sockaddr[0]} ({reason})")
            continue
        sock = socket.socket(family, kind, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            if isinstance(timeout, (int, float)):
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as e:
            sock.close()
            last_error = e
    if last_error is not None:
        raise last_error
    answers = ", ".join(refused) or "nothing"
    raise ForbiddenAddress(forbidden_message(f"S3 endpoint {host}:{port} resolves to {answers}"))


def guard_client(client: Any, policy: AddressPolicy) -> None:
    """Make every new connection of boto3 `client` go through `guarded_connect` under `policy`."""
    if policy.allow_private:
        return

    def new_conn(self: Any) -> socket.socket:
        """urllib3's `_new_conn`, errors wrapped the same way, with `guarded_connect` as the connect."""
        try:
            return guarded_connect(policy, self._dns_host, self.port, self.timeout, self.source_address,
                                   self.socket_options)
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e
        except TimeoutError as e:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out.") from e
        except OSError as e:
            raise NewConnectionError(self, f"Failed to establish a new connection: {e}") from e

    http_conn = type("GuardedHTTPConnection", (botocore.awsrequest.AWSHTTPConnection,), {"_new_conn": new_conn})
    https_conn = type("GuardedHTTPSConnection", (botocore.awsrequest.AWSHTTPSConnection,), {"_new_conn": new_conn})
    pools = {
        "http": type("GuardedHTTPPool", (botocore.awsrequest.AWSHTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("GuardedHTTPSPool", (botocore.awsrequest.AWSHTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }
    session = client._endpoint.http_session
    # The pool manager and any proxy manager share this dict, so updating it in place covers them all.
    session._pool_classes_by_scheme.update(pools)
