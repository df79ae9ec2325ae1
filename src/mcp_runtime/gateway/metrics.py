"""Prometheus metrics of one gateway process, in its own registry (tests run several gateways)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class InFlight:
    """Requests of one server being handled now: a plain count the request path bumps and `/metrics` reads.

    Not a Gauge child's `inc()`/`dec()`: those take a lock twice per request, and the gateway counts from
    its one event loop thread.
    """

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def inc(self) -> None:
        self.count += 1

    def dec(self) -> None:
        self.count -= 1

    def value(self) -> float:
        return float(self.count)


class GatewayMetrics:
    """Requests, decisions by reason, durations, in-flight requests and policy reloads, per server."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter("mcp_gateway_requests", "HTTP requests answered, by server, method and status.",
                                ["server", "method", "status"], registry=self.registry)
        self.decisions = Counter("mcp_gateway_decisions", "Policy decisions, by server, decision and reason.",
                                 ["server", "decision", "reason"], registry=self.registry)
        self.duration = Histogram("mcp_gateway_request_duration_seconds",
                                  "Time from request received to response finished.", ["server"],
                                  buckets=_BUCKETS, registry=self.registry)
        self.inflight = Gauge("mcp_gateway_inflight_requests", "Requests being handled now.", ["server"],
                              registry=self.registry)
        self.reloads = Counter("mcp_gateway_policy_reloads", "Policy loads, by server and result (ok|error).",
                               ["server", "result"], registry=self.registry)
        self.upstream_connections = Gauge("mcp_gateway_upstream_connections",
                                          "Connections to the upstream open now (in use or idle), per server.",
                                          ["server"], registry=self.registry)
        self.upstream_errors = Counter("mcp_gateway_upstream_errors",
                                       "Requests the upstream could not answer.", ["server"],
                                       registry=self.registry)
        self._children: dict[tuple[str, ...], object] = {}

    # Labelled children are cached: `labels()` costs more than the increment itself.
    def count_request(self, server: str, method: str, status: int) -> None:
        key = ("r", server, method, str(status))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(server, method, str(status))
        child.inc()  # type: ignore[attr-defined]

    def count_decision(self, server: str, allowed: bool, reason: str) -> None:
        key = ("d", server, reason, "a" if allowed else "d")
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.decisions.labels(server, "allow" if allowed else "deny", reason)
        child.inc()  # type: ignore[attr-defined]

    def observe_duration(self, server: str, seconds: float) -> None:
        key = ("h", server)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.duration.labels(server)
        child.observe(seconds)  # type: ignore[attr-defined]

    def inflight_for(self, server: str, upstream: object = None) -> InFlight:
        """The in-flight count of `server`; the first call also exports its upstream's open connections
        (`open_connections`, when the upstream keeps a pool) so leaks show on /metrics."""
        key = ("i", server)
        count = self._children.get(key)
        if count is None:
            count = self._children[key] = InFlight()
            self.inflight.labels(server).set_function(count.value)
            connections = getattr(upstream, "open_connections", None)
            if connections is not None:
                self.upstream_connections.labels(server).set_function(
                    lambda: float(getattr(upstream, "open_connections", 0)))
        return count  # type: ignore[return-value]

    def count_reload(self, server: str, ok: bool) -> None:
        self.reloads.labels(server, "ok" if ok else "error").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
