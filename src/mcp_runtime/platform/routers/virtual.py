"""`runtime/virtualservers`: MCPVirtualServer apply, list, get, delete (docs/virtual-servers.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from mcp_runtime.platform.deps import CallerDep, PlatformDep
from mcp_runtime.platform.routers.runtime import NamespaceQuery, ResourceBody, resource_body
from mcp_runtime.resources import VIRTUAL_KIND, dump_resource

router = APIRouter(tags=["runtime"])


@router.post("/runtime/virtualservers", status_code=201, openapi_extra=resource_body(VIRTUAL_KIND))
def apply_virtual_server(response: Response, caller: CallerDep, platform: PlatformDep,
                         body: Any = ResourceBody) -> dict[str, Any]:
    """Create a virtual server, or replace it (200) when it exists; members are checked for visibility."""
    virtual, created = platform.virtual.apply(caller, body)
    if not created:
        response.status_code = 200
    return dump_resource(virtual)


@router.get("/runtime/virtualservers")
def list_virtual_servers(caller: CallerDep, platform: PlatformDep, namespace: str | None = NamespaceQuery
                         ) -> dict[str, Any]:
    return {"items": [dump_resource(v) for v in platform.virtual.list(caller, namespace)]}


@router.get("/runtime/virtualservers/{namespace}/{name}")
def get_virtual_server(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    return dump_resource(platform.virtual.get(caller, namespace, name))


@router.delete("/runtime/virtualservers/{namespace}/{name}")
def delete_virtual_server(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    return dump_resource(platform.virtual.delete(caller, namespace, name))
