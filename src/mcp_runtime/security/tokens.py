"""Signed tokens: session tokens (agent -> gateway) and access tokens (user -> platform API).

Both are EdDSA (Ed25519) JWTs with a `kid` header. Verification is strict and fails closed:
only EdDSA, only known keys, only the canonical encoding, the right `typ` (so an access token
never passes as a session token or the reverse), the right audience, and no expiry leeway unless
the caller asks for it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeGuard

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mcp_runtime.security.keys import KeyRing, PublicKeySet

__all__ = [
    "ACCESS_AUDIENCE",
    "MAX_TOKEN_LENGTH",
    "AccessClaims",
    "SessionClaims",
    "TokenError",
    "TokenErrorReason",
    "issue_access_token",
    "issue_session_token",
    "session_audience",
    "verify_access_token",
    "verify_session_token",
]

ACCESS_AUDIENCE = "mcp-runtime-api"
# Tokens come from request headers; anything longer than this is not one of ours.
MAX_TOKEN_LENGTH = 8192

TokenErrorReason = Literal["invalid_token", "token_expired", "wrong_audience", "unknown_key"]
_TRUST_LEVELS = frozenset({"low", "medium", "high"})
_ROLES = frozenset({"admin", "user"})
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")

_MESSAGES: dict[str, str] = {
    "invalid_token": "The token is not a valid token from this platform.",
    "token_expired": "The token has expired; get a new one.",
    "wrong_audience": "The token was issued for a different audience.",
    "unknown_key": "The token was signed with a key this service does not know.",
}


class TokenError(Exception):
    """A token failed verification; `reason` is a stable code, the message says why."""

    def __init__(self, reason: TokenErrorReason, message: str | None = None) -> None:
        self.reason: TokenErrorReason = reason
        super().__init__(message or _MESSAGES[reason])


@dataclass(frozen=True)
class SessionClaims:
    """What a session token says: who is calling which server, at which trust, until when."""

    session_id: str  # sid: the MCPAgentSession's metadata.name
    namespace: str  # ns
    server: str
    human_id: str | None  # sub
    agent_id: str | None  # agent
    team_id: str | None  # team
    trust: str  # low | medium | high
    expires_at: datetime  # exp (UTC)
    issued_at: datetime = field(default_factory=lambda: datetime.now(UTC))  # iat
    token_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # jti
    client_id: str | None = None  # client_id: the OAuth client the token was issued to (MCP authorization)

    @property
    def audience(self) -> str:
        return session_audience(self.namespace, self.server)


@dataclass(frozen=True)
class AccessClaims:
    """What a platform API access token says about the user."""

    user_id: str  # sub
    email: str
    role: str  # admin | user
    expires_at: datetime  # exp (UTC)
    token_id: str  # jti
    issued_at: datetime | None = None  # iat


def session_audience(namespace: str, server: str) -> str:
    """The audience a session token is bound to: one server in one namespace."""
    return f"mcp-server:{namespace}/{server}"


# ---------------------------------------------------------------------------------------------
# Issuing


def _timestamp(value: datetime, name: str) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return int(value.timestamp())


def _sign(keyring: KeyRing, payload: dict[str, Any]) -> str:
    kid, private_key = keyring.signing_key()
    return jwt.encode(payload, private_key, algorithm="EdDSA", headers={"kid": kid})


def _require_text(value: str | None, name: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")


def issue_session_token(keyring: KeyRing, claims: SessionClaims) -> str:
    """Sign a session token for `claims` with the key ring's current key."""
    for name in ("session_id", "namespace", "server", "token_id"):
        _require_text(getattr(claims, name), name)
    for name in ("human_id", "agent_id", "team_id", "client_id"):
        _require_text(getattr(claims, name), name, optional=True)
    if claims.trust not in _TRUST_LEVELS:
        raise ValueError(f"trust must be one of {sorted(_TRUST_LEVELS)}, not {claims.trust!r}")
    payload: dict[str, Any] = {
        "typ": "session",
        "aud": claims.audience,
        "sid": claims.session_id,
        "ns": claims.namespace,
        "server": claims.server,
        "trust": str(claims.trust),
        "exp": _timestamp(claims.expires_at, "expires_at"),
        "iat": _timestamp(claims.issued_at, "issued_at"),
        "jti": claims.token_id,
    }
    for claim, value in (("sub", claims.human_id), ("agent", claims.agent_id), ("team", claims.team_id),
                         ("client_id", claims.client_id)):
        if value is not None:
            payload[claim] = value
    return _sign(keyring, payload)


def issue_access_token(
    keyring: KeyRing,
    user_id: str,
    email: str,
    role: str,
    ttl: timedelta,
    *,
    now: datetime | None = None,
    token_id: str | None = None,
) -> str:
    """Sign a short-lived platform API access token for a user."""
    _require_text(user_id, "user_id")
    _require_text(email, "email")
    if role not in _ROLES:
        raise ValueError(f"role must be one of {sorted(_ROLES)}, not {role!r}")
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")
    issued = now or datetime.now(UTC)
    payload = {
        "typ": "access",
        "aud": ACCESS_AUDIENCE,
        "sub": user_id,
        "email": email,
        "role": str(role),
        "iat": _timestamp(issued, "now"),
        "exp": _timestamp(issued + ttl, "now"),
        "jti": token_id or str(uuid.uuid4()),
    }
    return _sign(keyring, payload)


# ---------------------------------------------------------------------------------------------
# Verifying


def _decode_segment(segment: str) -> bytes:
    """Strict base64url: the alphabet only, no padding, and only the canonical encoding, so one
    token has exactly one spelling (no malleable trailing bits)."""
    if not _SEGMENT.fullmatch(segment):
        raise TokenError("invalid_token", "The token is not a well-formed JWT.")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenError("invalid_token", "The token is not a well-formed JWT.") from exc
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != segment:
        raise TokenError("invalid_token", "The token is not a well-formed JWT.")
    return raw


def _verified_payload(
    token: str, keys: PublicKeySet, *, typ: str, audience: str, now: datetime | None, leeway: timedelta
) -> dict[str, Any]:
    """Check everything common to both token kinds and return the payload."""
    public_key = _signing_key(token, keys)
    try:
        payload = jwt.decode(
            token,
            public_key,
            algorithms=["EdDSA"],
            options={
                "verify_signature": True,
                "verify_exp": False,  # checked below against the caller's clock
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.InvalidSignatureError as exc:
        raise TokenError("invalid_token", "The token signature does not verify.") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("invalid_token") from exc
    if not isinstance(payload, dict):
        raise TokenError("invalid_token")
    _check_claims(payload, typ=typ, audience=audience, now=now, leeway=leeway)
    return payload


def _signing_key(token: str, keys: PublicKeySet) -> Ed25519PublicKey:
    """The public key a well-formed EdDSA JWT names by its `kid` (before any signature work is spent on it)."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("invalid_token", "The token is missing or too long.")
    segments = token.split(".")
    if len(segments) != 3:
        raise TokenError("invalid_token", "The token is not a well-formed JWT.")
    header_raw = _decode_segment(segments[0])
    _decode_segment(segments[1])
    _decode_segment(segments[2])
    try:
        header = json.loads(header_raw)
    except ValueError as exc:
        raise TokenError("invalid_token", "The token header is not JSON.") from exc
    if not isinstance(header, dict):
        raise TokenError("invalid_token", "The token header is not a JSON object.")
    if header.get("alg") != "EdDSA":
        raise TokenError("invalid_token", "The token is not signed with EdDSA.")
    if "crit" in header or header.get("b64", True) is not True:
        raise TokenError("invalid_token", "The token uses JWS extensions this service does not accept.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenError("invalid_token", "The token header has no key id.")
    public_key = keys.get(kid)
    if public_key is None:
        raise TokenError("unknown_key")
    return public_key


def _check_claims(payload: dict[str, Any], *, typ: str, audience: str, now: datetime | None,
                  leeway: timedelta) -> None:
    """The claims both token kinds need: type, exp/iat, audience, and the time window (the caller's clock)."""
    if payload.get("typ") != typ:
        raise TokenError("invalid_token", f"The token is not a {typ} token.")
    exp, iat = payload.get("exp"), payload.get("iat")
    if not _is_number(exp) or not _is_number(iat):
        raise TokenError("invalid_token", "The token has no valid exp or iat claim.")
    aud = payload.get("aud")
    if not isinstance(aud, str):
        raise TokenError("invalid_token", "The token has no audience.")
    if aud != audience:
        raise TokenError("wrong_audience", f"The token is for {aud!r}, not {audience!r}.")
    current = _now(now)
    if current.timestamp() >= exp + leeway.total_seconds():
        raise TokenError("token_expired")
    nbf = payload.get("nbf")
    if nbf is not None:
        if not _is_number(nbf):
            raise TokenError("invalid_token", "The token has an invalid nbf claim.")
        if current.timestamp() + leeway.total_seconds() < nbf:
            raise TokenError("invalid_token", "The token is not valid yet.")


# Unix times we accept in exp/iat/nbf: year 1970 to 9999 (also rules out NaN and infinity).
_MAX_TIMESTAMP = 253402300799


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= _MAX_TIMESTAMP


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now


def _text_claim(payload: dict[str, Any], claim: str, *, optional: bool = False) -> str | None:
    value = payload.get(claim)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise TokenError("invalid_token", f"The token has no valid {claim!r} claim.")
    return value


def _required_text(payload: dict[str, Any], claim: str) -> str:
    value = _text_claim(payload, claim)
    if value is None:  # unreachable: _text_claim raises for a missing required claim
        raise TokenError("invalid_token", f"The token has no {claim!r} claim.")
    return value


def _datetime(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def verify_session_token(
    token: str,
    keys: PublicKeySet,
    *,
    audience: str,
    now: datetime | None = None,
    leeway: timedelta = timedelta(0),
) -> SessionClaims:
    """Verify a session token for the server named by `audience`; raise TokenError if it is not
    valid there and then."""
    payload = _verified_payload(token, keys, typ="session", audience=audience, now=now, leeway=leeway)
    trust = _required_text(payload, "trust")
    if trust not in _TRUST_LEVELS:
        raise TokenError("invalid_token", "The token has an unknown trust level.")
    return SessionClaims(
        session_id=_required_text(payload, "sid"),
        namespace=_required_text(payload, "ns"),
        server=_required_text(payload, "server"),
        human_id=_text_claim(payload, "sub", optional=True),
        agent_id=_text_claim(payload, "agent", optional=True),
        team_id=_text_claim(payload, "team", optional=True),
        trust=trust,
        expires_at=_datetime(payload["exp"]),
        issued_at=_datetime(payload["iat"]),
        token_id=_required_text(payload, "jti"),
        client_id=_text_claim(payload, "client_id", optional=True),
    )


def verify_access_token(
    token: str,
    keys: PublicKeySet,
    now: datetime | None = None,
    *,
    leeway: timedelta = timedelta(0),
) -> AccessClaims:
    """Verify a platform API access token; raise TokenError if it is not valid now."""
    payload = _verified_payload(token, keys, typ="access", audience=ACCESS_AUDIENCE, now=now, leeway=leeway)
    role = _required_text(payload, "role")
    if role not in _ROLES:
        raise TokenError("invalid_token", "The token has an unknown role.")
    return AccessClaims(
        user_id=_required_text(payload, "sub"),
        email=_required_text(payload, "email"),
        role=role,
        expires_at=_datetime(payload["exp"]),
        token_id=_required_text(payload, "jti"),
        issued_at=_datetime(payload["iat"]),
    )
