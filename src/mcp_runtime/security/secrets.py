"""High-entropy secrets (API keys, refresh tokens) and how they are stored: as SHA-256 hashes.

These secrets carry 256 bits of randomness, so a fast hash is enough (no password stretching);
comparison is constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _random

__all__ = ["API_KEY_PREFIX", "hash_secret", "new_api_key", "new_refresh_token", "secret_matches"]

API_KEY_PREFIX = "mcpr_"
_SECRET_BYTES = 32


def new_api_key() -> str:
    """A new API key: "mcpr_" (so leaked keys are recognisable) + 32 random bytes, urlsafe."""
    return API_KEY_PREFIX + _random.token_urlsafe(_SECRET_BYTES)


def new_refresh_token() -> str:
    """A new opaque refresh token (32 random bytes, urlsafe)."""
    return _random.token_urlsafe(_SECRET_BYTES)


def hash_secret(secret: str) -> str:
    """SHA-256 hex digest of a secret: what the database stores and looks up by."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_matches(plain: str, hashed: str) -> bool:
    """Constant-time check that `plain` hashes to `hashed`."""
    return hmac.compare_digest(hash_secret(plain).encode("ascii"), hashed.encode("utf-8"))
