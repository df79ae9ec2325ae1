"""The replay core (`policy.replay`): recorded calls judged under the current and a proposed document.

Calls here are recorded by asking the evaluator itself (what the gateway did at that moment), so every
expectation is about what the replay reports, never about a hand-written decision.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_runtime.policy import (
    Identity,
    PolicyDocument,
    RecordedCall,
    Replayer,
    SessionState,
    compile_policy,
    evaluate,
    replay,
    session_state,
)
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
NS = "mcp-team-acme"
GLOBEX = "globex-uuid"
TOOLS = [
    {"name": "echo", "sideEffect": "read"},
    {"name": "add", "sideEffect": "read"},
    {"name": "create_task", "sideEffect": "write", "requiredTrust": "medium"},
]


def server(mode: str = "allow-list") -> MCPServer:
    return MCPServer.model_validate({
        "metadata": {"name": "payments", "namespace": NS},
        "spec": {"image": "acme/payments", "teamID": "acme-uuid", "tools": TOOLS, "policy": {"mode": mode}},
    })


def grant(name: str, agent: str, *, tools: list[str] | None = None, max_trust: str = "high",
          deny: list[str] | None = None, expires_at: datetime | None = None) -> MCPAccessGrant:
    rules = [{"name": t} for t in tools or []] + [{"name": t, "decision": "deny"} for t in deny or []]
    return MCPAccessGrant.model_validate({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"serverRef": {"name": "payments"}, "subject": {"agentID": agent, "teamID": GLOBEX},
                 "maxTrust": max_trust, "toolRules": rules, "expiresAt": expires_at},
    })


def session(name: str, agent: str, *, trust: str = "high", revoked: bool = False,
            expires_at: datetime | None = None) -> MCPAgentSession:
    return MCPAgentSession.model_validate({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"serverRef": {"name": "payments"}, "subject": {"agentID": agent, "teamID": GLOBEX},
                 "consentedTrust": trust, "revoked": revoked, "expiresAt": expires_at or NOW + timedelta(days=30)},
    })


def who(agent: str, sid: str) -> Identity:
    return Identity(human_id=f"{agent}@globex.com", agent_id=agent, team_id=GLOBEX, session_id=sid)


CURSOR, CLAUDE = who("cursor", "s-cursor"), who("claude", "s-claude")


def document(grants: list[MCPAccessGrant], sessions: list[MCPAgentSession] | None = None,
             mode: str = "allow-list") -> PolicyDocument:
    return compile_policy(server(mode), grants, sessions if sessions is not None else
                          [session("s-cursor", "cursor"), session("s-claude", "claude", trust="low")])


def record(doc: PolicyDocument, identity: Identity | None, tool: str, at: datetime, **extra: Any) -> RecordedCall:
    """What the gateway records for a call it decides under `doc` at `at`."""
    decision = evaluate(doc, identity, tool, at)
    state, live = session_state(doc, identity, at)
    return RecordedCall(at=at, tool=tool, identity=identity, session_state=state,
                        consented_trust=live.consented_trust if live else None, allowed=decision.allowed,
                        reason=str(decision.reason), **extra)


BASE = [grant("g-cursor", "cursor", tools=["echo", "add", "create_task"]),
        grant("g-claude", "claude", tools=["echo"], max_trust="low")]


def week(doc: PolicyDocument) -> list[RecordedCall]:
    calls = []
    for hour in range(0, 7 * 24, 3):
        at = NOW - timedelta(days=7) + timedelta(hours=hour)
        for identity, tool in ((CURSOR, "echo"), (CURSOR, "add"), (CURSOR, "create_task"), (CLAUDE, "echo"),
                               (CLAUDE, "add")):
            calls.append(record(doc, identity, tool, at))
    return calls


def test_deleting_a_grant_reports_exactly_its_callers_and_tools() -> None:
    current = document(BASE)
    calls = week(current)
    report = replay(current, document(BASE[1:]), calls)
    assert report.recorded == report.replayed == len(calls) and report.drifted == 0
    assert {(r.agent_id, r.tool) for r in report.rows} == {("cursor", "echo"), ("cursor", "add"),
                                                          ("cursor", "create_task")}
    assert all(r.before.decision == "allow" and r.after.decision == "deny" and r.after.reason == "no_matching_grant"
               for r in report.rows)
    assert report.newly_denied == report.changed == 56 * 3 and report.unchanged == 56 * 2
    assert report.callers_losing_access == 1 and report.tools_losing_access == 3
    row = report.rows[0]
    assert row.first == NOW - timedelta(days=7) and row.last == NOW - timedelta(hours=3)
    assert "no grant on payments matches" in row.message


def test_narrowing_a_tool_rule_reports_only_that_tool() -> None:
    current = document(BASE)
    narrowed = [grant("g-cursor", "cursor", tools=["echo", "create_task"]), BASE[1]]
    report = replay(current, document(narrowed), week(current))
    assert [(r.agent_id, r.tool, r.after.reason) for r in report.rows] == [("cursor", "add", "tool_not_granted")]
    assert report.changed == report.newly_denied == 56


def test_a_change_with_no_effect_reports_zero() -> None:
    current = document(BASE)
    renamed_order = [BASE[1], BASE[0]]
    report = replay(current, document(renamed_order), week(current))
    assert report.changed == 0 and report.rows == () and report.unchanged == report.replayed == 280


def test_widening_reports_newly_allowed_and_reason_only_changes() -> None:
    current = document(BASE)
    wider = [BASE[0], grant("g-claude", "claude", tools=["echo", "add"], max_trust="low",
                            deny=["create_task"])]
    report = replay(current, document(wider), week(current))
    assert [(r.agent_id, r.tool, r.before.reason, r.after.reason) for r in report.rows] == [
        ("claude", "add", "tool_not_granted", "allowed")]
    assert report.newly_allowed == 56 and report.newly_denied == 0


def test_a_session_revoked_since_does_not_hide_what_a_grant_change_does() -> None:
    current = document(BASE)
    calls = week(current)
    revoked_now = document(BASE, [session("s-cursor", "cursor", revoked=True), session("s-claude", "claude")])
    report = replay(revoked_now, compile_policy(server(), BASE[1:], [session("s-cursor", "cursor", revoked=True)]),
                    calls)
    assert report.newly_denied == 56 * 3 and report.drifted == 0


def test_a_session_file_decides_for_its_own_session_only() -> None:
    current = document(BASE)
    lowered = document(BASE, [session("s-cursor", "cursor", trust="low"), session("s-claude", "claude", trust="low")])
    report = replay(current, lowered, week(current), changed_sessions=frozenset({"s-cursor"}))
    assert [(r.agent_id, r.tool, r.after.reason) for r in report.rows] == [("cursor", "create_task", "trust_too_low")]
    revoked = document(BASE, [session("s-cursor", "cursor", revoked=True), session("s-claude", "claude", trust="low")])
    report = replay(current, revoked, week(current), changed_sessions=frozenset({"s-cursor"}))
    assert {r.after.reason for r in report.rows} == {"session_revoked"} and report.newly_denied == 56 * 3


def test_recorded_session_failures_replay_as_they_happened() -> None:
    docs = document(BASE, [session("s-cursor", "cursor", expires_at=NOW - timedelta(days=3)),
                           session("s-claude", "claude", revoked=True)])
    calls = week(docs)
    assert {c.session_state for c in calls} == {SessionState.active, SessionState.expired, SessionState.revoked}
    report = replay(docs, docs, calls)
    assert report.drifted == 0 and report.changed == 0
    # deleting cursor's grant changes only the calls made while its session was still in force
    report = replay(docs, compile_policy(server(), BASE[1:], []), calls)
    assert report.newly_denied == 4 * 8 * 3 and all(r.last < NOW - timedelta(days=3) for r in report.rows)


def test_observe_mode_calls_show_what_enforcing_would_deny() -> None:
    observing = document(BASE, mode="observe")
    calls = week(observing)
    assert {c.reason for c in calls} == {"observed"}
    report = replay(observing, document(BASE), calls)
    assert {(r.agent_id, r.tool, r.after.reason) for r in report.rows} == {
        ("cursor", "echo", "allowed"), ("cursor", "add", "allowed"), ("cursor", "create_task", "allowed"),
        ("claude", "echo", "allowed"), ("claude", "add", "tool_not_granted")}
    assert report.newly_denied == 56 and report.reason_only == 56 * 4


def test_too_old_and_pre_policy_calls_are_counted_and_named_never_guessed() -> None:
    current = document(BASE)
    calls = week(current)
    old = [RecordedCall(at=NOW - timedelta(days=6, hours=i), tool="echo", identity=CURSOR, session_state=None,
                        consented_trust=None, allowed=True, reason="allowed",
                        gap="recorded before the event log carried the replay inputs (event version 1)")
           for i in range(5)]
    forged = [RecordedCall(at=NOW, tool="echo", identity=None, session_state=None, consented_trust=None,
                           allowed=False, reason="invalid_token")]
    report = replay(current, document(BASE[1:]), calls + old + forged)
    assert report.recorded == len(calls) + 6 and report.replayed == len(calls)
    assert report.not_replayable == 5 and report.before_policy == 1
    [gap] = report.gaps
    assert gap.calls == 5 and "event version 1" in gap.reason
    assert gap.first == NOW - timedelta(days=6, hours=4) and gap.last == NOW - timedelta(days=6)


def test_drift_counts_calls_the_current_policy_decides_differently_than_recorded() -> None:
    then = document(BASE[1:])
    calls = week(then)  # cursor was denied all week
    now = document(BASE)  # a grant added since
    report = replay(now, now, calls)
    assert report.drifted == 56 * 3 and report.changed == 0


def test_the_report_serializes_in_camel_case() -> None:
    current = document(BASE)
    wire = replay(current, document(BASE[1:]), week(current)).model_dump(by_alias=True, mode="json")
    assert wire["newlyDenied"] == 168 and wire["rows"][0]["agentID"] == "cursor"
    assert wire["rows"][0]["before"] == {"decision": "allow", "reason": "allowed"}


# --- property: the replay is the evaluator under the proposed document, call by call -------------------
AGENTS = ["cursor", "claude", "codex"]
TOOL_NAMES = ["echo", "add", "create_task", "unknown"]
TRUSTS = ["low", "medium", "high"]

grants_st = st.lists(st.builds(
    lambda name, agent, tools, trust, deny, hours: grant(
        name, agent, tools=[t for t in tools if t not in deny], max_trust=trust, deny=deny,
        expires_at=None if hours is None else NOW - timedelta(hours=hours)),
    st.sampled_from(["ga", "gb", "gc", "gd"]), st.sampled_from(AGENTS),
    st.lists(st.sampled_from(TOOL_NAMES[:3]), unique=True, max_size=3), st.sampled_from(TRUSTS),
    st.lists(st.sampled_from(TOOL_NAMES[:3]), unique=True, max_size=1),
    st.one_of(st.none(), st.integers(0, 7 * 24))),  # grants that expire during the week
    max_size=4, unique_by=lambda g: g.metadata.name)
sessions_st = st.lists(st.builds(
    lambda agent, trust, revoked, expired: session(f"s-{agent}", agent, trust=trust, revoked=revoked,
                                                   expires_at=NOW - timedelta(days=2) if expired else None),
    st.sampled_from(AGENTS), st.sampled_from(TRUSTS), st.booleans(), st.booleans()),
    max_size=3, unique_by=lambda s: s.metadata.name)
calls_st = st.lists(st.tuples(st.sampled_from(AGENTS), st.sampled_from(TOOL_NAMES), st.integers(0, 7 * 24)),
                    min_size=1, max_size=30)


@settings(max_examples=100, deadline=None)
@given(grants_st, grants_st, sessions_st, calls_st)
def test_before_and_after_are_what_the_evaluator_decides_call_by_call(
        before_grants: list[MCPAccessGrant], after_grants: list[MCPAccessGrant],
        sessions: list[MCPAgentSession], traffic: list[tuple[str, str, int]]) -> None:
    current = compile_policy(server(), before_grants, sessions)
    proposed = compile_policy(server(), after_grants, sessions)
    calls = [record(current, who(agent, f"s-{agent}"), tool, NOW - timedelta(hours=hours))
             for agent, tool, hours in traffic]
    replayer = Replayer(current, proposed)
    for call in calls:
        replayer.add(call)
    report = replayer.report()
    changes: dict[tuple[object, ...], list[datetime]] = {}
    for c in calls:  # each call evaluated on its own, nothing remembered
        before, after = evaluate(current, c.identity, c.tool, c.at), evaluate(proposed, c.identity, c.tool, c.at)
        if (before.allowed, before.reason) != (after.allowed, after.reason):
            assert c.identity is not None
            changes.setdefault((c.identity.agent_id, c.tool, str(before.reason), str(after.reason)), []).append(c.at)
    assert report.drifted == 0 and report.changed + report.unchanged == len(calls)
    assert {(r.agent_id, r.tool, r.before.reason, r.after.reason): (r.calls, r.first, r.last) for r in report.rows} \
        == {key: (len(times), min(times), max(times)) for key, times in changes.items()}
    for row in report.rows:
        identity = Identity(human_id=row.human_id, agent_id=row.agent_id, team_id=row.team_id,
                            session_id=f"s-{row.agent_id}")
        decision = evaluate(proposed, identity, row.tool, row.last)
        assert (decision.allowed, str(decision.reason)) == (row.after.decision == "allow", row.after.reason)


# --- argument conditions: events keep only a digest of the arguments -------------------------------

def conditioned(condition: str | None) -> MCPAccessGrant:
    rule: dict[str, Any] = {"name": "add"} if condition is None else {"name": "add", "condition": condition}
    return MCPAccessGrant.model_validate({
        "metadata": {"name": "g-cursor", "namespace": NS},
        "spec": {"serverRef": {"name": "payments"}, "subject": {"agentID": "cursor", "teamID": GLOBEX},
                 "maxTrust": "high", "toolRules": [{"name": "echo"}, rule]},
    })


def record_with(doc: PolicyDocument, identity: Identity, tool: str, at: datetime,
                arguments: dict[str, Any]) -> RecordedCall:
    decision = evaluate(doc, identity, tool, at, arguments)
    state, live = session_state(doc, identity, at)
    return RecordedCall(at=at, tool=tool, identity=identity, session_state=state,
                        consented_trust=live.consented_trust if live else None, allowed=decision.allowed,
                        reason=str(decision.reason))


def test_a_condition_kept_as_is_replays_as_recorded() -> None:
    current = document([conditioned("args.a <= 10"), BASE[1]])
    calls = [record_with(current, CURSOR, "add", NOW - timedelta(hours=h), {"a": 5 if h % 2 else 50})
             for h in range(1, 11)]
    assert sum(c.allowed for c in calls) == 5
    # An unrelated change (claude loses its grant): the condition on cursor's rule is unchanged.
    report = replay(current, document([conditioned("args.a <= 10")]), calls)
    assert report.replayed == 10 and report.unchanged == 10 and report.drifted == 0 and report.not_replayable == 0


def test_a_changed_condition_is_a_named_gap_never_a_guess() -> None:
    current = document([conditioned("args.a <= 10"), BASE[1]])
    calls = [record_with(current, CURSOR, "add", NOW - timedelta(hours=h), {"a": h}) for h in range(1, 21)]
    report = replay(current, document([conditioned("args.a <= 20"), BASE[1]]), calls)
    assert report.replayed == 0 and report.not_replayable == 20
    assert [(g.reason, g.calls) for g in report.gaps] == [("argument_condition", 20)]


def test_adding_a_condition_is_a_gap_and_removing_one_is_judged() -> None:
    plain = document([conditioned(None), BASE[1]])
    calls = [record_with(plain, CURSOR, "add", NOW - timedelta(hours=h), {"a": h}) for h in range(1, 5)]
    added = replay(plain, document([conditioned("args.a <= 2"), BASE[1]]), calls)
    assert added.not_replayable == 4 and added.replayed == 0
    strict = document([conditioned("args.a <= 2"), BASE[1]])
    calls = [record_with(strict, CURSOR, "add", NOW - timedelta(hours=h), {"a": h}) for h in range(1, 5)]
    removed = replay(strict, plain, calls)
    assert removed.replayed == 4 and removed.newly_allowed == 2 and removed.unchanged == 2
    assert [(r.before.reason, r.after.reason) for r in removed.rows] == [("condition_not_met", "allowed")]
