"""`POST runtime/simulate` against a week of traffic recorded through the real gateway.

The week is made by `mcp-runtime up` in process with the gateway's clock fast-forwarded from seven days ago
to now (simulate_support.py): Globex's bob calls Acme's payments server through Cursor, Acme's alice and carol
through Claude, Globex's dave through Claude until his session is revoked on day 5; Acme grants itself access
on day 2; carol's session expires on day 3; an older gateway's events (version 1) and forged tokens are in
the log too. Every expectation is taken from what the gateway actually decided and recorded.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings, target
from hypothesis import strategies as st
from platform_support import PASSWORDS, grant_doc
from simulate_support import Caller, Outcome, Up, deploy_body, now, running_up

from fixtures.cli import run_cli
from mcp_runtime.platform.simulate import MAX_CONCURRENT
from mcp_runtime.policy import Reason
from mcp_runtime.security import KeyRing, SessionClaims, issue_session_token
from mcp_runtime.sentinel.events import AnalyticsEvent
from mcp_runtime.sentinel.store import UsageFilter

ACME_NS = "mcp-team-acme"
PATH = "/payments/mcp"
TICK = timedelta(minutes=20)
OLD_EVENTS = 5
FORGED_CALLS = 3
POLICY_REASONS = {str(r) for r in Reason}


@dataclass
class Week:
    up: Up
    teams: dict[str, str]  # slug -> id
    tokens: dict[str, str]  # email -> access token
    callers: dict[str, Caller]
    calls: list[tuple[datetime, str, str, Outcome]]  # (at, caller key, tool, what the gateway decided)
    start: datetime
    end: datetime
    grant_day2: datetime

    def simulate(self, email: str, body: dict[str, Any], *, status: int = 200) -> dict[str, Any]:
        answer = self.up.api(self.tokens[email], "POST", "/runtime/simulate",
                             {"server": "payments", "namespace": ACME_NS, "since": "8d", **body}, ok=False)
        assert answer.status_code == status, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def stored(self) -> list[AnalyticsEvent]:
        flt = UsageFilter(server="payments", namespace=ACME_NS, method="tools/call")
        return self.up.embedded.platform.events.events(flt, limit=10_000)


def _setup_world(up: Up) -> tuple[dict[str, str], dict[str, str]]:
    teams = {slug: up.api(up.admin, "POST", "/teams", {"slug": slug, "name": slug.title()})["id"]
             for slug in ("acme", "globex", "initech")}
    for team, email, role in (("acme", "alice@acme.com", "owner"), ("acme", "carol@acme.com", "member"),
                              ("globex", "bob@globex.com", "member"), ("globex", "dave@globex.com", "member"),
                              ("initech", "erin@initech.com", "member")):
        up.api(up.admin, "POST", f"/teams/{team}/users",
               {"username": email, "password": PASSWORDS.get(email, "erin-pass"), "role": role})
    tokens = {email: up.login(email, PASSWORDS.get(email, "erin-pass"))
              for email in ("alice@acme.com", "carol@acme.com", "bob@globex.com", "erin@initech.com")}
    return teams, tokens


def _plan(i: int, callers: dict[str, Caller]) -> list[tuple[Caller, str]]:
    """Who calls what at tick i: bob often, alice every other tick, dave every third, carol every fourth."""
    calls = [(callers["bob"], ["echo", "add", "multiply", "reverse"][i % 4])]
    if i % 2 == 0:
        calls.append((callers["alice"], ["echo", "reverse", "add"][i // 2 % 3]))
    if i % 3 == 0:
        calls.append((callers["dave"], ["upper", "lower", "echo"][i // 3 % 3]))
    if i % 4 == 1:
        calls.append((callers["carol"], "echo"))
    if i % 72 == 5:
        calls.append((callers["anonymous"], "echo"))
    return calls


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Week]:
    end = now().replace(second=0, microsecond=0) - timedelta(minutes=10)
    start = end - timedelta(days=7)
    with running_up(tmp_path_factory.mktemp("simulate"), start) as up:
        teams, tokens = _setup_world(up)
        alice = tokens["alice@acme.com"]
        up.api(alice, "POST", "/runtime/servers", deploy_body("payments"))
        up.api(alice, "POST", "/runtime/grants", grant_doc(
            "payments-to-globex", ACME_NS, "payments", {"teamID": teams["globex"], "agentID": "cursor"},
            maxTrust="medium", toolRules=[{"name": "echo"}, {"name": "add"}, {"name": "multiply"}]))
        up.api(alice, "POST", "/runtime/grants", grant_doc(
            "dave-reader", ACME_NS, "payments",
            {"humanID": "dave@globex.com", "agentID": "claude", "teamID": teams["globex"]},
            toolRules=[{"name": "upper"}, {"name": "lower"}]))
        up.wait_ready(ACME_NS, "payments")
        later = now() + timedelta(days=10)
        callers = {
            "bob": up.session("s-bob", ACME_NS, "payments", human="bob@globex.com", agent="cursor",
                              team_id=teams["globex"], trust="medium", expires_at=later),
            "alice": up.session("s-alice", ACME_NS, "payments", human="alice@acme.com", agent="claude",
                                team_id=teams["acme"], trust="high", expires_at=later),
            "dave": up.session("s-dave", ACME_NS, "payments", human="dave@globex.com", agent="claude",
                               team_id=teams["globex"], trust="low", expires_at=later),
            "carol": up.session("s-carol", ACME_NS, "payments", human="carol@acme.com", agent="claude",
                                team_id=teams["acme"], trust="low", expires_at=start + timedelta(days=3)),
            "anonymous": Caller("anonymous", None, None, None, None, None),
        }
        calls: list[tuple[datetime, str, str, Outcome]] = []
        ticks = int((end - start) / TICK)
        grant_day2 = start + 2 * timedelta(days=1)
        for i in range(ticks):
            at = start + i * TICK
            if i == 2 * 72:  # day 2: Acme grants its own agents everything
                up.api(alice, "POST", "/runtime/grants", grant_doc(
                    "acme-claude", ACME_NS, "payments", {"teamID": teams["acme"], "agentID": "claude"},
                    maxTrust="high"))
            if i == 5 * 72:  # day 5: dave's session is revoked
                up.api(alice, "POST", f"/runtime/sessions/{ACME_NS}/s-dave/revoke")
            for caller, tool in _plan(i, callers):
                calls.append((at, caller.key, tool, up.call(PATH, caller, tool, at)))
        forged = _forged_caller(teams["globex"])
        for i in range(FORGED_CALLS):
            at = start + timedelta(hours=30 + i)
            calls.append((at, "forged", "echo", up.call(PATH, forged, "echo", at)))
        _ingest_version_1_events(up, start, teams)
        up.wait_for_events(UsageFilter(server="payments", namespace=ACME_NS, method="tools/call"),
                           len(calls) + OLD_EVENTS)
        yield Week(up=up, teams=teams, tokens=tokens, callers=callers, calls=calls, start=start, end=end,
                   grant_day2=grant_day2)


def _forged_caller(globex: str) -> Caller:
    """bob's identity in a token signed by a key the platform never had."""
    moment = now()
    claims = SessionClaims(session_id="s-bob", namespace=ACME_NS, server="payments", human_id="bob@globex.com",
                           agent_id="cursor", team_id=globex, trust="high", expires_at=moment + timedelta(days=9),
                           issued_at=moment)
    token = issue_session_token(KeyRing.generate(), claims)
    return Caller("forged", "bob@globex.com", "cursor", globex, "s-bob", token)


def _ingest_version_1_events(up: Up, start: datetime, teams: dict[str, str]) -> None:
    """What a gateway from before the replay inputs sent: no session state, trust or arguments digest."""
    new_fields = {"event_version", "session_state", "consented_trust", "arguments_digest"}
    events = [AnalyticsEvent(timestamp=start + timedelta(hours=1, minutes=i), server="payments", namespace=ACME_NS,
                             team_id=teams["acme"], human_id="bob@globex.com", agent_id="cursor",
                             subject_team_id=teams["globex"], session_id="s-bob-old", rpc_method="tools/call",
                             tool_name="echo", decision="allow", reason="allowed", status=200, latency_ms=1.0)
              for i in range(OLD_EVENTS)]
    body = {"events": [json.loads(e.model_dump_json(exclude=new_fields)) for e in events]}
    answer = up.http.post(f"{up.url}/api/v1/ingest/events", json=body,
                          headers={"Authorization": f"Bearer {up.embedded.platform.ingest_keys.local_key}"})
    assert answer.status_code == 202 and answer.json()["accepted"] == OLD_EVENTS


def _rows(report: dict[str, Any], before: str, after: str) -> dict[tuple[Any, ...], tuple[int, str, str]]:
    return {(r["humanID"], r["agentID"], r["team"], r["tool"], r["before"]["reason"], r["after"]["reason"]):
            (r["calls"], r["first"], r["last"])
            for r in report["rows"] if r["before"]["decision"] == before and r["after"]["decision"] == after}


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _expected_losses(week: Week, grant: str, *,
                     tools: set[str] | None = None) -> dict[tuple[Any, ...], tuple[int, str, str]]:
    """From the store: the allowed calls the gateway matched to `grant`, by caller and tool."""
    groups: dict[tuple[Any, ...], list[datetime]] = defaultdict(list)
    slugs = {v: k for k, v in week.teams.items()}
    for stored in week.stored():
        if stored.matched_grant == grant and stored.decision == "allow" and stored.event_version == 2 \
                and (tools is None or stored.tool_name in tools):
            groups[(stored.human_id, stored.agent_id, slugs[stored.subject_team_id or ""], stored.tool_name)].append(
                stored.timestamp)
    return {key: (len(times), _iso(min(times)), _iso(max(times))) for key, times in groups.items()}


# --- the recorded week is what the gateway decided -------------------------------------------------------


def test_the_week_went_through_the_gateway_at_the_fast_forwarded_times(week: Week) -> None:
    stored = [e for e in week.stored() if e.event_version == 2]
    assert len(stored) == len(week.calls)
    assert {e.timestamp for e in stored} == {at for at, *_ in week.calls}
    assert min(e.timestamp for e in stored) == week.start and max(e.timestamp for e in stored) < week.end
    reasons = Counter(o.reason for *_, o in week.calls)
    assert reasons["forwarded"] > 500 and reasons["tool_not_granted"] > 0 and reasons["no_matching_grant"] > 0
    assert reasons["session_revoked"] > 0 and reasons["token_expired"] > 0 and reasons["missing_identity"] == 7
    assert {e.session_state for e in stored if e.session_id == "s-dave"} == {"active", "revoked"}
    assert all(e.arguments_digest for e in stored)


# --- what the issue asks ------------------------------------------------------------------------------


def test_deleting_a_grant_reports_exactly_the_callers_and_tools_that_lose_access(week: Week) -> None:
    report = week.simulate("alice@acme.com", {"deleteGrants": ["payments-to-globex"]})
    expected = _expected_losses(week, "payments-to-globex")
    assert {key[:4] for key in expected} == {("bob@globex.com", "cursor", "globex", t) for t in ("echo", "add",
                                                                                                    "multiply")}
    lost = _rows(report, "allow", "deny")
    assert {key[:4]: value for key, value in lost.items()} == expected
    assert {key[4:] for key in lost} == {("allowed", "no_matching_grant")}
    assert report["newlyDenied"] == sum(count for count, _, _ in expected.values())
    assert (report["callersLosingAccess"], report["toolsLosingAccess"]) == (1, 3)
    # bob's reverse calls were denied and still are, for another reason; nobody gains anything
    assert set(_rows(report, "deny", "deny")) == {
        ("bob@globex.com", "cursor", "globex", "reverse", "tool_not_granted", "no_matching_grant")}
    assert report["newlyAllowed"] == 0
    assert report["change"]["grantsDeleted"] == ["payments-to-globex"]
    assert report["summary"].startswith(f"impact over the last 8d: {report['newlyDenied']} call(s) that were allowed "
                                        "would be denied (1 caller(s), 3 tool(s))")


def test_deleting_a_grant_spares_calls_its_revoked_session_could_not_make(week: Week) -> None:
    report = week.simulate("alice@acme.com", {"deleteGrants": ["dave-reader"]})
    lost = _rows(report, "allow", "deny")
    assert {key[:4]: value for key, value in lost.items()} == _expected_losses(week, "dave-reader")
    revoked_at = week.start + 5 * timedelta(days=1)
    assert all(datetime.fromisoformat(last.replace("Z", "+00:00")) < revoked_at for _, _, last in lost.values())


def test_narrowing_a_tool_rule_reports_only_that_tool(week: Week) -> None:
    narrowed = grant_doc("payments-to-globex", ACME_NS, "payments",
                         {"teamID": week.teams["globex"], "agentID": "cursor"}, maxTrust="medium",
                         toolRules=[{"name": "echo"}, {"name": "multiply"}])
    report = week.simulate("carol@acme.com", {"grants": [narrowed]})
    assert _rows(report, "allow", "deny") == {
        (*key, "allowed", "tool_not_granted"): value
        for key, value in _expected_losses(week, "payments-to-globex", tools={"add"}).items()}
    assert report["changed"] == report["newlyDenied"] and report["change"]["grantsApplied"] == ["payments-to-globex"]


def test_a_change_with_no_effect_reports_zero(week: Week) -> None:
    stored = week.up.api(week.tokens["alice@acme.com"], "GET", f"/runtime/grants/{ACME_NS}/payments-to-globex")
    report = week.simulate("alice@acme.com", {"grants": [{k: stored[k] for k in ("metadata", "spec")}]})
    assert report["changed"] == 0 and report["rows"] == []
    tool_calls = len(week.calls) + OLD_EVENTS
    before_policy = sum(1 for *_, o in week.calls if not o.allowed and o.reason not in POLICY_REASONS)
    assert before_policy > FORGED_CALLS  # carol's token expired with her session on day 3
    assert report["recorded"] == tool_calls and report["beforePolicy"] == before_policy
    assert report["replayed"] == report["unchanged"] == tool_calls - OLD_EVENTS - before_policy
    assert "no recorded call would be decided differently" in report["summary"]
    unused = grant_doc("for-codex", ACME_NS, "payments", {"agentID": "codex"})
    assert week.simulate("alice@acme.com", {"grants": [unused]})["changed"] == 0


def test_events_too_old_to_replay_are_counted_and_named(week: Week) -> None:
    report = week.simulate("alice@acme.com", {"deleteGrants": ["payments-to-globex"]})
    assert report["notReplayable"] == OLD_EVENTS
    [gap] = report["gaps"]
    assert gap["calls"] == OLD_EVENTS and "event version below 2" in gap["reason"]
    assert gap["first"] == _iso(week.start + timedelta(hours=1))
    assert "5 too old to replay" in report["summary"]


def test_calls_the_current_policy_decides_differently_count_as_drift_not_as_impact(week: Week) -> None:
    """Acme's agents had no grant until day 2: their earlier calls were denied, today's policy allows them."""
    report = week.simulate("alice@acme.com", {"deleteGrants": ["dave-reader"]})
    before_grant = [c for c in week.calls if c[1] in ("s-alice", "s-carol") and c[0] < week.grant_day2]
    assert before_grant and all(o.reason == "no_matching_grant" for *_, o in before_grant)
    assert report["drifted"] == len(before_grant)
    assert not any(r["humanID"] == "alice@acme.com" for r in report["rows"])


def test_a_team_cannot_simulate_against_another_teams_server(week: Week) -> None:
    change = {"deleteGrants": ["payments-to-globex"]}
    refused = week.simulate("bob@globex.com", change, status=403)  # sees payments (it is granted to him)
    assert refused["error"] == "forbidden" and "payments" in refused["message"]
    hidden = week.simulate("erin@initech.com", change, status=404)  # does not even see it
    assert hidden["error"] == "not_found" and "newlyDenied" not in hidden
    sessions = {"sessions": [{"metadata": {"name": "s-bob", "namespace": ACME_NS}, "spec": {
        "serverRef": {"name": "payments"}, "subject": {"agentID": "cursor"}, "consentedTrust": "low"}}]}
    assert week.simulate("alice@acme.com", sessions, status=403)["error"] == "forbidden"  # sessions: admins


def test_bad_changes_get_clear_errors(week: Week) -> None:
    assert "nothing to simulate" in week.simulate("alice@acme.com", {}, status=422)["message"]
    missing = week.simulate("alice@acme.com", {"deleteGrants": ["no-such-grant"]}, status=404)
    assert "no-such-grant" in missing["message"]
    bad = week.simulate("alice@acme.com", {"grants": [{"metadata": {"name": "x", "namespace": ACME_NS},
                                                       "spec": {"serverRef": {"name": "payments"}, "subject": {},
                                                                "maxTrust": "ultra"}}]}, status=422)
    assert bad["message"].startswith("grants[0]: ")
    other = grant_doc("elsewhere", ACME_NS, "ledger", {"agentID": "cursor"})
    assert week.simulate("alice@acme.com", {"grants": [other]}, status=404)["error"] == "server_not_found"


def test_simulations_beyond_the_limit_wait_their_turn(week: Week) -> None:
    service = week.up.embedded.platform.simulation
    held = [service._running.acquire(blocking=False) for _ in range(MAX_CONCURRENT)]
    try:
        answer = week.up.api(week.tokens["alice@acme.com"], "POST", "/runtime/simulate", {
            "server": "payments", "namespace": ACME_NS, "deleteGrants": ["dave-reader"]}, ok=False)
        assert answer.status_code == 429 and answer.headers["retry-after"] == "5"
        assert answer.json()["error"] == "rate_limited"
    finally:
        for taken in held:
            if taken:
                service._running.release()
    assert week.simulate("alice@acme.com", {"deleteGrants": ["dave-reader"]})["replayed"] > 0


def test_an_admin_simulates_a_session_change_with_the_sessions_own_calls(week: Week) -> None:
    lowered = {"metadata": {"name": "s-bob", "namespace": ACME_NS}, "spec": {
        "serverRef": {"name": "payments"}, "subject": {"humanID": "bob@globex.com", "agentID": "cursor",
                                                       "teamID": week.teams["globex"]},
        "consentedTrust": "low", "expiresAt": _iso(now() + timedelta(days=10))}}
    week.tokens.setdefault("admin", week.up.admin)
    report = week.simulate("admin", {"sessions": [lowered]})
    assert set(_rows(report, "allow", "deny")) == {
        ("bob@globex.com", "cursor", "globex", "multiply", "allowed", "trust_too_low")}
    assert report["change"]["sessionsApplied"] == ["s-bob"]


def test_switching_the_server_to_observe_mode_reports_who_would_be_let_through(week: Week) -> None:
    body = deploy_body("payments")
    body["metadata"]["policy"] = {"mode": "observe"}
    report = week.simulate("alice@acme.com", {"deploy": {"metadata": body["metadata"]}})
    assert report["change"]["serverRedeployed"] is True and report["newlyDenied"] == 0
    gained = {key[:4] for key in _rows(report, "deny", "allow")}
    assert ("bob@globex.com", "cursor", "globex", "reverse") in gained
    assert (None, None, None, "echo") in gained  # the anonymous caller
    # every call the policy denies today is let through; Acme's calls before its day-2 grant are allowed today
    denied = sum(1 for *_, o in week.calls if not o.allowed and o.reason in POLICY_REASONS)
    assert report["newlyAllowed"] == denied - report["drifted"] and report["drifted"] > 0


# --- the CLI: access simulate, and the impact line of grant apply|delete ------------------------------------


@pytest.fixture(scope="module")
def alice_cli(week: Week, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """`mcp-runtime` as alice, logged in to the recorded week's platform (config in a private directory)."""
    home = tmp_path_factory.mktemp("alice-cli")
    env = {"MCP_RUNTIME_CONFIG_DIR": str(home / "config"), "MCP_PLATFORM_API_PROFILE": ""}

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = run_cli(list(args), env=env, cwd=home)
        if ok:
            assert done.returncode == 0, f"{args}: {done.stdout}{done.stderr}"
        return done

    run("auth", "login", "--api-url", week.up.url, "--email", "alice@acme.com", "--password",
        PASSWORDS["alice@acme.com"])
    run.home = home  # type: ignore[attr-defined]
    return run


def test_cli_simulate_prints_the_summary_the_changed_calls_and_the_totals(week: Week, alice_cli: Any) -> None:
    done = alice_cli("access", "simulate", "--server", "payments", "--namespace", ACME_NS,
                     "--delete-grant", "payments-to-globex", "--since", "8d")
    lines = done.stdout.splitlines()
    api = week.simulate("alice@acme.com", {"deleteGrants": ["payments-to-globex"]})
    assert lines[0] == api["summary"]
    assert lines[1].split() == ["HUMAN", "AGENT", "TEAM", "TOOL", "NOW", "AFTER", "CALLS", "FIRST", "LAST"]
    table = [line.split() for line in lines[2:2 + len(api["rows"])]]
    assert [(r[0], r[2], r[3], r[4], r[6], r[8]) for r in table] == [
        (row["humanID"], row["team"], row["tool"], row["before"]["decision"], row["after"]["decision"],
         str(row["calls"])) for row in api["rows"]]
    totals = lines[2 + len(api["rows"])]
    assert totals.startswith(f"replayed {api['replayed']:,} · unchanged {api['unchanged']:,}")
    assert f"not replayed {OLD_EVENTS}: recorded before events carried the replay inputs" in totals
    assert lines[-1].startswith(f"note: {api['drifted']} call(s) are decided differently today")
    as_json = json.loads(alice_cli("access", "simulate", "--server", "payments", "--delete-grant",
                                   "payments-to-globex", "--since", "8d", "-o", "json").stdout)
    assert as_json["rows"] == api["rows"] and as_json["newlyDenied"] == api["newlyDenied"]


def test_cli_simulate_takes_grant_and_server_files(week: Week, alice_cli: Any) -> None:
    home: Path = alice_cli.home
    narrowed = grant_doc("payments-to-globex", ACME_NS, "payments",
                         {"teamID": week.teams["globex"], "agentID": "cursor"}, maxTrust="medium",
                         toolRules=[{"name": "echo"}, {"name": "multiply"}])
    (home / "narrowed.yaml").write_text(yaml.safe_dump(narrowed))
    done = alice_cli("access", "simulate", "--server", "payments", "--grant-file", "narrowed.yaml", "-o", "json")
    rows = json.loads(done.stdout)["rows"]
    assert {(r["tool"], r["after"]["reason"]) for r in rows} == {("add", "tool_not_granted")}
    metadata = deploy_body("payments")["metadata"]
    metadata["policy"] = {"mode": "observe"}
    (home / "servers.yaml").write_text(yaml.safe_dump({"version": "v1", "servers": [metadata]}))
    observed = json.loads(alice_cli("access", "simulate", "--server", "payments", "--server-file", "servers.yaml",
                                    "--since", "8d", "-o", "json").stdout)
    assert observed["change"]["serverRedeployed"] and observed["newlyAllowed"] > 0
    missing = alice_cli("access", "simulate", "--server", "ledger-x", "--server-file", "servers.yaml", ok=False)
    assert missing.returncode == 1 and "has no entry for server ledger-x" in missing.stderr
    nothing = alice_cli("access", "simulate", "--server", "payments", ok=False)
    assert nothing.returncode == 1 and "nothing to simulate" in nothing.stderr


def test_cli_grant_apply_and_delete_print_the_impact_and_dry_run_changes_nothing(week: Week,
                                                                                  alice_cli: Any) -> None:
    home: Path = alice_cli.home
    alice = week.tokens["alice@acme.com"]
    original = week.up.api(alice, "GET", f"/runtime/grants/{ACME_NS}/acme-claude")
    narrowed = {"apiVersion": original["apiVersion"], "kind": original["kind"],
                "metadata": {"name": "acme-claude", "namespace": ACME_NS},
                "spec": {**original["spec"], "toolRules": [{"name": "echo"}]}}
    (home / "acme-claude.yaml").write_text(yaml.safe_dump(narrowed))
    dry = alice_cli("access", "grant", "apply", "-f", "acme-claude.yaml", "--dry-run")
    assert dry.stdout.startswith("impact over the last 24h: ") and "would be denied" in dry.stdout
    assert "alice@acme.com" in dry.stdout and dry.stdout.rstrip().endswith("dry run: nothing was applied")
    assert week.up.api(alice, "GET", f"/runtime/grants/{ACME_NS}/acme-claude")["spec"] == original["spec"]
    try:
        applied = alice_cli("access", "grant", "apply", "-f", "acme-claude.yaml")
        first, second = applied.stdout.splitlines()[:2]
        assert first.startswith("impact over the last 24h: ") and "(1 caller(s), 2 tool(s))" in first
        assert second == f"grant acme-claude updated in {ACME_NS} (Active)"
        restored = {**narrowed, "spec": original["spec"]}
        (home / "acme-claude.yaml").write_text(yaml.safe_dump(restored))
        widened = alice_cli("access", "grant", "apply", "-f", "acme-claude.yaml")  # nothing denied: no impact line
        assert widened.stdout.splitlines() == [f"grant acme-claude updated in {ACME_NS} (Active)"]

        dry = alice_cli("access", "grant", "delete", "acme-claude", "-n", ACME_NS, "--dry-run")
        assert "dry run: nothing was applied" in dry.stdout
        assert week.up.api(alice, "GET", f"/runtime/grants/{ACME_NS}/acme-claude")
        deleted = alice_cli("access", "grant", "delete", "acme-claude", "-n", ACME_NS)
        first, second = deleted.stdout.splitlines()
        assert first.startswith("impact over the last 24h: ") and "(1 caller(s), 3 tool(s))" in first
        assert second == f"grant acme-claude deleted in {ACME_NS}"
    finally:  # the other tests compare with the week's policy: put acme-claude back as it was
        if week.up.api(alice, "GET", f"/runtime/grants/{ACME_NS}/acme-claude", ok=False).status_code == 404:
            week.up.api(alice, "POST", "/runtime/grants", {k: original[k] for k in ("apiVersion", "kind", "spec")}
                        | {"metadata": {"name": "acme-claude", "namespace": ACME_NS}})
        else:
            week.up.api(alice, "PUT", f"/runtime/grants/{ACME_NS}/acme-claude",
                        {k: original[k] for k in ("apiVersion", "kind", "spec")}
                        | {"metadata": {"name": "acme-claude", "namespace": ACME_NS}})


# --- the prediction matches what then happens (property) ----------------------------------------------------

AGENTS = ("cursor", "claude", "codex")
TOOL_NAMES = ("echo", "add", "multiply", "reverse", "upper")
TRUSTS = ("low", "medium", "high")

PEOPLE = (("bob@globex.com", "globex"), ("alice@acme.com", "acme"), ("dave@globex.com", "globex"))
# a grant names one of the three callers (by agent and team, or by human) or a whole team
SUBJECTS = ("caller0", "caller1", "caller2", "human0", "human2", "team:globex", "team:acme")
grant_specs = st.fixed_dictionaries({
    "subject": st.sampled_from(SUBJECTS),
    "trust": st.sampled_from(TRUSTS), "tools": st.lists(st.sampled_from(TOOL_NAMES), unique=True, max_size=3),
    "deny": st.lists(st.sampled_from(TOOL_NAMES), unique=True, max_size=1),
    "disabled": st.sampled_from((False, False, False, True)),
    "sideEffects": st.sampled_from(([], ["read"], ["read", "write"])),
    "expiresMinutes": st.one_of(st.none(), st.integers(5, 110)),
})
session_specs = st.fixed_dictionaries({"trust": st.sampled_from(TRUSTS),
                                       "revoked": st.sampled_from((False, False, False, True))})
changes = st.one_of(
    st.tuples(st.just("apply"), st.integers(0, 3), grant_specs),
    st.tuples(st.just("delete"), st.integers(0, 3), st.none()),
    st.tuples(st.just("session"), st.integers(0, 2), session_specs),
)


@pytest.fixture(scope="module")
def ledger(week: Week) -> Iterator[tuple[Week, Iterator[int]]]:
    """A second server of Acme, for the property: each example records in its own two-hour window."""
    week.up.api(week.tokens["alice@acme.com"], "POST", "/runtime/servers", deploy_body("ledger"))
    week.up.wait_ready(ACME_NS, "ledger")
    yield week, iter(range(1000))


def _grant_body(name: str, spec: dict[str, Any], teams: dict[str, str], window: datetime) -> dict[str, Any]:
    kind, _, value = spec["subject"].partition(":")
    if kind == "team":
        subject = {"teamID": teams[value]}
    elif kind.startswith("human"):
        subject = {"humanID": PEOPLE[int(kind[-1])][0]}
    else:
        index = int(kind[-1])
        subject = {"agentID": AGENTS[index], "teamID": teams[PEOPLE[index][1]]}
    extra: dict[str, Any] = {}
    if spec["expiresMinutes"] is not None:
        extra["expiresAt"] = _iso(window + timedelta(minutes=spec["expiresMinutes"]))
    rules = [{"name": t} for t in spec["tools"] if t not in spec["deny"]] + \
            [{"name": t, "decision": "deny"} for t in spec["deny"]]
    return grant_doc(name, ACME_NS, "ledger", subject, maxTrust=spec["trust"], toolRules=rules,
                     allowedSideEffects=spec["sideEffects"], disabled=spec["disabled"], **extra)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(grants=st.lists(grant_specs, min_size=1, max_size=4),
       sessions=st.lists(session_specs, min_size=3, max_size=3),
       traffic=st.lists(st.tuples(st.integers(0, 2), st.sampled_from(TOOL_NAMES), st.integers(0, 115)),
                        min_size=1, max_size=14),
       change=changes)
def test_the_replay_and_the_live_gateway_agree_after_the_change_is_applied(
        ledger: tuple[Week, Iterator[int]], grants: list[dict[str, Any]], sessions: list[dict[str, Any]],
        traffic: list[tuple[int, str, int]], change: tuple[str, int, Any]) -> None:
    week, windows = ledger
    up, alice, k = week.up, week.tokens["alice@acme.com"], next(windows)
    window = week.start - timedelta(days=20) + k * timedelta(hours=2)
    for old in up.api(up.admin, "GET", f"/runtime/grants?namespace={ACME_NS}")["items"]:
        if old["spec"]["serverRef"]["name"] == "ledger":
            up.api(alice, "DELETE", f"/runtime/grants/{ACME_NS}/{old['metadata']['name']}")
    names = [f"g{i}" for i in range(len(grants))]
    for name, spec in zip(names, grants, strict=True):
        up.api(alice, "POST", "/runtime/grants", _grant_body(name, spec, week.teams, window))
    callers = []
    for i, spec in enumerate(sessions):
        human, team = PEOPLE[i]
        callers.append(up.session(f"p{k}-{i}", ACME_NS, "ledger", human=human, agent=AGENTS[i],
                                  team_id=week.teams[team], trust=spec["trust"], expires_at=now() + timedelta(days=30)))
        if spec["revoked"]:
            up.api(up.admin, "POST", f"/runtime/sessions/{ACME_NS}/p{k}-{i}/revoke")
    plan = sorted(((window + timedelta(minutes=minute), callers[who], tool) for who, tool, minute in traffic),
                  key=lambda item: item[0])
    first = [up.call("/ledger/mcp", caller, tool, at) for at, caller, tool in plan]
    flt = UsageFilter(server="ledger", namespace=ACME_NS, method="tools/call", since=window,
                      until=window + timedelta(hours=2))
    up.wait_for_events(flt, len(plan))

    kind, index, spec = change
    body: dict[str, Any]
    if kind == "apply":
        body = {"grants": [_grant_body(f"g{index}", spec, week.teams, window)]}
    elif kind == "delete":
        body = {"deleteGrants": [names[index % len(names)]]}
    else:
        caller = callers[index]
        body = {"sessions": [{"metadata": {"name": caller.session, "namespace": ACME_NS}, "spec": {
            "serverRef": {"name": "ledger"}, "consentedTrust": spec["trust"], "revoked": spec["revoked"],
            "subject": {"humanID": caller.human, "agentID": caller.agent, "teamID": caller.team_id},
            "expiresAt": _iso(now() + timedelta(days=30))}}]}
    report = up.api(up.admin, "POST", "/runtime/simulate", {
        "server": "ledger", "namespace": ACME_NS, "since": _iso(window), "until": _iso(window + timedelta(hours=2)),
        **body})
    assert report["drifted"] == 0 and report["notReplayable"] == 0

    if kind == "apply":
        grant = body["grants"][0]
        answer = up.api(alice, "POST", "/runtime/grants", grant, ok=False)
        if answer.status_code == 409:
            up.api(alice, "PUT", f"/runtime/grants/{ACME_NS}/{grant['metadata']['name']}", grant)
    elif kind == "delete":
        up.api(alice, "DELETE", f"/runtime/grants/{ACME_NS}/{body['deleteGrants'][0]}")
    else:
        session = body["sessions"][0]
        up.api(up.admin, "PUT", f"/runtime/sessions/{ACME_NS}/{session['metadata']['name']}", session)
    second = [up.call("/ledger/mcp", caller, tool, at) for at, caller, tool in plan]

    live: dict[tuple[Any, ...], list[datetime]] = defaultdict(list)
    for (at, caller, tool), before, after in zip(plan, first, second, strict=True):
        if (before.allowed, before.reason) != (after.allowed, after.reason):
            live[(caller.human, caller.agent, caller.team_id, tool, before.allowed, _policy(before),
                  after.allowed, _policy(after))].append(at)
    predicted = {(r["humanID"], r["agentID"], r["teamID"], r["tool"], r["before"]["decision"] == "allow",
                  r["before"]["reason"], r["after"]["decision"] == "allow", r["after"]["reason"]):
                 (r["calls"], r["first"], r["last"]) for r in report["rows"]}
    assert predicted == {key: (len(times), _iso(min(times)), _iso(max(times))) for key, times in live.items()}
    assert report["unchanged"] + report["beforePolicy"] + report["changed"] == len(plan)
    event(f"{kind}: {'some calls change' if report['changed'] else 'no call changes'}")
    target(float(min(report["changed"], 5)), label="changed calls (capped at 5)")


def _policy(outcome: Outcome) -> str:
    """The evaluator's reason for an answer: a forwarded call was allowed (by a grant, or observed)."""
    return "allowed" if outcome.allowed else outcome.reason
