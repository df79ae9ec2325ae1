"""Pydantic models of MCPServer, MCPAccessGrant, MCPAgentSession and `.mcp` metadata.

The single source of truth for schemas: CRDs, API models and CLI validation derive from here.
No I/O happens in this package.
"""

from mcp_runtime.resources.access import (
    AccessGrantSpec,
    AccessStatus,
    AgentSessionSpec,
    GrantPhase,
    MCPAccessGrant,
    MCPAgentSession,
    SessionPhase,
    ToolRule,
)
from mcp_runtime.resources.common import (
    API_GROUP,
    API_VERSION,
    DEFAULT_NAMESPACE,
    GROUP_VERSION,
    ORG_NAMESPACE,
    PUBLIC_NAMESPACE,
    CamelModel,
    Condition,
    ConditionStatus,
    ObjectMeta,
    PolicyMode,
    RiskLevel,
    RolloutStrategy,
    Scope,
    SecretKeyRef,
    ServerRef,
    SideEffect,
    Subject,
    ToolDecision,
    Trust,
    parse_duration,
    team_namespace,
)
from mcp_runtime.resources.io import (
    KINDS,
    Resource,
    ResourceError,
    describe_validation_error,
    dump_resource,
    load_resource,
    load_resources,
    load_servers_file,
    parse_yaml,
    to_yaml,
    validate_model,
)
from mcp_runtime.resources.metadata import (
    ServerMetadata,
    ServersFile,
    metadata_to_server,
    normalize_route,
    scope_image_prefix,
    scope_namespace,
)
from mcp_runtime.resources.server import (
    AnalyticsSpec,
    AuthSpec,
    GatewaySpec,
    MCPServer,
    MCPServerSpec,
    MCPServerStatus,
    PolicySpec,
    RunSpec,
    ServerPhase,
    SessionSpec,
    ToolSpec,
    image_has_tag,
)

__all__ = [
    "API_GROUP", "API_VERSION", "DEFAULT_NAMESPACE", "GROUP_VERSION", "KINDS", "ORG_NAMESPACE",
    "PUBLIC_NAMESPACE", "AccessGrantSpec", "AccessStatus", "AgentSessionSpec", "AnalyticsSpec",
    "AuthSpec", "CamelModel", "Condition", "ConditionStatus", "GatewaySpec", "GrantPhase",
    "MCPAccessGrant", "MCPAgentSession", "MCPServer", "MCPServerSpec", "MCPServerStatus",
    "ObjectMeta", "PolicyMode", "PolicySpec", "Resource", "ResourceError", "RiskLevel",
    "RolloutStrategy", "RunSpec", "Scope", "SecretKeyRef", "ServerMetadata", "ServerPhase",
    "ServerRef", "ServersFile", "SessionPhase", "SessionSpec", "SideEffect", "Subject",
    "ToolDecision", "ToolRule", "ToolSpec", "Trust", "describe_validation_error", "dump_resource",
    "image_has_tag", "load_resource", "load_resources", "load_servers_file", "metadata_to_server",
    "normalize_route", "parse_duration", "parse_yaml", "scope_image_prefix", "scope_namespace",
    "team_namespace", "to_yaml", "validate_model",
]
