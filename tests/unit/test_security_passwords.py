"""Password hashes: argon2id, verification that never raises, rehash detection."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from argon2.low_level import Type

from mcp_runtime.security import burn_password_check, hash_password, needs_rehash, verify_password


def test_hash_is_argon2id_salted_and_verifies() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("$argon2id$")
    assert first != second  # salted
    assert "correct horse" not in first
    assert verify_password(first, "correct horse")
    assert verify_password(second, "correct horse")


def test_wrong_password_is_false() -> None:
    stored = hash_password("correct horse")
    assert not verify_password(stored, "correct horse ")
    assert not verify_password(stored, "")


@pytest.mark.parametrize("bad_hash", ["", "plaintext", "$argon2id$v=19$m=1$garbage", "$2b$12$abcdefghijk"])
def test_unusable_hash_is_false_never_an_exception(bad_hash: str) -> None:
    assert verify_password(bad_hash, "anything") is False
    assert needs_rehash(bad_hash) is True


def test_unicode_passwords() -> None:
    stored = hash_password("pässwörd ✓")
    assert verify_password(stored, "pässwörd ✓")
    assert not verify_password(stored, "passwörd ✓")


def test_needs_rehash_only_for_other_parameters() -> None:
    assert not needs_rehash(hash_password("pw"))
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.ID).hash("pw")
    assert verify_password(weak, "pw")
    assert needs_rehash(weak)
    argon2i = PasswordHasher(type=Type.I).hash("pw")
    assert needs_rehash(argon2i)


def test_burning_a_check_for_an_unknown_user_returns_quietly() -> None:
    burn_password_check("whatever")
