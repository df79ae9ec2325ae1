"""FastAPI dependencies: the platform services of this app and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from mcp_runtime.platform.core import Platform
from mcp_runtime.platform.errors import ApiError, forbidden
from mcp_runtime.platform.principal import Principal


class RequestModel(BaseModel):
    """Request bodies: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


def get_platform(request: Request) -> Platform:
    return request.app.state.platform  # type: ignore[no-any-return]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def optional_principal(request: Request) -> Principal | None:
    token = bearer_token(request)
    if token is None:
        return None
    return get_platform(request).identity.authenticate(token)


def current_principal(request: Request) -> Principal:
    principal = optional_principal(request)
    if principal is None:
        raise ApiError(401, "unauthorized", "log in first: send Authorization: Bearer <access token or API key>",
                       headers={"WWW-Authenticate": "Bearer"})
    return principal


def admin_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise forbidden("this needs the platform admin role")
    return principal


PlatformDep = Annotated[Platform, Depends(get_platform)]
CallerDep = Annotated[Principal, Depends(current_principal)]
OptionalCallerDep = Annotated[Principal | None, Depends(optional_principal)]
AdminDep = Annotated[Principal, Depends(admin_principal)]
