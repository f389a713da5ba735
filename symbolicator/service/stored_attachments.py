"""`/symbolicate-any` with a stored attachment: Symbolicator's form of the route.

Sentry keeps a large minidump or crash report in its attachment store and sends only where it
is: `{"symbolicate": {"type": "minidump", "storage_url": …, "rewrite_first_module": […]}}` or
`{"type": "applecrashreport", "storage_url": …}`, beside the usual `sources`, `options`,
`platform` and `scraping` (Symbolicator's `SymbolicateAnyRequestBody` /
`SymbolicationRequest`; `storage_token`, when sent, goes as a bearer token, as Symbolicator's
`AttachmentFile::Remote`). `StoredAttachment.from_json` validates that before the job (422).

The job fetches the attachment with the service's one outbound client (`fetch.Fetcher`): the
scraping address policy applies (private and loopback addresses refused unless
`fetch.allow_private_addresses`), redirects are re-checked, the body streams to a temporary
file capped at `limits.max_body_bytes` (what an uploaded dump may weigh), within the request's
fetch budget. A fetch that fails, or a body too large, ends the job with
`{"status": "failed", "message": …}` (`AttachmentUnavailable`), as Symbolicator answers when
its download fails; a file that is no minidump or crash report fails the same way. The file is
deleted when the job ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from symbolicator.errors import AttachmentUnavailable, FetchError, InvalidShape
from symbolicator.fetch import Fetcher
from symbolicator.service.rewrite_rules import RewriteRules

Kind = Literal["minidump", "applecrashreport"]
KINDS: tuple[Kind, ...] = ("minidump", "applecrashreport")
MAX_URL_CHARS = 8192


@dataclass(frozen=True)
class StoredAttachment:
    """A validated `symbolicate` object and the request fields around it."""

    kind: Kind
    storage_url: str
    storage_token: str | None
    rewrite_first_module: RewriteRules
    fields: dict[str, Any]
    """`sources`, `options`, `platform` of the request body, as a native request reads them."""

    @classmethod
    def from_json(cls, body: Any) -> StoredAttachment:
        if not isinstance(body, dict) or not isinstance(body.get("symbolicate"), dict):
            raise InvalidShape("`symbolicate` must be an object")
        spec = body["symbolicate"]
        kind = spec.get("type")
        if kind not in KINDS:
            raise InvalidShape(f"`symbolicate.type` must be one of {', '.join(KINDS)}")
        url = spec.get("storage_url")
        if not isinstance(url, str) or len(url) > MAX_URL_CHARS or urlsplit(url).scheme not in ("http", "https") \
                or not urlsplit(url).hostname:
            raise InvalidShape("`symbolicate.storage_url` must be an http(s) URL")
        token = spec.get("storage_token")
        if token is not None and (not isinstance(token, str) or any(c in token for c in "\r\n")):
            raise InvalidShape("`symbolicate.storage_token` must be a string")
        rules = RewriteRules()
        if kind == "minidump":
            rules = RewriteRules.from_json(spec.get("rewrite_first_module"), "symbolicate.rewrite_first_module")
        fields = {k: body[k] for k in ("sources", "options", "platform") if k in body}
        return cls(kind, url, token, rules, fields)


async def fetch_attachment(fetcher: Fetcher | None, attachment: StoredAttachment, dest: Path, max_bytes: int) -> None:
    """The attachment's bytes into `dest`; AttachmentUnavailable (naming the reason) otherwise."""
    if fetcher is None:
        raise AttachmentUnavailable("this service has no outbound HTTP client to fetch `storage_url` with")
    headers = {"Authorization": f"Bearer {attachment.storage_token}"} if attachment.storage_token else None
    try:
        await fetcher.fetch(attachment.storage_url, headers=headers, max_bytes=max_bytes, dest=dest)
    except FetchError as exc:
        raise AttachmentUnavailable(f"the {attachment.kind} could not be fetched from its storage_url "
                                    f"({exc.reason}): {exc}") from exc
