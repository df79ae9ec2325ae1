"""Names, labels and metadata shared by every object the renderer builds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp_runtime.manifests.names import label_value, object_name
from mcp_runtime.manifests.options import RenderOptions
from mcp_runtime.resources import MCPServer

Manifest = dict[str, Any]

APP_CONTAINER = "mcp-server"
GATEWAY_CONTAINER = "mcp-gateway"
POLICY_KEY = "policy.json"
INGEST_KEY_FILE = "api-key"
MANAGED_BY = "mcp-runtime"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_SERVER = "mcpruntime.org/server"
LABEL_TEAM = "mcpruntime.org/team"
LABEL_TRACK = "mcpruntime.org/track"
ANNOTATION_TEAM_ID = "mcpruntime.org/team-id"
ANNOTATION_POLICY_REVISION = "mcpruntime.org/policy-revision"
ANNOTATION_IMAGE = "mcpruntime.org/image"

RESERVED_ENV = ("PORT", "MCP_PATH")
"""Set from `spec.port` and `spec.ingressPath`; the probes, the sidecar and the route depend on them."""

TRACK_STABLE = "stable"
TRACK_CANARY = "canary"


class RenderError(ValueError):
    """The server cannot be rendered as asked; the message says which field to change."""


@dataclass(frozen=True)
class RenderContext:
    """Values derived once per render and shared by the object builders."""

    server: MCPServer
    options: RenderOptions
    name: str
    namespace: str
    path: str
    labels: dict[str, str]
    annotations: dict[str, str]


def server_labels(server: MCPServer, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The standard labels of every object of a server (team label only when it has a team)."""
    labels = dict(extra or {})
    labels.update({
        LABEL_NAME: label_value(server.name),
        LABEL_INSTANCE: label_value(server.name),
        LABEL_COMPONENT: "mcp-server",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_SERVER: label_value(server.name),
    })
    if server.spec.team_id:
        labels[LABEL_TEAM] = label_value(server.spec.team_id)
    return labels


def selector_labels(server: MCPServer, track: str | None = None) -> dict[str, str]:
    """Labels the Service (all tracks) and each Deployment (its track) select on. Never change them:
    Deployment selectors are immutable."""
    selector = {LABEL_INSTANCE: label_value(server.name), LABEL_SERVER: label_value(server.name)}
    if track is not None:
        selector[LABEL_TRACK] = track
    return selector


def object_metadata(ctx: RenderContext, name: str, *, labels: dict[str, str] | None = None,
                    annotations: dict[str, str] | None = None) -> Manifest:
    """Name, namespace, labels (the server's unless given), annotations and the owner reference."""
    meta: Manifest = {"name": name, "namespace": ctx.namespace, "labels": dict(labels or ctx.labels)}
    merged = {**ctx.annotations, **(annotations or {})}
    if merged:
        meta["annotations"] = merged
    if ctx.options.owner_reference is not None:
        meta["ownerReferences"] = [ctx.options.owner_reference.to_dict()]
    return meta


def policy_configmap_name(server_name: str) -> str:
    return object_name(server_name, "-policy")


def gateway_service_account_name(server_name: str) -> str:
    return object_name(server_name, "-gateway")


def route_path(server: MCPServer) -> str:
    """The ingress path, which is also the path the app listens on (`MCP_PATH`)."""
    spec = server.spec
    return spec.ingress_path or f"/{spec.public_path_prefix or server.name}/mcp"


def resource_url(server: MCPServer, options: RenderOptions) -> str | None:
    """The server's OAuth resource URI (its public URL), or None when the sidecar is not an OAuth resource:
    no issuer, or neither a host of its own nor a public base URL to put the path under."""
    if not options.oauth_issuer:
        return None
    path = route_path(server)
    if server.spec.ingress_host:
        return f"{'https' if options.tls_enabled else 'http'}://{server.spec.ingress_host}{path}"
    if options.public_url:
        return options.public_url.rstrip("/") + path
    return None
