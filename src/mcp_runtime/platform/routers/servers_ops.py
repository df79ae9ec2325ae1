"""Operating deployed servers: status, logs (tail or follow), events, and the platform's own `status`.

Logs come from the runtime that runs the servers (its optional `logs`/`follow_logs` methods); a
runtime without them answers 501 `logs_unavailable`, so the CLI can say why instead of printing nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from mcp_runtime import __version__
from mcp_runtime.platform.core import Platform
from mcp_runtime.platform.deps import CallerDep, OptionalCallerDep, PlatformDep
from mcp_runtime.platform.errors import ApiError, forbidden
from mcp_runtime.platform.principal import Principal
from mcp_runtime.resources import SERVER_KIND, MCPServer, ServerPhase
from mcp_runtime.store import AuditEntry

router = APIRouter(tags=["runtime"])

MAX_TAIL = 10_000


def runtime_name(platform: Platform) -> str:
    """`process`, `podman`, `kubernetes`, or `none` when nothing runs the stored servers."""
    return str(getattr(platform.hooks, "runtime_name", None) or "none")


def store_kind(platform: Platform) -> str:
    """The control-plane store: `sqlite`, `postgresql`, or `kubernetes+<sql>` (resources as CRDs)."""
    store = platform.store
    engine = getattr(store, "engine", None)  # the Kubernetes-backed store passes this to its SQL half
    sql = str(engine.dialect.name) if engine is not None else None
    if "Kubernetes" in type(store).__name__:
        return f"kubernetes+{sql}" if sql else "kubernetes"
    return sql or type(store).__name__


def server_status(server: MCPServer) -> dict[str, Any]:
    status = server.status
    doc = status.model_dump(by_alias=True, mode="json", exclude_none=True) if status else {}
    return {"name": server.metadata.name, "namespace": server.metadata.namespace,
            "generation": server.metadata.generation, "replicas": server.spec.replicas,
            "phase": doc.get("phase", ServerPhase.pending.value), "message": doc.get("message"),
            "url": doc.get("url", server.spec.ingress_path), "readyReplicas": doc.get("readyReplicas"),
            "observedGeneration": doc.get("observedGeneration"), "conditions": doc.get("conditions", [])}


def require_logs_access(caller: Principal, server: MCPServer) -> None:
    """Logs can hold anything the server prints: its team (members of its namespace's team or of the
    team that owns it) and admins only, not everyone who may call it."""
    namespace = server.metadata.namespace or ""
    owner = server.spec.team_id
    if caller.can_write(namespace) or (owner is not None and caller.in_team(owner)):
        return
    raise forbidden(f"you cannot read the logs of server {server.metadata.name} in namespace {namespace}: "
                    "only its team's members (or a platform admin) can")


def _logs_unavailable(platform: Platform, what: str) -> ApiError:
    name = runtime_name(platform)
    if name == "none":
        message = ("no runtime runs servers on this platform (it only stores and governs them), so there are "
                   "no logs; run servers with `mcp-runtime up` or a container runtime")
    else:
        message = f"the {name} runtime does not provide server {what}"
    return ApiError(501, "logs_unavailable", message)


@router.get("/runtime/servers/{namespace}/{name}/status")
def get_server_status(namespace: str, name: str, caller: CallerDep, platform: PlatformDep) -> dict[str, Any]:
    """Phase, message, URL and conditions as the runtime last reported them."""
    return server_status(platform.servers.get(caller, namespace, name))


@router.get("/runtime/servers/{namespace}/{name}/logs", response_model=None)
def get_server_logs(namespace: str, name: str, caller: CallerDep, platform: PlatformDep,
                    tail: int = Query(200, ge=0, le=MAX_TAIL, description="lines from the end"),
                    follow: bool = Query(False, description="keep streaming new lines (text/plain)")
                    ) -> dict[str, Any] | StreamingResponse:
    """The last `tail` lines of the server's output; with `follow`, those lines then new ones as plain text."""
    server = platform.servers.get(caller, namespace, name)
    require_logs_access(caller, server)
    hooks = platform.hooks
    logs = getattr(hooks, "logs", None)
    if logs is None:
        raise _logs_unavailable(platform, "logs")
    lines = [str(line) for line in logs(namespace, name, tail)] if tail else []
    if not follow:
        return {"name": name, "namespace": namespace, "lines": lines}
    follow_logs = getattr(hooks, "follow_logs", None)
    if follow_logs is None:
        raise _logs_unavailable(platform, "log streaming (--follow)")

    async def stream() -> AsyncIterator[bytes]:
        for line in lines:
            yield (line.rstrip("\n") + "\n").encode()
        async for line in follow_logs(namespace, name):
            yield (str(line).rstrip("\n") + "\n").encode()

    return StreamingResponse(stream(), media_type="text/plain; charset=utf-8",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _event(entry: AuditEntry) -> dict[str, Any]:
    after: dict[str, Any] = entry.after if isinstance(entry.after, dict) else {}
    status: dict[str, Any] = after["status"] if isinstance(after.get("status"), dict) else {}
    metadata: dict[str, Any] = after["metadata"] if isinstance(after.get("metadata"), dict) else {}
    if entry.action == "status":
        text = f"phase {status.get('phase', '?')}" + (f": {status['message']}" if status.get("message") else "")
    elif entry.action == "create":
        text = f"deployed (generation {metadata.get('generation', 1)})"
    elif entry.action == "update":
        text = f"redeployed (generation {metadata.get('generation', '?')})"
    elif entry.action == "delete":
        text = "deleted"
    else:
        text = entry.action
    return {"id": entry.id, "at": entry.at.isoformat(), "actor": entry.actor, "action": entry.action,
            "phase": status.get("phase"), "message": text}


@router.get("/runtime/servers/{namespace}/{name}/events")
def get_server_events(namespace: str, name: str, caller: CallerDep, platform: PlatformDep,
                      limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    """The server's history, oldest first: deploys, redeploys, phase changes the runtime reported."""
    platform.servers.get(caller, namespace, name)
    entries = platform.store.list_audit(limit=limit, kind=SERVER_KIND, namespace=namespace, name=name)
    return {"name": name, "namespace": namespace, "items": [_event(e) for e in reversed(entries)]}


@router.get("/status", tags=["health"])
def platform_status(caller: OptionalCallerDep, platform: PlatformDep) -> dict[str, Any]:
    """Health at a glance; signed-in callers also get the runtime, the store and their servers by phase."""
    answer: dict[str, Any] = {"status": "ok", "version": __version__}
    if caller is None:
        return answer
    servers = platform.servers.list(caller)
    phases = Counter(str(s.status.phase) if s.status else ServerPhase.pending.value for s in servers)
    answer.update({"runtime": runtime_name(platform), "store": store_kind(platform),
                   "servers": {"total": len(servers), "byPhase": dict(sorted(phases.items()))},
                   "user": {"email": caller.email, "admin": caller.is_admin}})
    return answer
