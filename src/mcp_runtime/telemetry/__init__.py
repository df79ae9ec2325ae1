"""OpenTelemetry traces, off unless configured: the exporter setup and W3C trace-context helpers.

Shared by the gateway, the adapter proxy and the platform API (none of them imports another), so it
imports nothing else of ours. Nothing here touches the global tracer provider: each component gets
its own provider (its own `service.name`), which keeps `mcp-runtime up` (platform and gateway in one
process) and the tests free of process-wide state.
"""

from mcp_runtime.telemetry.context import extract_context, inject_headers, meta_context
from mcp_runtime.telemetry.setup import Telemetry, open_telemetry, traces_endpoint

__all__ = ["Telemetry", "extract_context", "inject_headers", "meta_context", "open_telemetry", "traces_endpoint"]
