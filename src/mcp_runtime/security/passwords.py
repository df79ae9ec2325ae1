"""Password hashing with argon2id (argon2-cffi's RFC 9106 low-memory profile)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error, InvalidHashError

__all__ = ["burn_password_check", "hash_password", "needs_rehash", "verify_password"]

_HASHER = PasswordHasher()  # argon2id by default
# A real hash to verify against when the user does not exist, so a login for an unknown email
# costs the same as one for a known email (no user enumeration by timing).
_DUMMY_HASH = _HASHER.hash("mcp-runtime dummy password for timing")


def hash_password(password: str) -> str:
    """An argon2id hash (PHC string, salt included) to store instead of the password."""
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True if `password` matches; False for a wrong password or an unusable hash, never raises."""
    try:
        return _HASHER.verify(password_hash, password)
    except (Argon2Error, InvalidHashError, ValueError, TypeError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True if the hash was made with other parameters (or is unusable) and should be replaced
    at the next successful login."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except (Argon2Error, InvalidHashError, ValueError, TypeError):
        return True


def burn_password_check(password: str) -> None:
    """Spend the time of a password check for a user that does not exist."""
    verify_password(_DUMMY_HASH, password)
