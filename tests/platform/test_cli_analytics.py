"""`mcp-runtime analytics tools|events|usage` against a live platform, as the tutorial's step 8 uses them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from platform_support import World

from mcp_runtime.sentinel.events import AnalyticsEvent

Cli = Callable[..., Any]
ACME_NS = "mcp-team-acme"


def _ingest(world: World, events: list[AnalyticsEvent]) -> None:
    live = world.live
    answer = live.call("POST", "/ingest/events", token=live.platform.ingest_keys.local_key,
                       json={"events": [json.loads(e.model_dump_json()) for e in events]})
    assert answer.status_code == 202, answer.text


def _bob_call(world: World, server: str, tool: str, decision: str = "allow") -> AnalyticsEvent:
    return AnalyticsEvent(server=server, namespace=ACME_NS, rpc_method="tools/call", tool_name=tool,
                          decision=decision, reason="allowed" if decision == "allow" else "tool_not_granted",
                          status=200, latency_ms=3.0, human_id="bob@globex.com", agent_id="cursor",
                          team_id=world.teams["acme"]["id"], subject_team_id=world.teams["globex"]["id"])


def _process_env(extra: dict[str, str]) -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": src, "NO_COLOR": "1", **extra}


def _env(world: World, role: str) -> dict[str, str]:
    return {"MCP_PLATFORM_API_URL": world.live.url, "MCP_PLATFORM_API_TOKEN": world.tokens[role]}


def test_analytics_tools_shows_the_tutorial_row(world: World, cli: Cli) -> None:
    server = f"payments-{uuid.uuid4().hex[:6]}"
    _ingest(world, [_bob_call(world, server, "echo"), _bob_call(world, server, "echo"),
                    _bob_call(world, server, "create_task", "deny")])
    table = cli(["analytics", "tools", "--server", server], env=_env(world, "owner"))
    assert table.returncode == 0, table.stderr
    lines = [line.split() for line in table.stdout.splitlines() if server in line]
    assert [server, "echo", "bob@globex.com", "globex", "cursor", "2", "0"] in [line[:7] for line in lines]
    assert [server, "create_task", "bob@globex.com", "globex", "cursor", "1", "1"] in [line[:7] for line in lines]
    owner = _env(world, "owner")
    as_json = json.loads(cli(["analytics", "tools", "--server", server, "-o", "json"], env=owner).stdout)
    assert {(r["tool"], r["team"], r["calls"]) for r in as_json} == {("echo", "globex", 2),
                                                                    ("create_task", "globex", 1)}
    as_yaml = yaml.safe_load(cli(["analytics", "tools", "--server", server, "-o", "yaml"], env=owner).stdout)
    assert len(as_yaml) == 2
    # Globex's other members see their team's calls to Acme's server too
    assert "create_task" in cli(["analytics", "tools", "--server", server], env=_env(world, "dave")).stdout


def test_analytics_events_filters_and_usage(world: World, cli: Cli) -> None:
    server = f"ledger-{uuid.uuid4().hex[:6]}"
    _ingest(world, [_bob_call(world, server, "add"), _bob_call(world, server, "refund", "deny")])
    denied = json.loads(cli(["analytics", "events", "--server", server, "--decision", "deny", "--since", "15m",
                             "-o", "json"], env=_env(world, "owner")).stdout)
    assert [(e["tool"], e["user"], e["team"], e["reason"]) for e in denied] == [
        ("refund", "bob@globex.com", "globex", "tool_not_granted")]
    table = cli(["analytics", "events", "--server", server, "--team", "globex"], env=_env(world, "owner"))
    assert table.returncode == 0 and table.stdout.count(server) == 2
    bad = cli(["analytics", "events", "--since", "last tuesday"], env=_env(world, "owner"))
    assert bad.returncode == 1 and bad.stderr.startswith("error: since:") and "Traceback" not in bad.stderr
    usage = json.loads(cli(["analytics", "usage", "--server", server, "-o", "json"], env=_env(world, "owner")).stdout)
    assert usage["totals"]["events"] == 2 and usage["totals"]["denied"] == 1
    text = cli(["analytics", "usage", "--server", server], env=_env(world, "owner")).stdout
    assert "2 requests: 1 allowed, 1 denied" in text and "tool_not_granted" in text


def test_analytics_events_follow_prints_new_events(world: World) -> None:
    server = f"follow-{uuid.uuid4().hex[:6]}"
    _ingest(world, [_bob_call(world, server, "echo")])
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_runtime", "analytics", "events", "--server", server, "--follow",
         "--interval", "0.2", "-o", "json"], env=_process_env(_env(world, "owner")), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        assert first["tool"] == "echo"
        _ingest(world, [_bob_call(world, server, "add"), _bob_call(world, server, "upper")])
        followed = [json.loads(process.stdout.readline())["tool"] for _ in range(2)]
        assert followed == ["add", "upper"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_analytics_usage_shows_quota_use_per_key(world: World, cli: Cli) -> None:
    """A tool rule's daily quota per agent: calls today (from the decision log, so every gateway replica
    counts) against the quota, and the calls refused rate_limited, per agent; on the dashboard too."""
    from platform_support import grant_doc

    grant = f"quota-{uuid.uuid4().hex[:6]}"
    world.ok("owner", "POST", "/runtime/grants", grant_doc(grant, ACME_NS, "payments", {"teamID": world.teams[
        "acme"]["id"]}, toolRules=[{"name": "echo", "rateLimit": {"callsPerDay": 5, "per": ["agent"]}}]))

    def decided(agent: str, reason: str = "allowed") -> AnalyticsEvent:
        return AnalyticsEvent(server="payments", namespace=ACME_NS, rpc_method="tools/call", tool_name="echo",
                              decision="allow" if reason == "allowed" else "deny", reason=reason, status=200,
                              latency_ms=1.0, agent_id=agent, matched_grant=grant,
                              team_id=world.teams["acme"]["id"], subject_team_id=world.teams["acme"]["id"])

    _ingest(world, [decided("bot-a"), decided("bot-a"), decided("bot-a"), decided("bot-b"),
                    decided("bot-a", "rate_limited")])
    answer = cli(["analytics", "usage", "--server", "payments", "-o", "json"], env=_env(world, "owner"))
    assert answer.returncode == 0, answer.stderr
    rows = {r["key"]: r for r in json.loads(answer.stdout)["quotas"] if r["limit"] == f"grant/{grant}/tool/echo"}
    assert {k: (r["callsToday"], r["quota"], r["remaining"], r["rateLimitedToday"]) for k, r in rows.items()} == {
        "bot-a": (3, 5, 2, 1), "bot-b": (1, 5, 4, 0)}
    assert rows["bot-a"]["usedPercent"] == 60.0 and rows["bot-a"]["per"] == "agent"
    table = cli(["analytics", "usage", "--server", "payments"], env=_env(world, "owner"))
    assert any(f"grant/{grant}/tool/echo" in line and "bot-a" in line for line in table.stdout.splitlines()), \
        table.stdout
    outsider = cli(["analytics", "usage", "-o", "json"], env=_env(world, "other"))  # globex sees no acme quotas
    assert not [r for r in json.loads(outsider.stdout)["quotas"] if grant in r["limit"]]
