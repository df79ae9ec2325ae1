"""The stdio bridge: serves a stdio MCP server over Streamable HTTP, one process per MCP session.

`mcp-runtime bridge stdio --port N -- CMD ARGS...` runs it; the process runtime, podman and Kubernetes
all start stdio servers through that one entrypoint, so the gateway in front sees an ordinary
Streamable HTTP server.
"""

from mcp_runtime.bridge.app import BridgeConfig, StdioBridge
from mcp_runtime.bridge.child import StdioChild
from mcp_runtime.bridge.session import SERVER_EXITED

__all__ = ["SERVER_EXITED", "BridgeConfig", "StdioBridge", "StdioChild"]
