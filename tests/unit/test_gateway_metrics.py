"""What `/metrics` says about requests being handled right now."""

from __future__ import annotations

from mcp_runtime.gateway.metrics import GatewayMetrics


def test_inflight_requests_are_reported_per_server_while_they_run() -> None:
    metrics = GatewayMetrics()
    payments = metrics.inflight_for("payments")
    assert metrics.inflight_for("payments") is payments  # one count per server
    payments.inc()
    payments.inc()
    metrics.inflight_for("search").inc()
    text = metrics.render().decode()
    assert 'mcp_gateway_inflight_requests{server="payments"} 2.0' in text
    assert 'mcp_gateway_inflight_requests{server="search"} 1.0' in text
    payments.dec()
    payments.dec()
    assert 'mcp_gateway_inflight_requests{server="payments"} 0.0' in metrics.render().decode()
