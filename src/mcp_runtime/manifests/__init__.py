"""The one manifest renderer shared by the podman runtime (`podman kube play`) and the operator.

Pure functions of resources and options: no I/O, same input -> same dicts.
"""

from mcp_runtime.manifests.common import (
    APP_CONTAINER,
    GATEWAY_CONTAINER,
    RESERVED_ENV,
    RenderError,
    policy_configmap_name,
    resource_url,
    route_path,
    selector_labels,
    server_labels,
)
from mcp_runtime.manifests.images import has_registry_host, qualify_image
from mcp_runtime.manifests.names import label_value, object_name
from mcp_runtime.manifests.options import (
    OwnerReference,
    RenderOptions,
    SecretKey,
    TeamNamespaceOptions,
    owner_reference_for,
)
from mcp_runtime.manifests.pod import gateway_upstream
from mcp_runtime.manifests.server import RenderedServer, render_jwks_configmap, render_server
from mcp_runtime.manifests.team import (
    TEAM_MEMBER_ROLE,
    TEAM_OWNER_ROLE,
    TeamNamespace,
    check_team_slug,
    render_cluster_roles,
    render_team_namespace,
)

__all__ = [
    "APP_CONTAINER", "GATEWAY_CONTAINER", "RESERVED_ENV", "TEAM_MEMBER_ROLE", "TEAM_OWNER_ROLE",
    "OwnerReference", "RenderError", "RenderOptions", "RenderedServer", "SecretKey", "TeamNamespace",
    "TeamNamespaceOptions", "check_team_slug", "gateway_upstream", "has_registry_host", "label_value",
    "object_name", "owner_reference_for", "policy_configmap_name", "qualify_image", "render_cluster_roles",
    "render_jwks_configmap", "render_server", "render_team_namespace", "resource_url", "route_path", "selector_labels",
    "server_labels",
]
