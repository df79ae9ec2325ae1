"""The gateway's spans, exported to a real OTLP/HTTP receiver, and the context it hands the upstream.

A real gateway (uvicorn, the request path) in front of a recording upstream; tracing on through
`open_telemetry` as `gateway run --otlp-endpoint` does it. The whole agent -> adapter -> gateway ->
server trace is tests/e2e/test_tracing_up.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fixtures.gateway import EchoUpstream, serve_app, standard_kit
from fixtures.otlp_receiver import ReceivedSpan, Receiver, otlp_receiver
from mcp_runtime.gateway import Gateway, GatewayRoute, InProcessPolicySource
from mcp_runtime.telemetry import open_telemetry, traces_endpoint

JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
ERROR = 2


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, EchoUpstream, Receiver, Any]]:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    kit = standard_kit()
    upstream_app = EchoUpstream()
    with otlp_receiver() as receiver, serve_app(upstream_app) as upstream:
        telemetry = open_telemetry("mcp-gateway", traces_endpoint(receiver.url))
        gateway = Gateway([GatewayRoute(upstream=upstream + "/mcp", policy=InProcessPolicySource(kit.document()),
                                        keys=kit.keyring.public_keys(), path="/mcp")], telemetry=telemetry)
        with serve_app(gateway) as base:
            yield base + "/mcp", upstream_app, receiver, kit


def _gateway_spans(receiver: Receiver, count: int) -> list[ReceivedSpan]:
    return receiver.wait_for(lambda spans: len([s for s in spans if s.service == "mcp-gateway"]) >= count, 15)


def test_the_caller_s_context_is_the_parent_and_the_upstream_gets_the_gateway_s(traced: Any) -> None:
    url, upstream, receiver, kit = traced
    auth = {**JSON, "Authorization": f"Bearer {kit.token('s-cursor', 'cursor')}",
            "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01", "mcp-session-id": "sess-1"}
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "hi"}, "_meta": {"traceparent": "00-" + "1" * 32 +
                                                                                 "-" + "2" * 16 + "-01"}}}
    with httpx.Client(timeout=5) as client:
        assert client.post(url, headers=auth, json=call).status_code == 200
    span = _gateway_spans(receiver, 1)[0]
    assert (span.trace_id, span.parent_span_id) == (CLIENT_TRACE, CLIENT_SPAN)  # the header wins over _meta
    assert span.name == "tools/call echo" and span.kind == 2
    assert span.attributes["mcp.session.id"] == "sess-1"
    assert span.attributes["mcp_runtime.decision"] == "allow"
    assert span.attributes["mcp_runtime.decision.grant"] == "g-cursor"
    sent = upstream.requests[-1]
    header = sent["headers"]["traceparent"][0]
    meta = json.loads(sent["body"])["params"]["_meta"]["traceparent"]
    assert header == meta == f"00-{CLIENT_TRACE}-{span.span_id}-01"  # the gateway's span is the server's parent
    assert json.loads(sent["body"])["params"]["arguments"] == {"text": "hi"}


def test_a_batch_without_a_header_takes_meta_and_denials_are_errors(traced: Any) -> None:
    url, upstream, receiver, kit = traced
    auth = {**JSON, "Authorization": f"Bearer {kit.token('s-claude', 'claude', trust='low')}"}
    parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
              "params": {"name": "echo", "arguments": {"text": "ok"}, "_meta": {"traceparent": parent}}},
             {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "add", "arguments": {}}}]
    with httpx.Client(timeout=5) as client:
        assert client.post(url, headers=auth, json=batch).status_code == 200
        assert client.post(url, headers=JSON, json=batch[1]).status_code == 401  # no token
    spans = _gateway_spans(receiver, 2)
    batch_span = next(s for s in spans if s.name == "POST")
    assert (batch_span.trace_id, batch_span.parent_span_id) == ("a" * 32, "b" * 16)
    assert batch_span.attributes["jsonrpc.batch.size"] == 2
    assert batch_span.attributes["mcp_runtime.decision"] == "deny"
    assert batch_span.status_code == ERROR and batch_span.attributes["error.type"] == "tool_not_granted"
    forwarded = json.loads(upstream.requests[-1]["body"])
    assert [m["id"] for m in forwarded] == [1]  # only the allowed call, its _meta naming the gateway's span
    assert forwarded[0]["params"]["_meta"]["traceparent"] == f"00-{'a' * 32}-{batch_span.span_id}-01"
    refused = next(s for s in spans if s.name == "tools/call add")
    assert refused.parent_span_id == "" and refused.status_code == ERROR
    assert refused.attributes["http.response.status_code"] == 401


def test_tracing_is_off_without_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    assert traces_endpoint(None) is None and open_telemetry("mcp-gateway", None) is None
    assert Gateway().request_path.tracing is None
    assert traces_endpoint("http://collector:4318/") == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otel.example.com")
    assert traces_endpoint(None) == "https://otel.example.com/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://otel.example.com/custom")
    assert traces_endpoint(None) == "https://otel.example.com/custom"
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert traces_endpoint(None) is None
    with pytest.raises(ValueError, match="http"):
        traces_endpoint("collector:4318")


def test_client_values_on_a_span_are_bounded(traced: Any) -> None:
    url, _, receiver, kit = traced
    auth = {**JSON, "Authorization": f"Bearer {kit.token('s-cursor', 'cursor')}", "mcp-session-id": "s" * 4000}
    call = {"jsonrpc": "2.0", "id": "i" * 5000, "method": "tools/call", "params": {"name": "t" * 5000}}
    with httpx.Client(timeout=5) as client:
        assert client.post(url, headers=auth, json=call).status_code == 200
    span = _gateway_spans(receiver, 1)[0]
    for name in ("mcp.session.id", "jsonrpc.request.id", "gen_ai.tool.name"):
        assert len(span.attributes[name]) == 512, name
    assert len(span.name) == 160
