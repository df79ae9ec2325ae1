"""Authentication: the session token a client presents, verified locally against the route's keys.

Verification (Ed25519 + claim checks) is the most expensive step of a request, and an agent sends the
same token on every call, so verified tokens are remembered in a bounded map keyed by the exact token
string and the audience. A remembered token is still checked for expiry on every use, and revocation
is never cached: it is decided by the policy document on every request.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from mcp_runtime.policy import Identity
from mcp_runtime.security import PublicKeySet, SessionClaims, TokenError, verify_session_token

BEARER = b"bearer "


class Authenticated:
    """A verified token and what follows from it, computed once per token."""

    __slots__ = ("claims", "headers", "identity")

    def __init__(self, claims: SessionClaims) -> None:
        self.claims = claims
        self.identity = identity_of(claims)
        self.headers = identity_headers(claims)


class TokenVerifier:
    """Verifies session tokens against one key set; keeps up to `cache_size` verified tokens."""

    def __init__(self, keys: PublicKeySet, *, cache_size: int = 4096) -> None:
        self.keys = keys
        self._cache: OrderedDict[tuple[str, str], Authenticated] = OrderedDict()
        self._cache_size = cache_size

    def verify(self, token: str, audience: str, now: datetime) -> Authenticated:
        """The verified caller for a valid token for `audience`, or TokenError (reason = stable code)."""
        key = (token, audience)
        known = self._cache.get(key)
        if known is not None:
            if now >= known.claims.expires_at:
                del self._cache[key]
                raise TokenError("token_expired")
            return known
        known = Authenticated(verify_session_token(token, self.keys, audience=audience, now=now))
        self._cache[key] = known
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return known


def extract_token(authorization: bytes | None, alias: bytes | None) -> str | None:
    """The token from `Authorization: Bearer <t>` or, failing that, `X-MCP-Agent-Session: <t>`."""
    if authorization is not None and authorization[:7].lower() == BEARER:
        token = authorization[7:].strip()
        if token:
            return token.decode("latin-1")
    if alias is not None:
        token = alias.strip()
        if token:
            return token.decode("latin-1")
    return None


def bearer_challenge(reason: str, message: str, resource_metadata: str | None = None) -> bytes:
    """A `WWW-Authenticate: Bearer` challenge (RFC 6750): `invalid_token` and why, unless no token was sent;
    with `resource_metadata` (RFC 9728) when the route is an OAuth protected resource."""
    metadata = f', resource_metadata="{resource_metadata}"' if resource_metadata else ""
    if reason in ("missing_identity", "missing_session"):
        return f'Bearer realm="mcp-runtime"{metadata}'.encode("latin-1", "replace")
    description = message.replace('"', "'").replace("\\", "/")
    return (f'Bearer realm="mcp-runtime"{metadata}, error="invalid_token", '
            f'error_description="{description}"').encode("latin-1", "replace")


def identity_of(claims: SessionClaims) -> Identity:
    return Identity(human_id=claims.human_id, agent_id=claims.agent_id, team_id=claims.team_id,
                    session_id=claims.session_id)


def identity_headers(claims: SessionClaims) -> list[tuple[bytes, bytes]]:
    """The identity headers the upstream gets, set from the verified token only."""
    headers = [(b"x-mcp-agent-session", _header_value(claims.session_id))]
    if claims.human_id:
        headers.append((b"x-mcp-human-id", _header_value(claims.human_id)))
    if claims.agent_id:
        headers.append((b"x-mcp-agent-id", _header_value(claims.agent_id)))
    if claims.team_id:
        headers.append((b"x-mcp-team-id", _header_value(claims.team_id)))
    return headers


def _header_value(value: str) -> bytes:
    """UTF-8 bytes without control characters: a claim can never inject a header line."""
    raw = value.encode()
    if any(b < 0x20 or b == 0x7F for b in raw):
        raw = bytes(b for b in raw if b >= 0x20 and b != 0x7F)
    return raw
