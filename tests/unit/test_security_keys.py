"""Key ring: rotation, serialization, key files that stay private, JWKS for verifiers."""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt import get_unverified_header

from mcp_runtime.security import (
    KeyFileError,
    KeyRing,
    KeyRingError,
    PublicKeySet,
    SessionClaims,
    TokenError,
    issue_session_token,
    jwk_thumbprint,
    session_audience,
    verify_session_token,
)

AUDIENCE = session_audience("mcp-team-acme", "payments")


def _token(keyring: KeyRing) -> str:
    claims = SessionClaims(
        session_id="cursor-session",
        namespace="mcp-team-acme",
        server="payments",
        human_id="alice",
        agent_id="cursor",
        team_id="acme",
        trust="low",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    return issue_session_token(keyring, claims)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_kid_is_the_rfc7638_thumbprint() -> None:
    keyring = KeyRing.generate()
    jwk = keyring.jwks()["keys"][0]
    assert jwk["kid"] == keyring.current_kid
    assert jwk_thumbprint(keyring.public_keys()[keyring.current_kid]) == keyring.current_kid
    assert {k: jwk[k] for k in ("kty", "crv", "alg", "use")} == {
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig"
    }


def test_rfc8037_thumbprint_example() -> None:
    """RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key."""
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    raw = base64.urlsafe_b64decode(x + "=")
    expected = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert jwk_thumbprint(Ed25519PublicKey.from_public_bytes(raw)) == expected


def test_rotation_keeps_old_keys_for_verification_and_signs_with_the_new_one() -> None:
    keyring = KeyRing.generate()
    old_kid = keyring.current_kid
    old_token = _token(keyring)

    new_kid = keyring.rotate()

    assert new_kid != old_kid and keyring.current_kid == new_kid
    assert keyring.kids == [old_kid, new_kid]
    verify_session_token(old_token, keyring.public_keys(), audience=AUDIENCE)
    new_token = _token(keyring)
    assert get_unverified_header(new_token)["kid"] == new_kid
    verify_session_token(new_token, keyring.public_keys(), audience=AUDIENCE)
    assert {key["kid"] for key in keyring.jwks()["keys"]} == {old_kid, new_kid}


def test_removed_key_no_longer_verifies_and_current_key_cannot_be_removed() -> None:
    keyring = KeyRing.generate()
    old_kid = keyring.current_kid
    old_token = _token(keyring)
    keyring.rotate()
    with pytest.raises(KeyRingError):
        keyring.remove(keyring.current_kid)
    keyring.remove(old_kid)
    with pytest.raises(TokenError) as caught:
        verify_session_token(old_token, keyring.public_keys(), audience=AUDIENCE)
    assert caught.value.reason == "unknown_key"


def test_json_round_trip_keeps_every_key_and_the_current_one() -> None:
    keyring = KeyRing.generate()
    token = _token(keyring)
    keyring.rotate()

    restored = KeyRing.from_json(keyring.to_json())

    assert restored.kids == keyring.kids
    assert restored.current_kid == keyring.current_kid
    assert restored.jwks() == keyring.jwks()
    verify_session_token(token, restored.public_keys(), audience=AUDIENCE)
    verify_session_token(_token(restored), keyring.public_keys(), audience=AUDIENCE)


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", '{"format": 1}', '{"format": 1, "keys": []}', '{"format": 2, "keys": [{}]}',
     '{"format": 1, "keys": [{"kid": "a", "d": "short"}]}', '{"format": 1, "keys": [{"d": 5}]}'],
)
def test_from_json_rejects_malformed_documents(text: str) -> None:
    with pytest.raises(KeyRingError):
        KeyRing.from_json(text)


def test_repr_does_not_leak_private_keys() -> None:
    keyring = KeyRing.generate()
    private = json.loads(keyring.to_json())["keys"][0]["d"]
    assert private not in repr(keyring)


def test_saved_key_file_is_0600_and_loads_back(tmp_path: Path) -> None:
    keyring = KeyRing.generate()
    path = tmp_path / "signing-keys.json"
    old_umask = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        keyring.save(path)
    finally:
        os.umask(old_umask)
    assert _mode(path) == 0o600
    assert KeyRing.load(path).kids == keyring.kids
    assert [p.name for p in tmp_path.iterdir()] == ["signing-keys.json"]  # no temp file left


def test_save_never_exposes_the_key_with_a_wider_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is 0600 before it takes the final name, and replacing a 0644 file makes it 0600."""
    path = tmp_path / "keys.json"
    path.write_text("old")
    path.chmod(0o644)
    seen: list[int] = []
    real_replace = os.replace

    def spying_replace(src: str, dst: str) -> None:
        seen.append(stat.S_IMODE(os.stat(src).st_mode))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spying_replace)
    KeyRing.generate().save(path)
    assert seen == [0o600]
    assert _mode(path) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_load_refuses_a_key_file_others_can_read(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys.json"
    KeyRing.generate().save(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError) as caught:
        KeyRing.load(path)
    assert "chmod 600" in str(caught.value)
    assert str(path) in str(caught.value)


def test_save_creates_a_private_directory(tmp_path: Path) -> None:
    path = tmp_path / "state" / "keys.json"
    KeyRing.generate().save(path)
    assert _mode(path) == 0o600
    assert _mode(path.parent) & 0o077 == 0


def test_load_accepts_owner_read_only(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keyring = KeyRing.generate()
    keyring.save(path)
    path.chmod(0o400)
    assert KeyRing.load(path).current_kid == keyring.current_kid


def test_load_refuses_something_that_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "keys.fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(KeyFileError, match="not a regular file"):
        KeyRing.load(fifo)


def test_load_of_a_missing_file_says_which_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"missing\.json"):
        KeyRing.load(tmp_path / "missing.json")


def test_jwks_round_trip_verifies_tokens() -> None:
    keyring = KeyRing.generate()
    token = _token(keyring)
    keys = PublicKeySet.from_jwks(json.loads(json.dumps(keyring.jwks())))
    assert set(keys) == {keyring.current_kid}
    assert verify_session_token(token, keys, audience=AUDIENCE).session_id == "cursor-session"


def test_jwks_file_round_trip(tmp_path: Path) -> None:
    keyring = KeyRing.generate()
    keyring.rotate()
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(keyring.jwks()))
    keys = PublicKeySet.load_jwks_file(path)
    assert sorted(keys) == sorted(keyring.kids)
    assert keys.jwks()["keys"][0]["kty"] == "OKP"
    verify_session_token(_token(keyring), keys, audience=AUDIENCE)


def test_jwks_ignores_other_key_types_but_rejects_broken_ed25519_keys() -> None:
    keyring = KeyRing.generate()
    rsa = {"kty": "RSA", "kid": "rsa1", "n": "AQAB", "e": "AQAB"}
    keys = PublicKeySet.from_jwks({"keys": [rsa, *keyring.jwks()["keys"]]})
    assert list(keys) == [keyring.current_kid]
    broken = dict(keyring.jwks()["keys"][0], x="AAAA")
    with pytest.raises(KeyRingError):
        PublicKeySet.from_jwks({"keys": [broken]})
    with pytest.raises(KeyRingError):
        PublicKeySet.from_jwks({"keys": [rsa]})
    with pytest.raises(KeyRingError):
        PublicKeySet.from_jwks({"nokeys": []})


def test_jwks_never_contains_private_material() -> None:
    keyring = KeyRing.generate()
    private = json.loads(keyring.to_json())["keys"][0]["d"]
    assert private not in json.dumps(keyring.jwks())
    assert "d" not in keyring.jwks()["keys"][0]
