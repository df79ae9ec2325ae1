"""`registry/*`: push authorization, catalog, info/status, and provisioning an external registry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from mcp_runtime.platform.core import Platform
from mcp_runtime.platform.deps import CallerDep, PlatformDep, RequestModel
from mcp_runtime.platform.registry import RegistryService
from mcp_runtime.resources import Scope

router = APIRouter(tags=["registry"])


class PushRequest(RequestModel):
    image: str = Field(min_length=1, max_length=512)
    scope: Scope = Scope.tenant
    team: str | None = Field(default=None, max_length=63)


class ProvisionRequest(RequestModel):
    url: str = Field(min_length=1, max_length=512)


def service(platform: Platform) -> RegistryService:
    return RegistryService(platform.settings, platform.store)


@router.get("/registry/info")
def registry_info(caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    """The registry host image references start with, and the scope prefixes."""
    return service(platform).info()


@router.get("/registry/status")
def registry_status(caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    return service(platform).status()


@router.post("/registry/authorize")
def authorize_push(body: PushRequest, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    """May the caller push this image in this scope; the exact reference to push it as."""
    return service(platform).authorize_push(caller, body.image, body.scope, body.team)


@router.get("/registry/catalog")
def catalog(caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    return {"items": service(platform).catalog(caller)}


@router.put("/registry")
def provision(body: ProvisionRequest, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    """Admin: use an external registry from now on."""
    return service(platform).provision(caller, body.url)
