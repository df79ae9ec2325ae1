"""`secrets/*`: credentials a server's gateway hands on (a remote server's `headerSecret`).

Write-only by design: `PUT` sets keys, `GET` lists names and key names, `DELETE` removes one; no answer
and no log line ever holds a value. Only the namespace's team members (and admins) may touch them. A
runtime that cares (the process runtime's gateway routes) hears of every change through the optional
`secret_changed(namespace, name)` hook and picks the new value up at once.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from pydantic import Field

from mcp_runtime.platform.deps import CallerDep, PlatformDep, RequestModel
from mcp_runtime.platform.errors import ApiError, not_found
from mcp_runtime.platform.visibility import require_write
from mcp_runtime.store.secrets import MAX_KEYS, SecretError, SecretInfo

router = APIRouter(tags=["secrets"])
log = logging.getLogger("mcp_runtime.platform")


class SecretRequest(RequestModel):
    """`PUT secrets/{namespace}/{name}`: keys to set (others the secret holds are kept)."""

    data: dict[str, str] = Field(min_length=1, max_length=MAX_KEYS)


def _shown(info: SecretInfo) -> dict[str, Any]:
    return {"namespace": info.namespace, "name": info.name, "keys": list(info.keys),
            "updatedAt": info.updated_at.isoformat()}


def _notify(platform: Any, namespace: str, name: str) -> None:
    hook = getattr(platform.hooks, "secret_changed", None)
    if hook is not None:
        hook(namespace, name)


@router.put("/secrets/{namespace}/{name}")
def put_secret(namespace: str, name: str, body: SecretRequest, caller: CallerDep,
               platform: PlatformDep) -> dict[str, Any]:
    """Set keys of a secret (created when missing). The answer names the keys, never the values."""
    require_write(caller, namespace, "set secrets")
    try:
        info = platform.secrets.put(namespace, name, body.data)
    except SecretError as exc:
        raise ApiError(422, "invalid_secret", str(exc)) from None
    log.info("%s set keys %s of secret %s/%s", caller.email, ", ".join(sorted(body.data)), namespace, name)
    _notify(platform, namespace, name)
    return _shown(info)


@router.get("/secrets/{namespace}")
def list_secrets(namespace: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    require_write(caller, namespace, "list secrets")
    try:
        return {"items": [_shown(i) for i in platform.secrets.list(namespace)]}
    except SecretError as exc:
        raise ApiError(422, "invalid_secret", str(exc)) from None


@router.delete("/secrets/{namespace}/{name}")
def delete_secret(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    require_write(caller, namespace, "delete secrets")
    try:
        deleted = platform.secrets.delete(namespace, name)
    except SecretError as exc:
        raise ApiError(422, "invalid_secret", str(exc)) from None
    if not deleted:
        raise not_found(f"secret {name} in namespace {namespace}")
    _notify(platform, namespace, name)
    return {"namespace": namespace, "name": name, "deleted": True}
