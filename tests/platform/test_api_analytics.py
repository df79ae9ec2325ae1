"""The Sentinel ingest and the analytics API on a live platform (SQLite and PostgreSQL control planes)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from platform_support import PASSWORDS, LivePlatform, World

from mcp_runtime.sentinel.events import AnalyticsEvent

ACME_NS, GLOBEX_NS = "mcp-team-acme", "mcp-team-globex"


def _event(server: str, namespace: str = ACME_NS, **fields: Any) -> AnalyticsEvent:
    values: dict[str, Any] = {"server": server, "namespace": namespace, "rpc_method": "tools/call",
                              "tool_name": "echo", "decision": "allow", "reason": "allowed", "status": 200,
                              "latency_ms": 1.5}
    values.update(fields)
    return AnalyticsEvent(**values)


def _post(live: LivePlatform, events: list[AnalyticsEvent], key: str | None = None, **kwargs: Any) -> Any:
    body = {"events": [json.loads(e.model_dump_json()) for e in events]}
    token = live.platform.ingest_keys.local_key if key is None else key
    return live.call("POST", "/ingest/events", token=token or None, json=body, **kwargs)


def _third_team(world: World) -> str:
    """initech with erin (member): a team with no servers and no calls to Acme's."""
    if "third" not in world.tokens:
        world.ok("admin", "POST", "/teams", {"slug": "initech", "name": "Initech"})
        world.ok("admin", "POST", "/teams/initech/users",
                 {"username": "erin@initech.com", "password": "erin-pass", "role": "member"})
        world.tokens["third"] = world.live.login("erin@initech.com", "erin-pass")["accessToken"]
    return world.tokens["third"]


def test_ingest_needs_an_ingest_key(world: World) -> None:
    live = world.live
    server = f"keyed-{uuid.uuid4().hex[:8]}"
    for key in ("", "mcpr_not-a-key", world.tokens["apikey"], world.tokens["admin"]):
        answer = _post(live, [_event(server)], key=key)
        assert answer.status_code == 401, (key[:8], answer.text)
        assert answer.json()["error"] in ("invalid_ingest_key",) and answer.json()["message"]
        assert answer.headers["www-authenticate"] == "Bearer"
    admin_view = world.ok("admin", "GET", f"/analytics/usage?section=totals&server={server}")
    assert admin_view["totals"]["events"] == 0
    # the key file for local gateways is private
    key_file = live.settings.data_dir / "ingest-api-key"
    assert key_file.read_text().strip() == live.platform.ingest_keys.local_key
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_ingest_is_idempotent_on_event_id(world: World) -> None:
    live = world.live
    server = f"idem-{uuid.uuid4().hex[:8]}"
    events = [_event(server) for _ in range(5)]
    first = _post(live, events)
    assert first.status_code == 202 and first.json() == {"accepted": 5, "duplicates": 0}
    again = _post(live, [*events[:3], _event(server), events[0]])
    assert again.status_code == 202 and again.json() == {"accepted": 1, "duplicates": 4}
    assert world.ok("admin", "GET", f"/analytics/usage?section=totals&server={server}")["totals"]["events"] == 6


def test_ingest_refuses_bad_bodies_with_the_envelope(world: World) -> None:
    live = world.live
    key = live.platform.ingest_keys.local_key
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    cases = [
        (b"{not json", 400, "malformed_json"),
        (b'{"events": [{"server": "x"}]}', 422, "invalid_request"),
        (b'{"events": [], "extra": 1}', 422, "invalid_request"),
    ]
    for body, status, code in cases:
        answer = live.http.post("/api/v1/ingest/events", content=body, headers=headers)
        assert answer.status_code == status and answer.json()["error"] == code, answer.text
    text = live.http.post("/api/v1/ingest/events", content=b"{}", headers={**headers, "Content-Type": "text/plain"})
    assert text.status_code == 415
    # more than 5,000 events in one batch: refused, nothing stored
    server = f"big-{uuid.uuid4().hex[:8]}"
    too_many = _post(live, [_event(server) for _ in range(5001)])
    assert too_many.status_code == 422
    # over the ingest's body limit: 413 before any parsing
    limit = live.settings.ingest_max_body_bytes
    huge = live.http.post("/api/v1/ingest/events", content=b" " * (limit + 1), headers=headers)
    assert huge.status_code == 413 and huge.json()["error"] == "payload_too_large"
    assert world.ok("admin", "GET", f"/analytics/usage?section=totals&server={server}")["totals"]["events"] == 0


def test_a_batch_larger_than_an_ordinary_request_is_taken(world: World) -> None:
    """The ingest's limit is its own: 3,000 events (~2 MB) pass although API requests stop at 1 MiB."""
    server = f"bulk-{uuid.uuid4().hex[:8]}"
    answer = _post(world.live, [_event(server, trace_id="t" * 100) for _ in range(3000)])
    assert answer.status_code == 202 and answer.json()["accepted"] == 3000


@pytest.fixture(scope="module")
def cross_team(world: World) -> dict[str, Any]:
    """Tutorial traffic on a fresh server name: Globex's bob (cursor) calls Acme's server, Alice calls it,
    one of Bob's calls is denied; Globex's own server gets a call from Dave."""
    acme, globex = world.teams["acme"]["id"], world.teams["globex"]["id"]
    suffix = uuid.uuid4().hex[:6]
    payments, workspace = f"payments-{suffix}", f"workspace-{suffix}"
    now = datetime.now(UTC)
    bob = {"human_id": "bob@globex.com", "agent_id": "cursor", "team_id": acme, "subject_team_id": globex,
           "session_id": "globex-payments-session"}
    events = [
        _event(payments, tool_name="echo", timestamp=now - timedelta(minutes=5), **bob),
        _event(payments, tool_name="add", timestamp=now - timedelta(minutes=4), **bob),
        _event(payments, tool_name="create_task", decision="deny", reason="tool_not_granted",
               status=200, timestamp=now - timedelta(minutes=3), **bob),
        _event(payments, tool_name="echo", human_id="alice@acme.com", agent_id="claude", team_id=acme,
               subject_team_id=acme, timestamp=now - timedelta(minutes=2)),
        _event(workspace, GLOBEX_NS, tool_name="slugify", human_id="dave@globex.com", agent_id="claude",
               team_id=globex, subject_team_id=globex, timestamp=now - timedelta(minutes=1)),
    ]
    assert _post(world.live, events).status_code == 202
    return {"payments": payments, "workspace": workspace, "events": events}


def _usage(world: World, role: str, query: str) -> dict[str, Any]:
    answer = world.call(role, "GET", f"/analytics/usage?{query}")
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_tools_table_shows_names_not_uuids(world: World, cross_team: dict[str, Any]) -> None:
    tools = _usage(world, "admin", f"section=tools&server={cross_team['payments']}")["tools"]
    rows = {(r["tool"], r["user"], r["team"], r["agent"], r["calls"], r["denied"]) for r in tools}
    assert rows == {("echo", "bob@globex.com", "globex", "cursor", 1, 0),
                    ("add", "bob@globex.com", "globex", "cursor", 1, 0),
                    ("create_task", "bob@globex.com", "globex", "cursor", 1, 1),
                    ("echo", "alice@acme.com", "acme", "claude", 1, 0)}
    assert {r["teamID"] for r in tools} == {world.teams["globex"]["id"], world.teams["acme"]["id"]}


def test_analytics_is_scoped_to_the_callers_teams(world: World, cross_team: dict[str, Any]) -> None:
    payments, workspace = cross_team["payments"], cross_team["workspace"]
    both = "section=totals&section=tools&section=servers&since=1h"

    def servers(role: str) -> dict[str, int]:
        answer = _usage(world, role, both)
        return {r["server"]: r["calls"] for r in answer["servers"] if r["server"] in (payments, workspace)}

    # admin: everything
    assert servers("admin") == {payments: 4, workspace: 1}
    # Acme (owner and member): all traffic of Acme's server, including Globex's calls; not Globex's server
    for role in ("owner", "member"):
        assert servers(role) == {payments: 4}
    acme_tools = _usage(world, "member", f"section=tools&server={payments}")["tools"]
    assert {r["team"] for r in acme_tools} == {"globex", "acme"}
    # Globex: its own server, and its own calls to Acme's server (not Alice's)
    assert servers("other") == {payments: 3, workspace: 1}
    globex_users = {r["user"] for r in _usage(world, "other", f"section=tools&server={payments}")["tools"]}
    assert globex_users == {"bob@globex.com"}
    # a third team sees none of it, however it filters
    _third_team(world)
    assert servers("third") == {}
    for query in (f"server={payments}", f"team=globex&server={payments}", f"namespace={ACME_NS}"):
        assert _usage(world, "third", f"section=totals&{query}")["totals"]["events"] == 0
        assert world.ok("third", "GET", f"/analytics/events?{query}")["items"] == []
    # not logged in: 401
    assert world.live.call("GET", "/analytics/usage").status_code == 401


def test_usage_sections_and_filters(world: World, cross_team: dict[str, Any]) -> None:
    payments = cross_team["payments"]
    answer = _usage(world, "owner", f"server={payments}&since=1h")
    assert set(answer) == {"totals", "servers", "tools", "actors", "decisions", "timeseries", "recent", "quotas"}
    assert answer["totals"] == {"events": 4, "allowed": 3, "denied": 1, "humans": 2, "agents": 2, "servers": 1}
    assert {(d["decision"], d["reason"], d["count"]) for d in answer["decisions"]} == {
        ("allow", "allowed", 3), ("deny", "tool_not_granted", 1)}
    assert sum(p["calls"] for p in answer["timeseries"]["points"]) == 4
    assert answer["recent"][0]["user"] == "alice@acme.com" and answer["recent"][0]["team"] == "acme"
    assert {a["user"]: a["team"] for a in answer["actors"]} == {"bob@globex.com": "globex",
                                                              "alice@acme.com": "acme"}
    denied = _usage(world, "owner", f"server={payments}&decision=deny&section=tools")["tools"]
    assert [(r["tool"], r["denied"]) for r in denied] == [("create_task", 1)]
    by_team = _usage(world, "owner", f"server={payments}&team=globex&section=totals")["totals"]
    assert by_team["events"] == 3
    assert _usage(world, "owner", f"server={payments}&since=2030-01-01T00:00:00Z&section=totals")[
        "totals"]["events"] == 0
    bad = world.call("owner", "GET", "/analytics/usage?since=yesterday")
    assert bad.status_code == 422 and "since" in bad.json()["message"]
    unknown = world.call("owner", "GET", "/analytics/usage?section=nope")
    assert unknown.status_code == 422 and unknown.json()["error"] == "invalid_request"


def test_events_page_forward_with_a_cursor(world: World, cross_team: dict[str, Any]) -> None:
    payments = cross_team["payments"]
    first = world.ok("owner", "GET", f"/analytics/events?server={payments}&limit=3")
    assert len(first["items"]) == 3 and first["items"][0]["team"] == "globex"
    rest = world.ok("owner", "GET", f"/analytics/events?server={payments}&limit=3&after={first['next']}")
    assert [e["user"] for e in rest["items"]] == ["alice@acme.com"]
    ids = [e["eventID"] for e in first["items"] + rest["items"]]
    assert ids == [e.event_id for e in cross_team["events"][:4]]
    done = world.ok("owner", "GET", f"/analytics/events?server={payments}&after={rest['next']}")
    assert done["items"] == [] and done["next"] == rest["next"]
    denied = world.ok("owner", "GET", f"/analytics/events?server={payments}&decision=deny")["items"]
    assert [(e["tool"], e["reason"]) for e in denied] == [("create_task", "tool_not_granted")]


def test_passwords_fixture_has_the_tutorial_users() -> None:
    assert "bob@globex.com" in PASSWORDS


def test_settings_take_the_helm_charts_sentinel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_runtime.platform.settings import PlatformSettings

    monkeypatch.setenv("MCP_SENTINEL_CLICKHOUSE_URL", "https://user:pw@clickhouse.analytics.svc:8443/events")
    monkeypatch.setenv("MCP_SENTINEL_NATS_URL", "nats://nats.analytics.svc:4222")
    monkeypatch.setenv("MCP_RUNTIME_INGEST_API_KEY", "mcpr_from-a-secret")
    settings = PlatformSettings.from_env("/tmp/unused")
    assert settings.analytics_url == "clickhouses://user:pw@clickhouse.analytics.svc:8443/events"
    assert settings.nats_url == "nats://nats.analytics.svc:4222"
    assert settings.ingest_api_key == "mcpr_from-a-secret"
    monkeypatch.setenv("MCP_RUNTIME_ANALYTICS_URL", "sqlite:///var/lib/analytics.db")
    assert PlatformSettings.from_env("/tmp/unused").analytics_url == "sqlite:///var/lib/analytics.db"
