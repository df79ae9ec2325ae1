"""Users, logins, tokens and API keys: the identity half of the platform."""

from __future__ import annotations

import logging
import os
import re
import secrets as pysecrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mcp_runtime.platform.errors import ApiError, not_found
from mcp_runtime.platform.principal import Principal
from mcp_runtime.platform.ratelimit import LoginRateLimiter
from mcp_runtime.platform.settings import ADMIN_PASSWORD_FILE, TEAM_NAMESPACE_PREFIX, PlatformSettings
from mcp_runtime.resources.common import utcnow
from mcp_runtime.security.keys import KeyRing
from mcp_runtime.security.passwords import burn_password_check, hash_password, needs_rehash, verify_password
from mcp_runtime.security.secrets import API_KEY_PREFIX, hash_secret, new_api_key, new_refresh_token
from mcp_runtime.security.tokens import TokenError, issue_access_token, verify_access_token
from mcp_runtime.store import (
    AlreadyExists,
    ApiKey,
    AuditRecord,
    ControlPlaneStore,
    Membership,
    PlatformRole,
    RotateOutcome,
    Team,
    TeamRole,
    User,
)

log = logging.getLogger("mcp_runtime.platform")

KEYRING_SETTING = "signing_keyring"
SLUG_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")



@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    user: User

    def to_json(self) -> dict[str, object]:
        return {"accessToken": self.access_token, "refreshToken": self.refresh_token, "tokenType": "Bearer",
                "expiresIn": self.expires_in, "user": user_json(self.user)}


def user_json(user: User) -> dict[str, object]:
    return {"id": user.id, "email": user.email, "role": str(user.role)}


def team_json(team: Team) -> dict[str, object]:
    return {"id": team.id, "slug": team.slug, "name": team.name, "namespace": team.namespace,
            "createdAt": team.created_at.isoformat()}


def load_keyring(store: ControlPlaneStore) -> KeyRing:
    """The signing key ring: created on first start, then always the one stored in the DB."""
    stored = store.get_setting(KEYRING_SETTING)
    if stored is None:
        stored = store.put_setting_if_absent(KEYRING_SETTING, KeyRing.generate().to_json())
    return KeyRing.from_json(stored)


class IdentityService:
    def __init__(self, store: ControlPlaneStore, keyring: KeyRing, settings: PlatformSettings) -> None:
        self.store, self.keyring, self.settings = store, keyring, settings
        self.team_listeners: list[Callable[[Team], None]] = []
        """Called after a team is created (the kubernetes runtime applies its namespace)."""
        self.public_keys = keyring.public_keys()
        self.limiter = LoginRateLimiter(settings.login_max_failures, settings.login_window.total_seconds())

    # bootstrap ----------------------------------------------------------------------------------
    def bootstrap_admin(self) -> None:
        """Create the first admin when the user table is empty (password from settings or generated)."""
        if self.store.count_users() > 0:
            return
        password = self.settings.admin_password
        if not password:
            password = pysecrets.token_urlsafe(18)
            path = Path(self.settings.data_dir) / ADMIN_PASSWORD_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
            log.warning("created admin %s; its password is in %s", self.settings.admin_email, path)
        try:
            self.store.create_user(self.settings.admin_email, hash_password(password), PlatformRole.admin,
                                   audit=AuditRecord(actor="system", action="create", kind="User",
                                                     name=self.settings.admin_email.lower()))
        except AlreadyExists:
            pass

    # logins -------------------------------------------------------------------------------------
    def login(self, email: str, password: str, client_ip: str) -> TokenPair:
        wait = self.limiter.retry_after(email, client_ip)
        if wait:
            raise ApiError(429, "rate_limited", f"too many failed logins; try again in {wait} seconds",
                           headers={"Retry-After": str(wait)})
        user = self.store.get_user_by_email(email)
        if user is None or not verify_password(user.password_hash, password):
            if user is None:
                burn_password_check(password)
            self.limiter.failed(email, client_ip)
            raise ApiError(401, "invalid_credentials", "email or password is wrong")
        self.limiter.succeeded(email, client_ip)
        if needs_rehash(user.password_hash):
            self.store.set_password_hash(user.id, hash_password(password))
        return self._issue_pair(user, family_id=str(uuid.uuid4()))

    def refresh(self, refresh_token: str) -> TokenPair:
        new_token = new_refresh_token()
        now = utcnow()
        result = self.store.rotate_refresh_token(hash_secret(refresh_token), hash_secret(new_token),
                                                 now + self.settings.refresh_token_ttl, now)
        if result.outcome == RotateOutcome.reused:
            log.warning("refresh token reused for user %s: family revoked", result.user_id)
            raise ApiError(401, "refresh_token_reused",
                           "this refresh token was already used; all sessions of this login are revoked, "
                           "log in again")
        if result.outcome == RotateOutcome.expired:
            raise ApiError(401, "refresh_token_expired", "the refresh token expired; log in again")
        if result.outcome != RotateOutcome.rotated or result.user_id is None:
            raise ApiError(401, "invalid_refresh_token", "unknown refresh token; log in again")
        user = self.store.get_user(result.user_id)
        if user is None:
            raise ApiError(401, "invalid_refresh_token", "the user of this refresh token no longer exists")
        return self._issue_pair(user, refresh_token=new_token)

    def logout(self, refresh_token: str | None, principal: Principal | None) -> None:
        if refresh_token:
            self.store.revoke_refresh_family_of(hash_secret(refresh_token), utcnow())
        elif principal is not None and not principal.via_api_key:
            self.store.revoke_user_refresh_tokens(principal.user.id, utcnow())

    def _issue_pair(self, user: User, *, family_id: str | None = None,
                    refresh_token: str | None = None) -> TokenPair:
        ttl = self.settings.access_token_ttl
        access = issue_access_token(self.keyring, user.id, user.email, str(user.role), ttl)
        if refresh_token is None:
            refresh_token = new_refresh_token()
            assert family_id is not None
            self.store.add_refresh_token(user.id, family_id, hash_secret(refresh_token),
                                         utcnow() + self.settings.refresh_token_ttl)
        return TokenPair(access, refresh_token, int(ttl.total_seconds()), user)

    # authentication -----------------------------------------------------------------------------
    def authenticate(self, bearer: str) -> Principal:
        """An access token or an API key -> the caller; 401 (envelope) otherwise."""
        if bearer.startswith(API_KEY_PREFIX):
            key = self.store.find_api_key(hash_secret(bearer))
            if key is None:
                raise _unauthorized("invalid_api_key", "unknown or deleted API key")
            user = self.store.get_user(key.user_id)
            if user is None:
                raise _unauthorized("invalid_api_key", "the user of this API key no longer exists")
            self.store.touch_api_key(key.id, utcnow())
            return self.principal(user, via_api_key=True)
        try:
            claims = verify_access_token(bearer, self.public_keys)
        except TokenError as exc:
            if exc.reason == "token_expired":
                raise _unauthorized("token_expired", "the access token expired; refresh it or log in again") \
                    from exc
            raise _unauthorized("invalid_token", "the access token is not valid") from exc
        user = self.store.get_user(claims.user_id)
        if user is None:
            raise _unauthorized("invalid_token", "the user of this token no longer exists")
        return self.principal(user)

    def principal(self, user: User, via_api_key: bool = False) -> Principal:
        return Principal(user=user, memberships=tuple(self.store.memberships_of(user.id)), via_api_key=via_api_key)

    # API keys -----------------------------------------------------------------------------------
    def create_api_key(self, principal: Principal, name: str) -> tuple[ApiKey, str]:
        plain = new_api_key()
        key = self.store.create_api_key(
            principal.user.id, name, plain[: len(API_KEY_PREFIX) + 6], hash_secret(plain),
            audit=AuditRecord(actor=principal.email, action="create", kind="ApiKey", name=name))
        return key, plain

    # teams and users ----------------------------------------------------------------------------
    def create_team(self, principal: Principal, slug: str, name: str) -> Team:
        if not SLUG_RE.match(slug):
            raise ApiError(422, "invalid_request",
                           f"team slug {slug!r} must be 1-40 lowercase letters, digits or '-' "
                           "(not at either end)")
        namespace = TEAM_NAMESPACE_PREFIX + slug
        try:
            team = self.store.create_team(slug, name or slug, namespace, audit=AuditRecord(
                actor=principal.email, action="create", kind="Team", name=slug,
                after={"slug": slug, "name": name, "namespace": namespace}))
        except AlreadyExists as exc:
            raise ApiError(409, "already_exists", f"team {slug} already exists") from exc
        for listener in self.team_listeners:
            try:
                listener(team)
            except Exception:  # a runtime's failure never undoes the stored team (as RuntimeHooks)
                log.exception("team %s: the runtime could not prepare its namespace %s", slug, namespace)
        return team

    def team(self, slug: str) -> Team:
        team = self.store.get_team(slug)
        if team is None:
            raise not_found(f"team {slug}")
        return team

    def add_team_user(self, principal: Principal, team: Team, email: str, password: str | None,
                      role: TeamRole) -> tuple[Membership, bool]:
        """Create a password user (or take the existing one) and make them owner/member of `team`."""
        email = email.strip().lower()
        if not EMAIL_RE.match(email):
            raise ApiError(422, "invalid_request", f"{email!r} is not an email address")
        joined = AuditRecord(actor=principal.email, action="add_member", kind="Team", name=team.slug,
                             after={"user": email, "role": str(role)})
        user = self.store.get_user_by_email(email)
        if user is None:
            if not password or len(password) < 6:
                raise ApiError(422, "invalid_request", "a new user needs a password of at least 6 characters")
            try:  # the user and the membership in one transaction: never a user left without their team
                membership = self.store.create_member(team.id, email, hash_password(password), role, audits=[
                    AuditRecord(actor=principal.email, action="create", kind="User", name=email), joined])
                return membership, True
            except AlreadyExists:
                user = self.store.get_user_by_email(email)
                assert user is not None
        return self.store.add_member(team.id, user.id, role, audit=joined), False


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": "Bearer"})
