"""API keys and refresh tokens: recognisable, random, stored only as hashes."""

from __future__ import annotations

import hashlib
import string

from hypothesis import given
from hypothesis import strategies as st

from mcp_runtime.security import hash_secret, new_api_key, new_refresh_token, secret_matches

URLSAFE = set(string.ascii_letters + string.digits + "-_")


def test_api_key_shape_and_entropy() -> None:
    keys = {new_api_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith("mcpr_")
        body = key.removeprefix("mcpr_")
        assert set(body) <= URLSAFE
        assert len(body) == 43  # 32 bytes, base64url without padding


def test_refresh_tokens_are_unique_and_urlsafe() -> None:
    tokens = {new_refresh_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(set(token) <= URLSAFE and len(token) == 43 for token in tokens)


def test_hash_is_sha256_hex_and_not_the_secret() -> None:
    key = new_api_key()
    stored = hash_secret(key)
    assert stored == hashlib.sha256(key.encode()).hexdigest()
    assert len(stored) == 64 and key not in stored


def test_secret_matches_only_its_own_hash() -> None:
    key, other = new_api_key(), new_api_key()
    stored = hash_secret(key)
    assert secret_matches(key, stored)
    assert not secret_matches(other, stored)
    assert not secret_matches(key, stored.upper())
    assert not secret_matches(key, "")
    assert not secret_matches(key, "ä" * 64)  # non-ASCII stored value: False, not TypeError


@given(secret=st.text(max_size=100), other=st.text(max_size=100))
def test_secret_matches_agrees_with_equality(secret: str, other: str) -> None:
    assert secret_matches(secret, hash_secret(secret))
    assert secret_matches(other, hash_secret(secret)) == (other == secret)
