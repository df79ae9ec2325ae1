"""`runtime/*`: servers, grants, sessions, adapter sessions, compiled policies and explain."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Response

from mcp_runtime.platform.access import AdapterSessionRequest, ExplainRequest
from mcp_runtime.platform.deps import CallerDep, PlatformDep
from mcp_runtime.platform.errors import not_found
from mcp_runtime.platform.servers import DeployRequest
from mcp_runtime.platform.simulate import SimulateRequest
from mcp_runtime.resources import GRANT_KIND, SESSION_KIND, dump_resource

router = APIRouter(tags=["runtime"])
NamespaceQuery = Query(None, max_length=63, description="only this namespace")
ResourceBody = Body(..., description="a Kubernetes-style resource (the YAML that `access ... init` writes)")


def resource_body(kind: str) -> dict[str, Any]:
    """OpenAPI for a body validated by `mcp_runtime.resources` (the schema lives in components)."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{kind}"}}}}}


def _items(resources: list[Any]) -> dict[str, Any]:
    return {"items": [dump_resource(r) for r in resources]}


# servers ----------------------------------------------------------------------------------------
@router.post("/runtime/servers", status_code=201)
def deploy_server(body: DeployRequest, response: Response, caller: CallerDep,
                  platform: PlatformDep) -> dict[str, Any]:
    """Deploy from `.mcp` metadata or a spec; 409 when it exists unless `update: true`."""
    server, created = platform.servers.deploy(caller, body)
    if not created:
        response.status_code = 200
    return dump_resource(server)


@router.get("/runtime/servers")
def list_servers(caller: CallerDep, platform: PlatformDep, namespace: str | None = NamespaceQuery
                 ) -> dict[str, Any]:
    return _items(platform.servers.list(caller, namespace))


@router.get("/runtime/servers/{namespace}/{name}")
def get_server(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    return dump_resource(platform.servers.get(caller, namespace, name))


@router.delete("/runtime/servers/{namespace}/{name}")
def delete_server(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    return dump_resource(platform.servers.delete(caller, namespace, name))


@router.get("/runtime/servers/{namespace}/{name}/policy")
def server_policy(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> Response:
    """The compiled policy document the gateway enforces, as its canonical JSON."""
    platform.servers.get(caller, namespace, name)
    document = platform.policies.document(namespace, name)
    if document is None:
        raise not_found(f"server {name} in namespace {namespace}")
    return Response(document.to_json(), media_type="application/json",
                    headers={"ETag": f'"{document.revision}"'})


# grants -----------------------------------------------------------------------------------------
@router.post("/runtime/grants", status_code=201, openapi_extra=resource_body(GRANT_KIND))
def create_grant(caller: CallerDep, platform: PlatformDep, body: Any = ResourceBody) -> dict[str, Any]:
    return dump_resource(platform.access.create_grant(caller, body))


@router.get("/runtime/grants")
def list_grants(caller: CallerDep, platform: PlatformDep, namespace: str | None = NamespaceQuery
                ) -> dict[str, Any]:
    return _items(platform.access.list_grants(caller, namespace))


@router.get("/runtime/grants/{namespace}/{name}")
def get_grant(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    return dump_resource(platform.access.get_grant(caller, namespace, name))


@router.put("/runtime/grants/{namespace}/{name}", openapi_extra=resource_body(GRANT_KIND))
def replace_grant(namespace: str, name: str, caller: CallerDep, platform: PlatformDep,
                  body: Any = ResourceBody) -> dict[str, Any]:
    return dump_resource(platform.access.replace_grant(caller, namespace, name, body))


@router.post("/runtime/grants/{namespace}/{name}/enable")
def enable_grant(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    return dump_resource(platform.access.set_grant_disabled(caller, namespace, name, False))


@router.post("/runtime/grants/{namespace}/{name}/disable")
def disable_grant(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    return dump_resource(platform.access.set_grant_disabled(caller, namespace, name, True))


@router.delete("/runtime/grants/{namespace}/{name}")
def delete_grant(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    return dump_resource(platform.access.delete_grant(caller, namespace, name))


# sessions ---------------------------------------------------------------------------------------
def _session_answer(session: Any, token: str) -> dict[str, Any]:
    return {"session": dump_resource(session), "token": token,
            "expiresAt": session.spec.expires_at.isoformat() if session.spec.expires_at else None}


@router.post("/runtime/sessions", status_code=201, openapi_extra=resource_body(SESSION_KIND))
def apply_session(caller: CallerDep, platform: PlatformDep, body: Any = ResourceBody) -> dict[str, Any]:
    """Admin: create a session from its YAML; the answer carries its session token."""
    return _session_answer(*platform.access.apply_session(caller, body))


@router.get("/runtime/sessions")
def list_sessions(caller: CallerDep, platform: PlatformDep, namespace: str | None = NamespaceQuery
                  ) -> dict[str, Any]:
    return _items(platform.access.list_sessions(caller, namespace))


@router.get("/runtime/sessions/{namespace}/{name}")
def get_session(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    return dump_resource(platform.access.get_session(caller, namespace, name))


@router.put("/runtime/sessions/{namespace}/{name}", openapi_extra=resource_body(SESSION_KIND))
def replace_session(namespace: str, name: str, caller: CallerDep, platform: PlatformDep,
                    body: Any = ResourceBody) -> dict[str, Any]:
    return _session_answer(*platform.access.apply_session(
        caller, body, replace_existing=True, url_namespace=namespace, url_name=name))


@router.delete("/runtime/sessions/{namespace}/{name}")
def delete_session(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    return dump_resource(platform.access.delete_session(caller, namespace, name))


@router.post("/runtime/sessions/{namespace}/{name}/revoke")
def revoke_session(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    return dump_resource(platform.access.set_session_revoked(caller, namespace, name, True))


@router.post("/runtime/sessions/{namespace}/{name}/unrevoke")
def unrevoke_session(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    return dump_resource(platform.access.set_session_revoked(caller, namespace, name, False))


@router.post("/runtime/sessions/{namespace}/{name}/token")
def session_token(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    """A fresh bearer token for the session (admins and the namespace team's owners)."""
    return _session_answer(*platform.access.session_token(caller, namespace, name))


# adapter and explain ----------------------------------------------------------------------------
@router.post("/runtime/adapter/sessions")
def adapter_session(body: AdapterSessionRequest, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    """Issue or reuse the caller's session on a server, with its signed token."""
    return platform.access.adapter_session(caller, body)


@router.post("/runtime/explain")
def explain(body: ExplainRequest, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    """May this identity call this tool, and why: the gateway's evaluator on the current policy."""
    return platform.access.explain(caller, body)


@router.post("/runtime/simulate")
def simulate(body: SimulateRequest, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    """What a change to a server's grants, sessions or spec would have done to its recorded tool calls:
    the calls whose decision or reason changes, by caller and tool. Only for callers who may apply it."""
    return platform.simulation.simulate(caller, body)
