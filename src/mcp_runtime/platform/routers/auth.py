"""`auth/*` and `user/api-keys`: logins, token refresh and logout, the caller, API keys, JWKS."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import Field

from mcp_runtime.platform.deps import CallerDep, OptionalCallerDep, PlatformDep, RequestModel
from mcp_runtime.platform.errors import ApiError
from mcp_runtime.platform.identity import team_json, user_json
from mcp_runtime.store import NotFound

router = APIRouter(tags=["auth"])


class LoginRequest(RequestModel):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(RequestModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutRequest(RequestModel):
    refresh_token: str | None = Field(default=None, max_length=512)


class ApiKeyRequest(RequestModel):
    name: str = Field(default="cli", min_length=1, max_length=200)


@router.post("/auth/login")
def login(body: LoginRequest, request: Request, platform: PlatformDep) -> dict[str, Any]:
    """Email + password -> a short access token and a rotating refresh token."""
    client_ip = request.client.host if request.client else "unknown"
    return platform.identity.login(body.email, body.password, client_ip).to_json()


@router.post("/auth/refresh")
def refresh(body: RefreshRequest, platform: PlatformDep) -> dict[str, Any]:
    """Trade a refresh token for a new pair; a reused refresh token revokes its whole family."""
    return platform.identity.refresh(body.refresh_token).to_json()


@router.post("/auth/logout", status_code=204)
def logout(platform: PlatformDep, caller: OptionalCallerDep, body: LogoutRequest | None = None) -> Response:
    """Revoke the refresh token's family (or all of the caller's refresh tokens without one)."""
    token = body.refresh_token if body else None
    if token is None and caller is None:
        raise ApiError(401, "unauthorized", "send the refresh token or an access token to log out",
                       headers={"WWW-Authenticate": "Bearer"})
    platform.identity.logout(token, caller)
    return Response(status_code=204)


@router.get("/auth/me")
def me(caller: CallerDep) -> dict[str, Any]:
    teams = [{**team_json(m.team), "role": str(m.role)} for m in caller.memberships]
    return {**user_json(caller.user), "teams": teams, "authenticatedWith": "apiKey" if caller.via_api_key
            else "accessToken"}


@router.get("/auth/jwks")
def jwks(platform: PlatformDep) -> dict[str, Any]:
    """Public signing keys: what gateways verify session tokens with."""
    return platform.keyring.jwks()


def _key_json(key: Any) -> dict[str, Any]:
    return {"id": key.id, "name": key.name, "prefix": key.prefix, "createdAt": key.created_at.isoformat(),
            "lastUsedAt": key.last_used_at.isoformat() if key.last_used_at else None}


@router.post("/user/api-keys", status_code=201)
def create_api_key(body: ApiKeyRequest, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    """A new API key for the caller; the key itself is in this answer only."""
    key, plain = platform.identity.create_api_key(caller, body.name)
    return {**_key_json(key), "key": plain}


@router.get("/user/api-keys")
def list_api_keys(caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    return {"items": [_key_json(k) for k in platform.store.list_api_keys(caller.user.id)]}


@router.delete("/user/api-keys/{key_id}", status_code=204)
def delete_api_key(key_id: str, caller: CallerDep, platform: PlatformDep) -> Response:
    from mcp_runtime.store import AuditRecord

    try:
        platform.store.delete_api_key(caller.user.id, key_id, audit=AuditRecord(
            actor=caller.email, action="delete", kind="ApiKey", name=key_id))
    except NotFound as exc:
        raise ApiError(404, "not_found", f"API key {key_id} not found") from exc
    return Response(status_code=204)
