"""A CLIENT span per request the adapter proxy forwards, when traces are exported (`--otlp-endpoint`).

Its parent is the MCP client's: the `traceparent` header, else the first message's `params._meta`
(where the MCP SDKs put it); the runtime gets the adapter's span as its parent in the `traceparent`
header (the gateway takes the header before `_meta`). Tracing off: the proxy forwards the client's
`traceparent` and `tracestate` headers as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind

from mcp_runtime.telemetry import extract_context, meta_context
from mcp_runtime.telemetry.context import span_fields

if TYPE_CHECKING:
    from mcp_runtime.telemetry import Telemetry


class AdapterTracing:
    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.tracer = telemetry.tracer("mcp_runtime.adapter")

    @contextlib.contextmanager
    def span(self, method: str, messages: list[dict[str, Any]], headers: dict[str, str]) -> Iterator[dict[str, str]]:
        """The span of one forwarded request; yields `headers` with its trace context."""
        first = messages[0] if messages else {}
        parent = extract_context(headers) or meta_context(first)
        rpc_method = first.get("method") if len(messages) == 1 else None
        params = first.get("params")
        tool = params.get("name") if rpc_method == "tools/call" and isinstance(params, dict) else None
        attributes: dict[str, Any] = {"http.request.method": method}
        if isinstance(rpc_method, str):
            attributes["mcp.method.name"] = rpc_method
            if "id" in first:
                attributes["jsonrpc.request.id"] = str(first["id"])
        if isinstance(tool, str):
            attributes["gen_ai.tool.name"] = tool
        name = " ".join(str(p) for p in (rpc_method or method, tool) if isinstance(p, str))[:160]
        with self.tracer.start_as_current_span(name, context=parent, kind=SpanKind.CLIENT,
                                               attributes=attributes) as span:
            traced = {k: v for k, v in headers.items() if k not in ("traceparent", "tracestate")}
            traced.update(span_fields(span))
            yield traced

    def shutdown(self) -> None:
        self.telemetry.shutdown()
