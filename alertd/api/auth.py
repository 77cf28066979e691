"""Bearer tokens with scopes, stored as SHA-256 hashes and compared in constant time.

With no tokens configured the API is open (the listener binds to loopback by default) and
the acting name is ``anonymous``; once any token is configured, every protected endpoint
needs one with the right scope: 401 without a (known) token, 403 without the scope.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from aiohttp import web

from alertd.config.server import ApiToken, Scope

ANONYMOUS = "anonymous"


def token_hash(token: str) -> str:
    """Return the hex SHA-256 that ``server.yaml`` stores for ``token``."""
    return hashlib.sha256(token.encode()).hexdigest()


class Authorizer:
    """Answers "who is this request, and may it do that?"."""

    def __init__(self, tokens: Mapping[str, ApiToken]) -> None:
        self.tokens = dict(tokens)

    @property
    def open(self) -> bool:
        return not self.tokens

    def identify(self, request: web.Request) -> tuple[str, frozenset[str]] | None:
        """Return the token's name and scopes, or None for no or an unknown token."""
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        digest = token_hash(presented.strip())
        found: tuple[str, frozenset[str]] | None = None
        for name, token in self.tokens.items():  # compare with all: no early exit to time
            if hmac.compare_digest(digest, token.sha256):
                found = (name, frozenset(token.scopes))
        return found

    def require(self, request: web.Request, scope: Scope) -> str:
        """Return the acting name, or raise 401/403 as JSON errors."""
        if self.open:
            return ANONYMOUS
        who = self.identify(request)
        if who is None:
            # a typo'd or revoked token is not "no token" (user test: both said "needed")
            given = request.headers.get("Authorization", "").partition(" ")[2].strip()
            why = "this bearer token is not known" if given else "a bearer token is needed"
            raise web.HTTPUnauthorized(
                text=json.dumps({"code": "unauthorized", "message": why}),
                content_type="application/json",
                headers={"WWW-Authenticate": 'Bearer realm="alertd"'},
            )
        name, scopes = who
        if scope not in scopes:
            raise web.HTTPForbidden(
                text=json.dumps(
                    {"code": "forbidden", "message": f'token "{name}" lacks the {scope} scope'}
                ),
                content_type="application/json",
            )
        return name
