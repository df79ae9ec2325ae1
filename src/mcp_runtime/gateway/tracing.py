"""One OpenTelemetry span per governed request, with the MCP semantic conventions.

Off unless configured (`gateway run --otlp-endpoint`, `OTEL_EXPORTER_OTLP_ENDPOINT`): then
`RequestPath.tracing` is None and the request path pays three `is not None` tests per request (begin,
forward, end) and one empty slot of the `Exchange`.

When on, the span (kind SERVER, named `tools/call add` as the conventions say) starts when the request
arrives. Its parent is the caller's: the `traceparent` header (the adapter proxy sets it), else the
first message's `params._meta` (where the MCP SDKs put it). It is created lazily, when the request is
forwarded or over, so the parent in `_meta` is known; its start time is the arrival. Forwarded
requests carry the gateway span as their parent in both places, so the server's own span (the SDK's,
from `_meta`) is the gateway's child. When the request is over the span gets the decision, the reason
and the status; a denial, a refusal or an upstream failure sets the span's status to ERROR.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanKind, StatusCode

from mcp_runtime.gateway import jsonrpc
from mcp_runtime.telemetry import extract_context, meta_context
from mcp_runtime.telemetry.context import inject_headers, inject_meta, span_fields

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span

    from mcp_runtime.gateway.exchange import Exchange
    from mcp_runtime.telemetry import Telemetry

TRACER = "mcp_runtime.gateway"
NAME_LIMIT = 160
"""Longest span name (method and tool come from the client; attributes are bounded by the provider)."""


class GatewayTracing:
    """The gateway's tracer; makes a `RequestSpan` per request."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.tracer = telemetry.tracer(TRACER)

    def request(self) -> RequestSpan:
        return RequestSpan(self, time.time_ns())

    def shutdown(self) -> None:
        self.telemetry.shutdown()


class RequestSpan:
    """The span of one request: started lazily (with the arrival time), ended by `end`."""

    __slots__ = ("span", "start_ns", "tracing")

    def __init__(self, tracing: GatewayTracing, start_ns: int) -> None:
        self.tracing = tracing
        self.start_ns = start_ns
        self.span: Span | None = None

    def ensure(self, ex: Exchange) -> Span:
        span = self.span
        if span is None:
            method, tool = _target(ex)
            name = f"{method} {tool}"[:NAME_LIMIT] if tool else method[:NAME_LIMIT]  # the client's text: bounded
            span = self.tracing.tracer.start_span(name, context=_parent(ex), kind=SpanKind.SERVER,
                                                  start_time=self.start_ns, attributes=_request_attributes(ex))
            self.span = span
            # the analytics event names the trace it belongs to
            ex.trace_id = format(span.get_span_context().trace_id, "032x")
        return span

    def propagate(self, ex: Exchange, headers: list[tuple[bytes, bytes]],
                  body: bytes | None) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
        """Headers and body for the upstream with this span as the parent (header and each request's `_meta`)."""
        span = self.ensure(ex)
        headers = inject_headers(headers, span)
        if body is None or not ex.forward:
            return headers, body
        fields = span_fields(span)
        raws = [inject_meta(m.raw, fields) if m.is_request else m.raw for m in ex.forward]
        return headers, jsonrpc.dumps(raws if ex.is_batch else raws[0])

    def end(self, ex: Exchange) -> None:
        span = self.ensure(ex)
        span.set_attributes(_outcome_attributes(ex))
        reason = _refusal_reason(ex)
        if reason is not None:
            span.set_attribute("error.type", reason)
            span.set_status(StatusCode.ERROR, reason)
        span.end()


def _parent(ex: Exchange) -> Context | None:
    if ex.traceparent is not None:
        state = dict(ex.scope["headers"]).get(b"tracestate")
        carrier = {"traceparent": ex.traceparent.decode("latin-1")}
        if state is not None:
            carrier["tracestate"] = state.decode("latin-1")
        context = extract_context(carrier)
        if context is not None:
            return context
    return meta_context(ex.messages[0].raw) if ex.messages else None


def _target(ex: Exchange) -> tuple[str, str | None]:
    """The span's method and tool: the message's for one message, else the HTTP method (GET, DELETE, batches)."""
    if len(ex.messages) == 1:
        msg = ex.messages[0]
        return msg.method or "response", msg.tool
    return str(ex.scope["method"]), None


def _request_attributes(ex: Exchange) -> dict[str, Any]:
    route = ex.route
    attributes: dict[str, Any] = {
        "http.request.method": str(ex.scope["method"]),
        "url.path": str(ex.scope.get("path", "")),
        "mcp_runtime.server": route.server,
        "mcp_runtime.namespace": route.namespace,
    }
    session = dict(ex.scope["headers"]).get(b"mcp-session-id")
    if session is not None:
        attributes["mcp.session.id"] = session.decode("latin-1")
    if ex.doc is not None:
        attributes["mcp_runtime.policy.revision"] = ex.doc.revision
    if len(ex.messages) == 1:
        msg = ex.messages[0]
        if msg.method is not None:
            attributes["mcp.method.name"] = msg.method
        if msg.has_id:
            attributes["jsonrpc.request.id"] = str(msg.id)
        if msg.tool is not None:
            attributes["gen_ai.tool.name"] = msg.tool
            attributes["gen_ai.operation.name"] = "execute_tool"
    elif ex.messages:
        attributes["jsonrpc.batch.size"] = len(ex.messages)
    return attributes


def _outcome_attributes(ex: Exchange) -> dict[str, Any]:
    """What was decided and answered: one decision for a single message, the first denial of a batch."""
    attributes: dict[str, Any] = {"http.response.status_code": ex.status}
    caller = ex.caller
    if caller is not None:
        claims = caller.claims
        attributes["mcp_runtime.agent_session.id"] = claims.session_id
        if claims.agent_id:
            attributes["mcp_runtime.agent.id"] = claims.agent_id
    decisions = [d for d in ex.decisions if d is not None]
    if decisions:
        denied = next((d for d in decisions if not d.allowed), None)
        decision = denied or decisions[0]
        attributes["mcp_runtime.decision"] = "allow" if denied is None else "deny"
        attributes["mcp_runtime.decision.reason"] = str(decision.reason)
        if decision.matched_grant:
            attributes["mcp_runtime.decision.grant"] = decision.matched_grant
    elif ex.denied_reason:
        attributes["mcp_runtime.decision"] = "deny"
        attributes["mcp_runtime.decision.reason"] = ex.denied_reason
    return attributes


def _refusal_reason(ex: Exchange) -> str | None:
    """Why the request counts as an error on the trace: a denial, a refusal, or a failed answer."""
    for decision in ex.decisions:
        if decision is not None and not decision.allowed:
            return str(decision.reason)
    if ex.denied_reason:
        return ex.denied_reason
    if ex.status >= 400:
        return str(ex.status)
    return None
