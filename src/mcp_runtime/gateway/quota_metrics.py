"""Prometheus metrics of quota use, read from the routes' limiters when `/metrics` is scraped.

Per server and limit (the evaluator's scope: `server`, `grant/<name>`, `grant/<name>/tool/<tool>`), for
the current UTC day of this replica: the calls counted, the quota, the largest share one key used
(alert on it), and how many keys counted. Keys themselves (agents, humans) are not labels: their
number is unbounded; `analytics usage` shows them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mcp_runtime.gateway.routes import BoundRoute


class QuotaCollector(Collector):
    def __init__(self, routes: Callable[[], Iterable[BoundRoute]], clock: Callable[[], datetime]) -> None:
        self.routes = routes
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["server", "limit"]
        used = GaugeMetricFamily("mcp_gateway_quota_calls_today",
                                 "Calls counted today (UTC) against a daily quota, all keys, by server and limit.",
                                 labels=labels)
        quota = GaugeMetricFamily("mcp_gateway_quota_limit", "Calls per day a quota allows each key.", labels=labels)
        ratio = GaugeMetricFamily("mcp_gateway_quota_max_used_ratio",
                                  "The largest share of its daily quota one key has used today (0-1).", labels=labels)
        keys = GaugeMetricFamily("mcp_gateway_quota_keys_today", "Keys (callers) counted today against a quota.",
                                 labels=labels)
        day = self.clock().date()
        for route in self.routes():
            for (scope, per_day), (total, most, count) in route.limiter.quota_use(day).items():
                values = [route.server, scope]
                used.add_metric(values, total)
                quota.add_metric(values, per_day)
                ratio.add_metric(values, most / per_day if per_day else 0.0)
                keys.add_metric(values, count)
        yield from (used, quota, ratio, keys)
