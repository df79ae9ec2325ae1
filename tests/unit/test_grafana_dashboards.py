"""The Grafana dashboards in deploy/grafana: valid JSON, only metrics the gateway exposes (with their
labels), and ClickHouse SQL that runs against the real analytics table (chdb, in process)."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from mcp_runtime.gateway.metrics import GatewayMetrics
from mcp_runtime.sentinel.clickhouse_store import ChdbExecutor, ClickHouseEventStore
from mcp_runtime.sentinel.emitter import EmitterMetrics
from mcp_runtime.sentinel.events import AnalyticsEvent

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
GATEWAY = GRAFANA / "mcp-runtime-gateway.json"
ANALYTICS = GRAFANA / "mcp-runtime-analytics-clickhouse.json"


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert data["uid"] and data["title"] and data["panels"]
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    return data  # type: ignore[no-any-return]


def _exposed() -> dict[str, set[str]]:
    """Every sample name a gateway's /metrics can show, with its labels."""
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    EmitterMetrics(registry)
    metrics.count_request("payments", "tools/call", 200)
    metrics.count_decision("payments", False, "tool_not_granted")
    metrics.observe_duration("payments", 0.01)
    metrics.inflight_for("payments").inc()
    metrics.count_reload("payments", True)
    metrics.upstream_errors.labels("payments").inc()
    exposed: dict[str, set[str]] = {}
    for family in registry.collect():
        for sample in family.samples:
            exposed.setdefault(sample.name, set()).update(sample.labels)
    return exposed


def test_gateway_dashboard_queries_only_metrics_and_labels_the_gateway_exposes() -> None:
    dashboard = _load(GATEWAY)
    exposed = _exposed()
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    expressions += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    seen: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            names = set(re.findall(r"\b(mcp_[a-z0-9_]+)", expr))
            assert names, expr
            unknown = names - set(exposed)
            assert not unknown, f"{panel['title']}: not exposed by the gateway: {unknown}"
            labels = set().union(*(exposed[n] for n in names)) | {"le"}
            used = set(re.findall(r"(\w+)\s*(?:=~|!=|!~|=)\s*\"", expr))
            for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
                used |= {label.strip() for label in group.split(",") if label.strip()}
            used |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            assert used <= labels, f"{panel['title']}: unknown labels {used - labels}"
            seen |= names
    # the dashboard covers every family the gateway and its emitter export
    families = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in exposed}
    covered = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in seen}
    assert families <= covered, f"metrics without a panel: {families - covered}"
    for definition in expressions:
        assert set(re.findall(r"\b(mcp_[a-z0-9_]+)", definition)) <= set(exposed)


@pytest.fixture(scope="module")
def clickhouse() -> Iterator[ClickHouseEventStore]:
    with tempfile.TemporaryDirectory(prefix="chdb-grafana-") as path:
        executor = ChdbExecutor(path)
        store = ClickHouseEventStore(executor)  # the default database and table, as deployed
        now = datetime.now(UTC)
        store.insert([
            AnalyticsEvent(server="payments", namespace="mcp-team-acme", rpc_method="tools/call", tool_name=tool,
                           decision=decision, reason=reason, status=200, latency_ms=2.5, human_id="bob@globex.com",
                           agent_id="cursor", team_id="acme-uuid", subject_team_id="globex-uuid",
                           timestamp=now - timedelta(minutes=i + 1))
            for i, (tool, decision, reason) in enumerate([("echo", "allow", "allowed"), ("add", "allow", "allowed"),
                                                          ("reverse", "deny", "tool_not_granted")])])
        yield store
        executor.close()


def _grafana_sql(sql: str) -> str:
    """The SQL the ClickHouse data source sends, for a 24 h range and server=payments."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)", r"(\1 >= now() - INTERVAL 1 DAY AND \1 <= now())", sql)
    sql = re.sub(r"\$__timeInterval\((\w+)\)", r"toStartOfInterval(\1, INTERVAL 60 second)", sql)
    sql = sql.replace("${server:singlequote}", "'payments'")
    assert "$" not in sql, f"a macro the test does not know: {sql}"
    return sql


def test_clickhouse_dashboard_sql_runs_against_the_events_table(clickhouse: ClickHouseEventStore) -> None:
    dashboard = _load(ANALYTICS)
    queries = [(p["title"], t["rawSql"]) for p in dashboard["panels"] for t in p["targets"]]
    queries += [(v["name"], v["query"]) for v in dashboard["templating"]["list"] if v["type"] == "query"]
    results = {}
    for title, sql in queries:
        assert "mcp_runtime.sentinel_events" in sql, title
        results[title] = clickhouse.executor.query(_grafana_sql(sql), {})
    assert [int(v) for v in results["Requests"][0]] == [3]
    assert [int(v) for v in results["Denied"][0]] == [1]
    table = results["Tools (who called what, from which team)"]
    tools = {(r[1], r[2], r[3], r[4], int(r[5]), int(r[6])) for r in table}
    assert ("reverse", "bob@globex.com", "globex-uuid", "cursor", 1, 1) in tools
    assert [r[0] for r in results["server"]] == ["payments"]
