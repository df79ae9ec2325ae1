"""Servers as resources: deploy (create or `update: true`), get, list, delete; scope and route rules."""

from __future__ import annotations

import logging

from pydantic import Field

from mcp_runtime.platform.errors import ApiError, not_found
from mcp_runtime.platform.hooks import RuntimeHooks
from mcp_runtime.platform.policies import PolicyCompiler
from mcp_runtime.platform.principal import Principal
from mcp_runtime.platform.repository import ResourceRepository
from mcp_runtime.platform.settings import ORG_NAMESPACE, PUBLIC_NAMESPACE
from mcp_runtime.platform.visibility import can_read_namespace, names_caller, require_manage, require_write
from mcp_runtime.resources import (
    CamelModel,
    MCPAccessGrant,
    MCPServer,
    MCPServerSpec,
    MCPServerStatus,
    MCPVirtualServer,
    ObjectMeta,
    Scope,
    ServerMetadata,
    ServerPhase,
    metadata_to_server,
)
from mcp_runtime.store import ControlPlaneStore, Team

log = logging.getLogger("mcp_runtime.platform")


class DeployRequest(CamelModel):
    """`POST runtime/servers`: `.mcp` metadata or an MCPServer spec, where to put it, and whether to update."""

    name: str | None = Field(default=None, max_length=63)
    scope: Scope | None = None
    team: str | None = Field(default=None, max_length=63)
    namespace: str | None = Field(default=None, max_length=63)
    update: bool = False
    metadata: ServerMetadata | None = None
    spec: MCPServerSpec | None = None
    image: str | None = Field(default=None, max_length=512)
    image_tag: str | None = Field(default=None, max_length=128)
    labels: dict[str, str] = Field(default_factory=dict)


def keep_pins(server: MCPServer, existing: MCPServer) -> None:
    """A redeploy whose metadata has no pin for a tool keeps the stored one: pins change only by review
    (metadata with a pin, or `server tools approve`), never by a deploy that left them out."""
    for tool in server.spec.tools:
        old = existing.spec.tool(tool.name)
        if tool.pin is None and old is not None and old.pin is not None:
            tool.pin = old.pin


def keep_observed_tools(status: MCPServerStatus, previous: MCPServerStatus | None) -> None:
    """A runtime's status write keeps what the gateway reported about the tools (pinning.py)."""
    if previous is None:
        return
    if status.observed_tools is None:
        status.observed_tools = previous.observed_tools
    kept = [c for c in previous.conditions if c.type == "ToolsPinned"]
    if kept and not any(c.type == "ToolsPinned" for c in status.conditions):
        status.conditions = [*status.conditions, *kept]


class ServerService:
    def __init__(self, store: ControlPlaneStore, repo: ResourceRepository, policies: PolicyCompiler,
                 hooks: RuntimeHooks) -> None:
        self.store, self.repo, self.policies, self.hooks = store, repo, policies, hooks

    # scope resolution ---------------------------------------------------------------------------
    def resolve_namespace(self, caller: Principal, req: DeployRequest) -> tuple[str, Team | None]:
        """tenant -> the caller's team namespace (`team`/`namespace` choose); org/public -> the catalogs."""
        namespace = req.namespace or (req.metadata.namespace if req.metadata else None)
        if namespace:
            return namespace, self.store.get_team_by_namespace(namespace)
        if req.team:
            team = self.store.get_team(req.team)
            if team is None:
                raise not_found(f"team {req.team}")
            return team.namespace, team
        scope = req.scope or (req.metadata.scope if req.metadata else Scope.tenant)
        if scope == Scope.org:
            return ORG_NAMESPACE, None
        if scope == Scope.public:
            return PUBLIC_NAMESPACE, None
        teams = caller.teams
        if len(teams) == 1:
            return teams[0].namespace, teams[0]
        if not teams:
            raise ApiError(422, "team_required",
                           "tenant scope deploys into your team's namespace, but you belong to no team: "
                           "pass team or namespace (or use scope org/public as an admin)")
        slugs = ", ".join(t.slug for t in teams)
        raise ApiError(409, "team_ambiguous",
                       f"you belong to several teams ({slugs}): choose one with --team or --namespace")

    # deploy -------------------------------------------------------------------------------------
    def deploy(self, caller: Principal, req: DeployRequest) -> tuple[MCPServer, bool]:
        name = req.name or (req.metadata.name if req.metadata else None)
        if not name:
            raise ApiError(422, "invalid_request", "name is required (or send metadata with a name)")
        if (req.metadata is None) == (req.spec is None):
            raise ApiError(422, "invalid_request", "send exactly one of metadata (.mcp server entry) or spec")
        namespace, team = self.resolve_namespace(caller, req)
        require_write(caller, namespace, "deploy servers")
        server = self._build(name, namespace, team, req)
        self._check_route(server)
        existing = self.repo.get(MCPServer, namespace, name)
        actor = caller.email
        if existing is None and self.repo.get(MCPVirtualServer, namespace, name) is not None:
            raise ApiError(409, "name_conflict",
                           f"virtual server {name} exists in namespace {namespace}: a server and a virtual server "
                           "share one name space (and one session audience); choose another name")
        if existing is not None and not req.update:
            raise ApiError(409, "already_exists",
                           f"server {name} already exists in namespace {namespace}; "
                           "redeploy with --update (request field update: true)")
        self._check_runnable(server)
        if existing is not None:
            keep_pins(server, existing)
            server.metadata.uid = existing.metadata.uid
            server.status = existing.status or MCPServerStatus()
            if server.spec != existing.spec:
                server.status.phase = ServerPhase.pending
                server.status.message = "updated; waiting for the runtime to roll it out"
            saved = self.repo.replace(server, actor, "update", before=existing)
            self._notify("server_updated", saved)
            self.policies.recompile(namespace, name)
            return saved, False
        server.status = MCPServerStatus(phase=ServerPhase.pending, message="waiting for a runtime to run it",
                                        url=server.spec.ingress_path)
        saved = self.repo.create(server, actor)
        self._notify("server_created", saved)
        self.policies.recompile(namespace, name)
        return saved, True

    def redeployed(self, caller: Principal, server: MCPServer, metadata: ServerMetadata | None,
                   spec: MCPServerSpec | None) -> MCPServer:
        """`server` as `deploy --update` with this metadata or spec would store it; nothing is stored."""
        namespace, name = server.metadata.namespace or "", server.metadata.name
        require_write(caller, namespace, "deploy servers")
        req = DeployRequest(name=name, namespace=namespace, update=True, metadata=metadata, spec=spec)
        if (metadata is None) == (spec is None):
            raise ApiError(422, "invalid_request", "send exactly one of metadata (.mcp server entry) or spec")
        return self._build(name, namespace, self.store.get_team_by_namespace(namespace), req)

    def _build(self, name: str, namespace: str, team: Team | None, req: DeployRequest) -> MCPServer:
        team_id = team.id if team else None
        if req.metadata is not None:
            wanted = req.metadata.team_id
            server = metadata_to_server(req.metadata, name=name, namespace=namespace, team_id=team_id or wanted,
                                        team_slug=team.slug if team else None)
        else:
            assert req.spec is not None
            wanted = req.spec.team_id
            spec = req.spec.model_copy(update={"team_id": team_id or wanted})
            server = MCPServer(metadata=ObjectMeta(name=name, namespace=namespace), spec=spec)
        if team is not None and wanted and wanted != team.id:
            raise ApiError(422, "invalid_request",
                           f"teamID {wanted} is not the team of namespace {namespace} ({team.slug}: {team.id}); "
                           "remove teamID or deploy into that team's namespace")
        if req.image:
            server.spec.image = req.image
            server.spec.image_tag = req.image_tag
        elif req.image_tag:
            server.spec.image_tag = req.image_tag
        server.metadata.labels.update(req.labels)
        # re-validate the assembled resource: the models are the only schema
        return MCPServer.model_validate(server.model_dump(by_alias=True, mode="json", exclude_none=True))

    def _check_runnable(self, server: MCPServer) -> None:
        """Ask the runtime (when it can tell) whether it can run this server, before anything is stored."""
        check = getattr(self.hooks, "check", None)
        if check is None:
            return
        reason = check(server)
        if reason:
            raise ApiError(422, "not_runnable", str(reason))

    def _check_route(self, server: MCPServer) -> None:
        path = server.spec.ingress_path
        host = server.spec.ingress_host
        for other in self.repo.list(MCPServer):
            if (other.metadata.namespace, other.metadata.name) == (server.metadata.namespace, server.metadata.name):
                continue
            if other.spec.ingress_path == path and other.spec.ingress_host == host:
                raise ApiError(409, "route_conflict",
                               f"route {path} is already used by server {other.metadata.name} in namespace "
                               f"{other.metadata.namespace}; choose another route (publicPathPrefix)")

    # read ---------------------------------------------------------------------------------------
    def can_read(self, caller: Principal, server: MCPServer, grants: list[MCPAccessGrant] | None = None) -> bool:
        namespace = server.metadata.namespace or ""
        if can_read_namespace(caller, namespace):
            return True
        if grants is None:
            grants = self.repo.list(MCPAccessGrant, namespace)
        return any(g.spec.server_ref.name == server.metadata.name and names_caller(g.spec.subject, caller)
                   for g in grants)

    def get(self, caller: Principal, namespace: str, name: str) -> MCPServer:
        server = self.repo.get(MCPServer, namespace, name)
        if server is None or not self.can_read(caller, server):
            raise not_found(f"server {name} in namespace {namespace}")
        return server

    def list(self, caller: Principal, namespace: str | None = None) -> list[MCPServer]:
        servers = self.repo.list(MCPServer, namespace)
        if caller.is_admin:
            return servers
        grants = self.repo.list(MCPAccessGrant, namespace)
        by_ns: dict[str, list[MCPAccessGrant]] = {}
        for grant in grants:
            by_ns.setdefault(grant.metadata.namespace or "", []).append(grant)
        return [s for s in servers if self.can_read(caller, s, by_ns.get(s.metadata.namespace or "", []))]

    def find(self, caller: Principal, name: str, namespace: str | None) -> MCPServer:
        """A server by name; without a namespace, the only one the caller can see (409 when several)."""
        if namespace:
            return self.get(caller, namespace, name)
        matches = [s for s in self.list(caller) if s.metadata.name == name]
        if not matches:
            raise not_found(f"server {name}")
        if len(matches) > 1:
            where = ", ".join(s.metadata.namespace or "" for s in matches)
            raise ApiError(409, "namespace_ambiguous",
                           f"server {name} exists in several namespaces ({where}): pass --namespace")
        return matches[0]

    # delete and status ------------------------------------------------------------------------
    def delete(self, caller: Principal, namespace: str, name: str) -> MCPServer:
        server = self.get(caller, namespace, name)
        require_manage(caller, namespace, "delete servers")
        self.repo.delete(server, caller.email)
        self._notify("server_deleted", server)
        self.policies.recompile(namespace, name)
        return server

    def set_status(self, namespace: str, name: str, status: MCPServerStatus) -> MCPServer | None:
        """For runtimes: record what they observe. Reaching Ready or Error (or PartiallyReady) is an event
        of the server (`.../events`, in the audit log as actor `runtime`); other status writes are not."""
        server = self.repo.get(MCPServer, namespace, name)
        if server is None:
            return None
        keep_observed_tools(status, server.status)
        server.status = status
        action = "status" if self._is_new_phase(namespace, name, status.phase) else ""
        return self.repo.replace(server, "runtime", action=action, spec=False)

    def _is_new_phase(self, namespace: str, name: str, phase: ServerPhase) -> bool:
        """Pending is transitional (a deploy or a restart), so it is not recorded; a crash loop
        (Pending, Error, Pending, Error, ...) records its Error once, until a deploy or another phase."""
        if phase == ServerPhase.pending:
            return False
        latest = self.store.list_audit(limit=1, kind=MCPServer.model_fields["kind"].default, namespace=namespace,
                                       name=name)
        if not latest or latest[0].action != "status":
            return True
        after = latest[0].after if isinstance(latest[0].after, dict) else {}
        return bool((after.get("status") or {}).get("phase") != phase.value)

    def _notify(self, event: str, server: MCPServer) -> None:
        try:
            getattr(self.hooks, event)(server)
        except Exception:
            log.exception("runtime hook %s failed for %s/%s", event, server.metadata.namespace,
                          server.metadata.name)
