"""Bearer tokens → scopes and rights (docs/api.md).

Uploads need a token with the `upload` right for the scope, except when the
service is bound to loopback with no tokens configured (a developer's machine)
or `auth.disabled` is set. Symbolication is open unless `auth.symbolicate =
"token"`, as in Sentry's Symbolicator, which runs on an internal network.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from symbolicator.config import Settings, TokenSettings
from symbolicator.errors import Forbidden, Unauthorized
from symbolicator.types import Scope


def scope_matches(pattern: str, scope: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith("/*"):
        org = pattern[:-2]
        return scope == org or scope.startswith(org + "/")
    return pattern == scope


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.tokens = dict(settings.auth.tokens)
        self.uploads_open = settings.auth.disabled or (not self.tokens and settings.bound_to_loopback)
        self.symbolicate_open = settings.auth.disabled or settings.auth.symbolicate == "open"

    def _token(self, request: web.Request) -> TokenSettings:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("authentication required: send Authorization: Bearer <token>")
        presented = value.strip().encode()
        for token, grant in self.tokens.items():
            if hmac.compare_digest(token.encode(), presented):
                return grant
        raise Unauthorized("invalid token")

    def _require(self, request: web.Request, right: str, scopes: list[str]) -> None:
        grant = self._token(request)
        if right not in grant.rights:
            raise Forbidden(f"this token lacks the {right!r} right")
        for scope in scopes:
            if not any(scope_matches(p, scope) for p in grant.scopes):
                raise Forbidden(f"this token has no access to scope {scope!r}")

    def require_upload(self, request: web.Request, scopes: list[Scope]) -> None:
        if not self.uploads_open:
            self._require(request, "upload", [str(s) for s in scopes])

    def require_upload_org(self, request: web.Request, org: str) -> None:
        """Org-level endpoints (chunks): the token must reach some scope of the org."""
        if self.uploads_open:
            return
        grant = self._token(request)
        if "upload" not in grant.rights:
            raise Forbidden("this token lacks the 'upload' right")
        if not any(p == "*" or p == org or p.split("/")[0] == org for p in grant.scopes):
            raise Forbidden(f"this token has no access to organization {org!r}")

    def require_symbolicate(self, request: web.Request, scope: Scope) -> None:
        if not self.symbolicate_open:
            self._require(request, "symbolicate", [str(scope)])
