"""Session and access tokens: what verifies, and every way a bad token is refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_runtime.security import (
    ACCESS_AUDIENCE,
    AccessClaims,
    KeyRing,
    PublicKeySet,
    SessionClaims,
    TokenError,
    issue_access_token,
    issue_session_token,
    session_audience,
    verify_access_token,
    verify_session_token,
)

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
AUDIENCE = session_audience("mcp-team-acme", "payments")
KEYRING = KeyRing.generate()
KEYS = KEYRING.public_keys()


def _claims(**overrides: Any) -> SessionClaims:
    values: dict[str, Any] = {
        "session_id": "cursor-session",
        "namespace": "mcp-team-acme",
        "server": "payments",
        "human_id": "alice@acme.example",
        "agent_id": "cursor",
        "team_id": "team-acme",
        "trust": "medium",
        "expires_at": NOW + timedelta(hours=4),
        "issued_at": NOW,
        "token_id": "jti-1",
    }
    values.update(overrides)
    return SessionClaims(**values)


def _session_token(**overrides: Any) -> str:
    return issue_session_token(KEYRING, _claims(**overrides))


def _access_token(keyring: KeyRing = KEYRING) -> str:
    ttl = timedelta(minutes=15)
    return issue_access_token(keyring, "user-1", "alice@acme.example", "admin", ttl, now=NOW)


def _reason(call: Any) -> str:
    with pytest.raises(TokenError) as caught:
        call()
    assert str(caught.value)  # always a sentence for logs and error bodies
    return caught.value.reason


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return (json.loads(base64.urlsafe_b64decode(header + "==")),
            json.loads(base64.urlsafe_b64decode(payload + "==")), signature)


def _sign_raw(
    payload: dict[str, Any], headers: dict[str, Any] | None = None, keyring: KeyRing = KEYRING
) -> str:
    kid, key = keyring.signing_key()
    return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": kid, **(headers or {})})


# --- round trips -----------------------------------------------------------------------------


def test_session_token_round_trip() -> None:
    claims = _claims()
    token = issue_session_token(KEYRING, claims)
    assert verify_session_token(token, KEYS, audience=AUDIENCE, now=NOW) == claims


def test_session_token_carries_the_wire_claim_names() -> None:
    header, payload, _ = _segments(_session_token())
    assert header["alg"] == "EdDSA" and header["kid"] == KEYRING.current_kid
    assert payload == {
        "typ": "session", "aud": "mcp-server:mcp-team-acme/payments", "sid": "cursor-session",
        "ns": "mcp-team-acme", "server": "payments", "sub": "alice@acme.example", "agent": "cursor",
        "team": "team-acme", "trust": "medium", "exp": int((NOW + timedelta(hours=4)).timestamp()),
        "iat": int(NOW.timestamp()), "jti": "jti-1",
    }


def test_session_without_human_or_team_round_trips_as_none() -> None:
    claims = _claims(human_id=None, team_id=None)
    token = issue_session_token(KEYRING, claims)
    _, payload, _ = _segments(token)
    assert "sub" not in payload and "team" not in payload
    verified = verify_session_token(token, KEYS, audience=AUDIENCE, now=NOW)
    assert verified.human_id is None and verified.team_id is None and verified.agent_id == "cursor"


def test_session_claims_defaults_fill_issued_at_and_a_unique_token_id() -> None:
    first = SessionClaims("s", "ns", "srv", None, "a", None, "low", NOW + timedelta(hours=1))
    second = SessionClaims("s", "ns", "srv", None, "a", None, "low", NOW + timedelta(hours=1))
    assert first.token_id != second.token_id
    assert first.issued_at.tzinfo is not None


def test_access_token_round_trip() -> None:
    claims = verify_access_token(_access_token(), KEYS, now=NOW)
    assert isinstance(claims, AccessClaims)
    assert (claims.user_id, claims.email, claims.role) == ("user-1", "alice@acme.example", "admin")
    assert claims.expires_at == NOW + timedelta(minutes=15)
    assert claims.token_id
    _, payload, _ = _segments(_access_token())
    assert payload["aud"] == ACCESS_AUDIENCE == "mcp-runtime-api" and payload["typ"] == "access"


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(min_size=1, max_size=40),
    trust=st.sampled_from(["low", "medium", "high"]),
    minutes=st.integers(min_value=1, max_value=60 * 24 * 365),
)
def test_any_session_claims_round_trip(text: str, trust: str, minutes: int) -> None:
    claims = _claims(session_id=text, namespace=text, server=text, human_id=text, agent_id=text,
                     team_id=text, trust=trust, expires_at=NOW + timedelta(minutes=minutes), token_id=text)
    token = issue_session_token(KEYRING, claims)
    assert verify_session_token(token, KEYS, audience=claims.audience, now=NOW) == claims


# --- expiry ----------------------------------------------------------------------------------


def test_expired_session_token_is_refused_without_leeway() -> None:
    token = _session_token()
    exp = NOW + timedelta(hours=4)
    verify_session_token(token, KEYS, audience=AUDIENCE, now=exp - timedelta(seconds=1))
    assert _reason(lambda: verify_session_token(token, KEYS, audience=AUDIENCE, now=exp)) == "token_expired"
    late = exp + timedelta(seconds=5)
    assert _reason(lambda: verify_session_token(token, KEYS, audience=AUDIENCE, now=late)) == "token_expired"
    verify_session_token(token, KEYS, audience=AUDIENCE, now=late, leeway=timedelta(seconds=10))


def test_expired_by_the_real_clock() -> None:
    token = _session_token(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert _reason(lambda: verify_session_token(token, KEYS, audience=AUDIENCE)) == "token_expired"


def test_expired_access_token_is_refused() -> None:
    later = NOW + timedelta(minutes=15)
    assert _reason(lambda: verify_access_token(_access_token(), KEYS, now=later)) == "token_expired"


def test_token_not_valid_before_nbf() -> None:
    payload = {**_segments(_session_token())[1], "nbf": int((NOW + timedelta(minutes=5)).timestamp())}
    token = _sign_raw(payload)
    assert _reason(lambda: verify_session_token(token, KEYS, audience=AUDIENCE, now=NOW)) == "invalid_token"


def test_naive_datetimes_are_a_programming_error() -> None:
    with pytest.raises(ValueError):
        issue_session_token(KEYRING, _claims(expires_at=datetime(2030, 1, 1)))
    with pytest.raises(ValueError):
        verify_session_token(_session_token(), KEYS, audience=AUDIENCE, now=datetime(2030, 1, 1))


# --- audience, keys, type ------------------------------------------------------------------------


def test_token_for_another_server_is_wrong_audience() -> None:
    token = _session_token()
    other_server = session_audience("mcp-team-acme", "workspace-demo")
    other_namespace = session_audience("mcp-team-globex", "payments")
    for audience in (other_server, other_namespace):
        assert _reason(lambda a=audience: verify_session_token(token, KEYS, audience=a, now=NOW)) == (
            "wrong_audience"
        )


def test_token_signed_by_another_keyring_is_unknown_key() -> None:
    stranger = KeyRing.generate()
    token = issue_session_token(stranger, _claims())
    assert _reason(lambda: verify_session_token(token, KEYS, audience=AUDIENCE, now=NOW)) == "unknown_key"
    assert _reason(lambda: verify_access_token(_access_token(stranger), KEYS, now=NOW)) == "unknown_key"


def test_token_claiming_a_known_kid_but_signed_by_another_key_is_invalid() -> None:
    stranger = KeyRing.generate()
    _, key = stranger.signing_key()
    token = jwt.encode(_segments(_session_token())[1], key, algorithm="EdDSA",
                       headers={"kid": KEYRING.current_kid})
    assert _reason(lambda: verify_session_token(token, KEYS, audience=AUDIENCE, now=NOW)) == "invalid_token"


def test_access_token_is_never_a_session_token_and_vice_versa() -> None:
    access = _access_token()
    assert _reason(lambda: verify_session_token(access, KEYS, audience=AUDIENCE, now=NOW)) == "invalid_token"
    assert _reason(lambda: verify_session_token(access, KEYS, audience=ACCESS_AUDIENCE, now=NOW)) == (
        "invalid_token"
    )
    session = _session_token()
    assert _reason(lambda: verify_access_token(session, KEYS, now=NOW)) == "invalid_token"
    # Even a session-shaped payload with the API audience is not an access token without typ=access.
    forged = _sign_raw({**_segments(session)[1], "aud": ACCESS_AUDIENCE, "email": "a@b", "role": "admin"})
    assert _reason(lambda: verify_access_token(forged, KEYS, now=NOW)) == "invalid_token"


# --- tampering and forged algorithms -------------------------------------------------------------


def test_tampered_payload_is_invalid() -> None:
    header, payload, signature = _session_token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["trust"] = "high"
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    assert _reason(lambda: verify_session_token(forged, KEYS, audience=AUDIENCE, now=NOW)) == "invalid_token"


def test_tampered_signature_is_invalid() -> None:
    header, payload, signature = _session_token().split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[0] ^= 1
    forged = f"{header}.{payload}.{_b64(bytes(raw))}"
    assert _reason(lambda: verify_session_token(forged, KEYS, audience=AUDIENCE, now=NOW)) == "invalid_token"


def test_alg_none_is_invalid() -> None:
    _, payload, _ = _segments(_session_token())
    header = {"alg": "none", "typ": "JWT", "kid": KEYRING.current_kid}
    for signature in ("", "AAAA"):
        forged = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}.{signature}"
        assert _reason(lambda f=forged: verify_session_token(f, KEYS, audience=AUDIENCE, now=NOW)) == (
            "invalid_token"
        )


def test_hmac_with_the_public_key_as_secret_is_invalid() -> None:
    """The classic algorithm-confusion forgery: HS256 keyed with the published public key."""
    _, payload, _ = _segments(_session_token())
    public_raw = KEYS[KEYRING.current_kid].public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    forged = jwt.encode(payload, public_raw, algorithm="HS256", headers={"kid": KEYRING.current_kid})
    assert _reason(lambda: verify_session_token(forged, KEYS, audience=AUDIENCE, now=NOW)) == "invalid_token"


def test_critical_header_extensions_are_refused() -> None:
    token = _sign_raw(_segments(_session_token())[1], headers={"crit": ["exp"]})
    assert _reason(lambda: verify_session_token(token, KEYS, audience=AUDIENCE, now=NOW)) == "invalid_token"


VALID_TOKEN = _session_token()
TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.= +/"


@settings(max_examples=300)
@given(position=st.integers(min_value=0, max_value=len(VALID_TOKEN) - 1),
       replacement=st.sampled_from(TOKEN_ALPHABET))
def test_changing_any_character_of_a_token_fails_verification(position: int, replacement: str) -> None:
    if VALID_TOKEN[position] == replacement:
        replacement = "A" if replacement != "A" else "B"
    tampered = VALID_TOKEN[:position] + replacement + VALID_TOKEN[position + 1:]
    with pytest.raises(TokenError):
        verify_session_token(tampered, KEYS, audience=AUDIENCE, now=NOW)


@settings(max_examples=100)
@given(cut=st.integers(min_value=0, max_value=len(VALID_TOKEN) - 1), extra=st.text(max_size=3))
def test_truncated_or_extended_tokens_fail_verification(cut: int, extra: str) -> None:
    with pytest.raises(TokenError):
        verify_session_token(VALID_TOKEN[:cut] + extra, KEYS, audience=AUDIENCE, now=NOW)
    if extra:
        with pytest.raises(TokenError):
            verify_session_token(VALID_TOKEN + extra, KEYS, audience=AUDIENCE, now=NOW)


@settings(max_examples=100)
@given(garbage=st.text(max_size=200))
def test_garbage_is_invalid_token_never_a_crash(garbage: str) -> None:
    with pytest.raises(TokenError) as caught:
        verify_session_token(garbage, KEYS, audience=AUDIENCE, now=NOW)
    assert caught.value.reason == "invalid_token"


def test_oversized_token_is_invalid() -> None:
    token = _session_token(agent_id="x" * 10_000)
    assert _reason(lambda: verify_session_token(token, KEYS, audience=AUDIENCE, now=NOW)) == "invalid_token"


# --- claims that must be there ------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["sid", "ns", "server", "trust", "exp", "iat", "jti", "aud", "typ"])
def test_session_token_missing_a_required_claim_is_invalid(claim: str) -> None:
    payload = _segments(_session_token())[1]
    del payload[claim]
    token = _sign_raw(payload)
    assert _reason(lambda: verify_session_token(token, KEYS, audience=AUDIENCE, now=NOW)) == "invalid_token"


@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", "tomorrow"), ("exp", True), ("exp", 1e300), ("exp", float("inf")), ("iat", -5),
     ("trust", "root"), ("sid", 7), ("agent", ""), ("aud", [AUDIENCE])],
)
def test_session_token_with_a_malformed_claim_is_invalid(claim: str, value: Any) -> None:
    token = _sign_raw({**_segments(_session_token())[1], claim: value})
    assert _reason(lambda: verify_session_token(token, KEYS, audience=AUDIENCE, now=NOW)) == "invalid_token"


@pytest.mark.parametrize("claim", ["sub", "email", "role", "exp", "iat", "jti"])
def test_access_token_missing_a_required_claim_is_invalid(claim: str) -> None:
    payload = _segments(_access_token())[1]
    del payload[claim]
    token = _sign_raw(payload)
    assert _reason(lambda: verify_access_token(token, KEYS, now=NOW)) == "invalid_token"


def test_access_token_with_an_unknown_role_is_invalid() -> None:
    token = _sign_raw({**_segments(_access_token())[1], "role": "superuser"})
    assert _reason(lambda: verify_access_token(token, KEYS, now=NOW)) == "invalid_token"


def test_issuing_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        issue_session_token(KEYRING, _claims(trust="root"))
    with pytest.raises(ValueError):
        issue_session_token(KEYRING, _claims(session_id=""))
    with pytest.raises(ValueError):
        issue_access_token(KEYRING, "u", "e@x", "owner", timedelta(minutes=5))
    with pytest.raises(ValueError):
        issue_access_token(KEYRING, "u", "e@x", "user", timedelta(0))


def test_verifier_with_an_empty_looking_set_never_accepts() -> None:
    other = PublicKeySet.from_jwks(KeyRing.generate().jwks())
    assert _reason(lambda: verify_session_token(VALID_TOKEN, other, audience=AUDIENCE, now=NOW)) == (
        "unknown_key"
    )
