"""Logins, access-token expiry, refresh rotation (reuse revokes the family), logout, API keys, JWKS."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from platform_support import World

from mcp_runtime.security import PublicKeySet, issue_access_token

_n = itertools.count()


@pytest.fixture
def user(world: World) -> tuple[str, str]:
    email, password = f"token-user-{next(_n)}@acme.com", "pw-123456"
    world.ok("admin", "POST", "/teams/acme/users", {"email": email, "password": password})
    return email, password


def test_expired_access_token_is_rejected_with_token_expired(world: World, user: tuple[str, str]) -> None:
    record = world.live.platform.store.get_user_by_email(user[0])
    assert record is not None
    past = datetime.now(UTC) - timedelta(hours=1)
    expired = issue_access_token(world.live.platform.keyring, record.id, record.email, "user",
                                 timedelta(minutes=5), now=past)
    answer = world.live.call("GET", "/auth/me", token=expired)
    assert answer.status_code == 401 and answer.json()["error"] == "token_expired"
    assert answer.headers["www-authenticate"] == "Bearer"
    forged = world.live.call("GET", "/auth/me", token=expired[:-4] + "AAAA")
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_token"


def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_family(world: World, user: tuple[str, str]) -> None:
    first = world.live.login(*user)
    second = world.live.call("POST", "/auth/refresh", json={"refreshToken": first["refreshToken"]}).json()
    assert second["refreshToken"] != first["refreshToken"]
    assert world.live.call("GET", "/auth/me", token=second["accessToken"]).json()["email"] == user[0]
    third = world.live.call("POST", "/auth/refresh", json={"refreshToken": second["refreshToken"]}).json()
    # an attacker replays the first refresh token: rejected, and the whole family dies
    replay = world.live.call("POST", "/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert replay.status_code == 401 and replay.json()["error"] == "refresh_token_reused"
    after = world.live.call("POST", "/auth/refresh", json={"refreshToken": third["refreshToken"]})
    assert after.status_code == 401
    # another login (another family) is unaffected
    other = world.live.login(*user)
    assert world.live.call("POST", "/auth/refresh", json={"refreshToken": other["refreshToken"]}).status_code == 200


def test_logout_revokes_the_refresh_token(world: World, user: tuple[str, str]) -> None:
    pair = world.live.login(*user)
    assert world.live.call("POST", "/auth/logout", json={"refreshToken": pair["refreshToken"]}).status_code == 204
    answer = world.live.call("POST", "/auth/refresh", json={"refreshToken": pair["refreshToken"]})
    assert answer.status_code == 401


def test_wrong_password_then_rate_limit(world: World, user: tuple[str, str]) -> None:
    email = user[0]
    statuses = [world.live.call("POST", "/auth/login", json={"email": email, "password": "nope"}).status_code
                for _ in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    limited = world.live.call("POST", "/auth/login", json={"email": email, "password": user[1]})
    assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
    assert int(limited.headers["retry-after"]) > 0


def test_api_key_is_shown_once_stored_hashed_and_usable(world: World, user: tuple[str, str]) -> None:
    token = world.live.login(*user)["accessToken"]
    created = world.live.call("POST", "/user/api-keys", token=token, json={"name": "ci"}).json()
    key = created["key"]
    assert key.startswith("mcpr_")
    listed = world.live.call("GET", "/user/api-keys", token=token).json()["items"]
    assert [k["id"] for k in listed] == [created["id"]] and "key" not in listed[0]
    assert key not in str(world.live.platform.store.list_api_keys(listed[0]["id"]))
    stored = world.live.platform.store.find_api_key
    from mcp_runtime.security import hash_secret

    assert stored(hash_secret(key)) is not None
    me = world.live.call("GET", "/auth/me", token=key).json()
    assert me["email"] == user[0] and me["authenticatedWith"] == "apiKey"
    assert world.live.call("DELETE", f"/user/api-keys/{created['id']}", token=token).status_code == 204
    assert world.live.call("GET", "/auth/me", token=key).status_code == 401


def test_jwks_verifies_what_the_platform_signs(world: World) -> None:
    jwks = world.live.call("GET", "/auth/jwks").json()
    keys = PublicKeySet.from_jwks(jwks)
    assert world.live.platform.keyring.current_kid in keys


def test_me_lists_teams_with_roles(world: World) -> None:
    me = world.ok("owner", "GET", "/auth/me")
    assert me["email"] == "alice@acme.com" and me["role"] == "user"
    assert [(t["slug"], t["role"]) for t in me["teams"]] == [("acme", "owner")]
