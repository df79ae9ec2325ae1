"""`.mcp/servers.yaml`: the light authoring format, and its conversion to MCPServer.

Defaults follow the publish guide: scope tenant, tag latest, route `/<name>` with a leading slash,
port 8088, replicas 1, namespace by scope, image toward the platform registry path.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mcp_runtime.resources.common import (
    DEFAULT_NAMESPACE,
    ORG_NAMESPACE,
    PUBLIC_NAMESPACE,
    CamelModel,
    DnsLabel,
    ObjectMeta,
    Scope,
    team_namespace,
)
from mcp_runtime.resources.server import MCPServer, MCPServerSpec, ServerDefinition
from mcp_runtime.resources.virtual import VirtualServerMetadata

METADATA_VERSION = "v1"
METADATA_FILE = "servers.yaml"


def scope_namespace(scope: Scope, team_slug: str | None = None) -> str:
    """The namespace a scope publishes into; tenant needs the team (else the single-team default)."""
    if scope == Scope.org:
        return ORG_NAMESPACE
    if scope == Scope.public:
        return PUBLIC_NAMESPACE
    return team_namespace(team_slug) if team_slug else DEFAULT_NAMESPACE


def scope_image_prefix(scope: Scope, team_slug: str | None = None) -> str:
    """The registry repository prefix of a scope: `<team>/`, `org/` or `public/`."""
    if scope == Scope.org:
        return "org/"
    if scope == Scope.public:
        return "public/"
    return f"{team_slug}/" if team_slug else ""


def normalize_route(route: str) -> str:
    """`payments`, `/payments/`, `/payments/mcp` all become `/payments` (the ingress adds `/mcp`)."""
    cleaned = "/" + route.strip().strip("/")
    if cleaned.endswith("/mcp") and cleaned != "/mcp":
        cleaned = cleaned[: -len("/mcp")]
    if cleaned == "/":
        raise ValueError("route must name a path prefix such as /payments")
    return cleaned


class _MetadataHead(CamelModel):
    """The fields only `.mcp` metadata has; they come first in `servers.yaml`."""

    name: DnsLabel
    scope: Scope = Scope.tenant
    route: str | None = None
    namespace: DnsLabel | None = None


class ServerMetadata(ServerDefinition, _MetadataHead):
    """One server entry of `.mcp/servers.yaml`: its name and where it publishes, plus a `ServerDefinition`."""

    @field_validator("route")
    @classmethod
    def _route(cls, value: str | None) -> str | None:
        return normalize_route(value) if value is not None else None

    @model_validator(mode="after")
    def _default_route(self) -> ServerMetadata:
        if self.route is None:
            self.route = f"/{self.name}"
        return self

    def resolved_image(self, *, team_slug: str | None = None, registry: str | None = None) -> str | None:
        """The image repository: as written, or `<registry>/<scope prefix><name>` when omitted (none for a
        remote server)."""
        if self.remote is not None:
            return None
        if self.image:
            return self.image
        repo = f"{scope_image_prefix(self.scope, team_slug)}{self.name}"
        return f"{registry.rstrip('/')}/{repo}" if registry else repo

    def resolved_namespace(self, team_slug: str | None = None) -> str:
        return self.namespace or scope_namespace(self.scope, team_slug)

    def tool_names(self) -> list[str]:
        return [t.name for t in self.tools]


class ServersFile(CamelModel):
    """The whole `.mcp/servers.yaml` document."""

    version: Literal["v1"] = "v1"
    servers: list[ServerMetadata] = Field(default_factory=list)
    virtual_servers: list[VirtualServerMetadata] = Field(default_factory=list)
    """Virtual servers over the servers above or others (docs/virtual-servers.md)."""

    @model_validator(mode="after")
    def _unique(self) -> ServersFile:
        seen: set[str] = set()
        for server in self.servers:
            if server.name in seen:
                raise ValueError(f"server {server.name!r} is listed twice: server names must be unique")
            seen.add(server.name)
        return self

    def get(self, name: str) -> ServerMetadata | None:
        return next((s for s in self.servers if s.name == name), None)


def metadata_to_server(
    meta: ServerMetadata,
    *,
    name: str | None = None,
    namespace: str | None = None,
    team_id: str | None = None,
    team_slug: str | None = None,
    registry: str | None = None,
) -> MCPServer:
    """Turn a metadata entry into an MCPServer (the same resource the operator reconciles).

    `name` lets a deploy use another runtime name while keeping this entry's tool inventory.
    """
    server_name = name or meta.name
    prefix = (meta.route or f"/{server_name}").strip("/")
    if name and name != meta.name and meta.route == f"/{meta.name}":
        prefix = server_name
    shared = {name: getattr(meta, name) for name in ServerDefinition.model_fields}
    spec = MCPServerSpec(**{**shared, "team_id": team_id or meta.team_id,
                            "image": meta.resolved_image(team_slug=team_slug, registry=registry),
                            "public_path_prefix": prefix})
    return MCPServer(
        metadata=ObjectMeta(name=server_name, namespace=namespace or meta.resolved_namespace(team_slug)),
        spec=spec,
    )
