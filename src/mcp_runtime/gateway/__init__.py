"""The mcp-gateway: authenticate, authorize, forward and audit every MCP request to a server.

`Gateway` is a raw ASGI app with one `GatewayRoute` per governed server: the sidecar mounts one route
at `/mcp`, the process runtime one per server at `/<server>/mcp`.
"""

from mcp_runtime.gateway.app import MAX_BODY, Gateway
from mcp_runtime.gateway.keys_source import JwksFile
from mcp_runtime.gateway.metrics import GatewayMetrics
from mcp_runtime.gateway.policy_source import FilePolicySource, InProcessPolicySource, PolicySource
from mcp_runtime.gateway.routes import GatewayRoute, RouteTable

__all__ = [
    "MAX_BODY", "FilePolicySource", "Gateway", "GatewayMetrics", "GatewayRoute", "InProcessPolicySource", "JwksFile",
    "PolicySource", "RouteTable",
]
