"""W3C trace context (`traceparent`, `tracestate`) in HTTP headers and in MCP's `params._meta`.

The MCP SDKs carry the context in each request's `_meta` (SEP-414) and read it from there on the
server side; HTTP hops carry the `traceparent` header. A hop that makes its own span (the adapter
proxy, the gateway) takes its parent from the header first, then from the first message's `_meta`,
and hands its own context on in both places.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import Span, get_current_span, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
TRACE_HEADERS = (b"traceparent", b"tracestate")


def extract_context(carrier: Mapping[str, Any]) -> Context | None:
    """The remote parent in `carrier` (`traceparent`, `tracestate` keys), or None if there is no valid one."""
    parent = carrier.get("traceparent")
    if not isinstance(parent, str):
        return None
    fields = {"traceparent": parent}
    state = carrier.get("tracestate")
    if isinstance(state, str):
        fields["tracestate"] = state
    context = _PROPAGATOR.extract(fields)
    return context if get_current_span(context).get_span_context().is_valid else None


def meta_context(message: Mapping[str, Any]) -> Context | None:
    """The parent a JSON-RPC message carries in `params._meta`, if any."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return extract_context(meta) if isinstance(meta, dict) else None


def span_fields(span: Span) -> dict[str, str]:
    """`traceparent` (and `tracestate`) naming `span` as the parent."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=set_span_in_context(span))
    return carrier


def inject_headers(headers: Iterable[tuple[bytes, bytes]], span: Span) -> list[tuple[bytes, bytes]]:
    """`headers` with any trace context replaced by `span`'s."""
    out = [(k, v) for k, v in headers if k not in TRACE_HEADERS]
    out += [(k.encode(), v.encode()) for k, v in span_fields(span).items()]
    return out


def inject_meta(message: dict[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    """A copy of a JSON-RPC request whose `params._meta` carries `fields` (the input is not changed)."""
    params = message.get("params")
    if params is not None and not isinstance(params, dict):
        return message  # positional params (not MCP): nowhere to put `_meta`
    params = dict(params) if params is not None else {}
    meta = params.get("_meta")
    meta = dict(meta) if isinstance(meta, dict) else {}
    meta.pop("tracestate", None)
    meta.update(fields)
    params["_meta"] = meta
    return {**message, "params": params}
