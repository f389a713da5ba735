"""`endpoints`: request-supplied S3 endpoints and host names, differential against urllib3.

A request's S3 endpoint is checked by our code and connected to by botocore, which hands the
URL to urllib3; the SSRF of issue 15 lived in the gap between the two parsers
(`http://127.0.0.1:9\\@host:80`). So whenever `s3_guard.endpoint_problem` accepts an endpoint,
this target asks urllib3's `parse_url` independently and requires the same scheme, host and
port, and none of the refused characters (`\\`, `@`, whitespace, control characters). A
host name `fetch_policy.hostname_problem` accepts must be one DNS could carry: at most 253
characters, labels of 1 to 63, and the IDNA codec (what the resolver call encodes with)
must take it. Anything accepted that breaks these is a `Violation("wrong", …)`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from urllib3.util import parse_url

from fuzz.contract import Violation
from symbolicator.fetch_policy import DEFAULT_PORTS, hostname_problem, parse_ip
from symbolicator.sources.s3_guard import endpoint_problem

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

_REFUSED = re.compile(r"[\\@\s\x00-\x1f\x7f]")


def run(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    if endpoint_problem(text) is None:
        _check_endpoint(text)
    host = text.partition("://")[2].split("/", 1)[0] if "://" in text else text
    if host and parse_ip(host) is None and hostname_problem(host) is None:
        _check_hostname(host)


def _check_endpoint(url: str) -> None:
    if _REFUSED.search(url):
        raise Violation("wrong", f"accepted an endpoint with a refused character: {url!r}")
    ours, theirs = urlsplit(url), parse_url(url)
    scheme = ours.scheme.lower()
    port = ours.port or DEFAULT_PORTS[scheme]
    host = (ours.hostname or "").rstrip(".")
    their_host = (theirs.host or "").strip("[]").lower().rstrip(".")
    if (theirs.scheme or "").lower() != scheme or their_host != host or (theirs.port or DEFAULT_PORTS[scheme]) != port:
        raise Violation("wrong", f"{url!r}: we read {scheme}://{host}:{port}, urllib3 reads "
                                 f"{theirs.scheme}://{theirs.host}:{theirs.port}")


def _check_hostname(host: str) -> None:
    name = host.removesuffix(".")
    labels = name.split(".")
    if len(name) > 253 or any(not 1 <= len(label) <= 63 for label in labels):
        raise Violation("wrong", f"accepted a host name DNS cannot carry: {host!r}")
    try:
        name.encode("idna")
    except UnicodeError as exc:
        raise Violation("wrong", f"accepted a host name the IDNA codec refuses: {host!r} ({exc})") from exc


def seeds() -> dict[str, bytes]:
    return {
        "backslash-at.txt": b"http://127.0.0.1:9\\@example.com:80",
        "userinfo.txt": b"http://user:pw@s3.example.com:9000/",
        "plain.txt": b"https://s3.eu-west-1.amazonaws.com",
        "ipv6.txt": b"http://[::ffff:127.0.0.1]:8333",
        "legacy-ipv4.txt": b"http://0x7f.1:8333",
        "long-label.txt": b"http://" + b"a" * 64 + b".example",
        "tab.txt": b"http://127.0.0.1:9\t@example.com",
        "percent.txt": b"http://127.0.0.1%2509@example.com",
        "hostname.txt": b"under_score.example.",
    }


def inputs() -> SearchStrategy[bytes]:
    from hypothesis import strategies as st

    pieces = st.sampled_from(["http://", "https://", "HTTP://", "127.0.0.1", "[::1]", "[::ffff:7f00:1]", "0x7f.1",
                              "example.com", "a" * 63, "xn--", ":", ":80", ":9", ":99999", "@", "\\", "/", "?", "#",
                              "%40", "%5C", "%2e", ".", "..", "-", "_", " ", "\t", "\n", "\x00", "\u3002", "\uff0e",
                              "ß", "é", "[", "]"])
    return st.one_of(
        st.lists(pieces, max_size=10).map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass")),
        st.binary(max_size=64),
    )
