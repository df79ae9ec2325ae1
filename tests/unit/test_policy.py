"""The policy document and the evaluator: every reason code, table-driven, plus properties."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_runtime.policy import (
    Identity,
    PolicyDocument,
    PolicyDocumentError,
    Reason,
    allowed_tools,
    compile_policy,
    evaluate,
    evaluate_access,
)
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
NS = "mcp-team-acme"
GLOBEX = "globex-uuid"

TOOLS = [
    {"name": "echo", "sideEffect": "read"},
    {"name": "add", "sideEffect": "read"},
    {"name": "create_task", "sideEffect": "write", "requiredTrust": "medium"},
    {"name": "drop_db", "sideEffect": "destructive", "requiredTrust": "high"},
]


def server(*, tools: list[dict[str, Any]] | None = None, mode: str = "allow-list", default: str = "deny",
           session_required: bool = True) -> MCPServer:
    return MCPServer.model_validate({
        "metadata": {"name": "payments", "namespace": NS},
        "spec": {"image": "acme/payments", "teamID": "acme-uuid", "tools": TOOLS if tools is None else tools,
                 "policy": {"mode": mode, "defaultDecision": default},
                 "session": {"required": session_required}},
    })


def grant(name: str = "g-cursor", *, subject: dict[str, str] | None = None, max_trust: str = "high",
          rules: list[dict[str, Any]] | None = None, side_effects: list[str] | None = None,
          disabled: bool = False, expires_at: datetime | None = None, server_name: str = "payments",
          namespace: str = NS) -> MCPAccessGrant:
    return MCPAccessGrant.model_validate({
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"serverRef": {"name": server_name}, "subject": subject or {"agentID": "cursor", "teamID": GLOBEX},
                 "maxTrust": max_trust, "toolRules": rules or [], "allowedSideEffects": side_effects or [],
                 "disabled": disabled, "expiresAt": expires_at},
    })


def session(name: str = "s1", *, trust: str = "high", revoked: bool = False,
            expires_at: datetime | None = NOW + timedelta(hours=1),
            subject: dict[str, str] | None = None) -> MCPAgentSession:
    return MCPAgentSession.model_validate({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"serverRef": {"name": "payments"}, "subject": subject or {"agentID": "cursor", "teamID": GLOBEX},
                 "consentedTrust": trust, "revoked": revoked, "expiresAt": expires_at},
    })


BOB = Identity(human_id="bob@globex.com", agent_id="cursor", team_id=GLOBEX, session_id="s1")


def doc(srv: MCPServer | None = None, grants: list[MCPAccessGrant] | None = None,
        sessions: list[MCPAgentSession] | None = None) -> PolicyDocument:
    return compile_policy(srv or server(), grants if grants is not None else [grant()],
                          sessions if sessions is not None else [session()])


# Each row: (case id, document, identity, tool, expected allowed, expected reason, expected matched grant)
CASES: list[tuple[str, PolicyDocument, Identity | None, str, bool, Reason, str | None]] = [
    ("allowed", doc(), BOB, "echo", True, Reason.allowed, "g-cursor"),
    ("observed", doc(server(mode="observe"), grants=[]), None, "anything", True, Reason.observed, None),
    ("default_allow", doc(server(default="allow"), grants=[]), BOB, "echo", True, Reason.default_allow, None),
    ("missing_identity", doc(), None, "echo", False, Reason.missing_identity, None),
    ("missing_identity_empty", doc(), Identity(), "echo", False, Reason.missing_identity, None),
    ("missing_session", doc(), Identity(agent_id="cursor", team_id=GLOBEX), "echo", False,
     Reason.missing_session, None),
    ("session_revoked", doc(sessions=[session(revoked=True)]), BOB, "echo", False, Reason.session_revoked, None),
    ("session_expired", doc(sessions=[session(expires_at=NOW)]), BOB, "echo", False, Reason.session_expired, None),
    ("session_not_found", doc(sessions=[]), BOB, "echo", False, Reason.session_not_found, None),
    ("session_of_someone_else", doc(sessions=[session(subject={"agentID": "claude"})]), BOB, "echo", False,
     Reason.session_not_found, None),
    ("tool_side_effect_unknown", doc(), BOB, "not_declared", False, Reason.tool_side_effect_unknown, None),
    ("no_matching_grant", doc(grants=[grant(subject={"agentID": "claude"})]), BOB, "echo", False,
     Reason.no_matching_grant, None),
    ("no_matching_grant_disabled", doc(grants=[grant(disabled=True)]), BOB, "echo", False,
     Reason.no_matching_grant, None),
    ("no_matching_grant_expired", doc(grants=[grant(expires_at=NOW - timedelta(seconds=1))]), BOB, "echo", False,
     Reason.no_matching_grant, None),
    ("no_matching_grant_other_team", doc(grants=[grant(subject={"teamID": "acme-uuid"})]), BOB, "echo", False,
     Reason.no_matching_grant, None),
    ("tool_denied", doc(grants=[grant(), grant("g-deny", rules=[{"name": "echo", "decision": "deny"}])]), BOB,
     "echo", False, Reason.tool_denied, "g-deny"),
    ("tool_not_granted", doc(grants=[grant(rules=[{"name": "add"}])]), BOB, "echo", False,
     Reason.tool_not_granted, "g-cursor"),
    ("side_effect_not_allowed", doc(grants=[grant(side_effects=["read"])]), BOB, "create_task", False,
     Reason.side_effect_not_allowed, "g-cursor"),
    ("trust_too_low_grant", doc(grants=[grant(max_trust="low")]), BOB, "create_task", False,
     Reason.trust_too_low, "g-cursor"),
    ("trust_too_low_session", doc(sessions=[session(trust="medium")]), BOB, "drop_db", False,
     Reason.trust_too_low, "g-cursor"),
    ("trust_too_low_rule", doc(grants=[grant(rules=[{"name": "echo", "requiredTrust": "high"}], max_trust="medium")]),
     BOB, "echo", False, Reason.trust_too_low, "g-cursor"),
    ("condition_not_met", doc(grants=[grant(rules=[{"name": "add", "condition": "args.a <= 100"}])]), BOB, "add",
     False, Reason.condition_not_met, "g-cursor"),
    ("team_grant_covers_any_agent", doc(grants=[grant(subject={"teamID": GLOBEX})]), BOB, "add", True,
     Reason.allowed, "g-cursor"),
    ("first_passing_grant_by_name",
     doc(grants=[grant("z-wide"), grant("a-narrow", rules=[{"name": "add"}])]), BOB, "echo", True,
     Reason.allowed, "z-wide"),
    ("session_not_required_no_session", doc(server(session_required=False), sessions=[]),
     Identity(agent_id="cursor", team_id=GLOBEX), "echo", True, Reason.allowed, "g-cursor"),
]


@pytest.mark.parametrize(("case", "document", "identity", "tool", "allowed", "reason", "grant_name"), CASES,
                         ids=[c[0] for c in CASES])
def test_every_reason(case: str, document: PolicyDocument, identity: Identity | None, tool: str, allowed: bool,
                      reason: Reason, grant_name: str | None) -> None:
    decision = evaluate(document, identity, tool, NOW)
    assert (decision.allowed, decision.reason) == (allowed, reason)
    if grant_name is not None:
        assert decision.matched_grant == grant_name
    assert decision.policy_revision == document.revision
    assert decision.message  # every decision explains itself
    assert decision.is_authentication_failure == (reason in {
        Reason.missing_identity, Reason.missing_session, Reason.session_revoked, Reason.session_expired,
        Reason.session_not_found})


def test_every_reason_has_a_case() -> None:
    # those: test_policy_pinning.py; rate_limited is the gateway's counters' answer for a limit the evaluator
    # named (gateway/limits.py)
    # approval_required and what became of it: test_policy_approval.py (the outcomes are the gateway's)
    others = {Reason.tool_definition_changed, Reason.tool_not_pinned, Reason.tool_definition_unverified,
              Reason.rate_limited, Reason.approval_required, Reason.approved, Reason.approval_declined,
              Reason.approval_denied, Reason.approval_timeout, Reason.approval_unavailable,
              Reason.approval_cancelled}
    assert {c[5] for c in CASES} == set(Reason) - others


def test_closest_failure_is_reported() -> None:
    # g-a does not cover the tool; g-b covers it with the side effect allowed but lacks trust.
    document = doc(grants=[grant("g-a", rules=[{"name": "echo"}]), grant("g-b", max_trust="low")])
    decision = evaluate(document, BOB, "create_task", NOW)
    assert decision.reason == Reason.trust_too_low and decision.matched_grant == "g-b"
    assert (decision.required_trust, decision.effective_trust) == ("medium", "low")


def test_effective_trust_is_min_of_grant_and_session() -> None:
    decision = evaluate(doc(grants=[grant(max_trust="high")], sessions=[session(trust="medium")]), BOB,
                        "create_task", NOW)
    assert decision.allowed and decision.effective_trust == "medium" and decision.required_trust == "medium"


def test_messages_are_actionable() -> None:
    assert "unrevoke" in evaluate(doc(sessions=[session(revoked=True)]), BOB, "echo", NOW).message
    assert "grant init" in evaluate(doc(grants=[]), BOB, "echo", NOW).message
    assert "servers.yaml" in evaluate(doc(), BOB, "nope", NOW).message
    assert "Authorization: Bearer" in evaluate(doc(), None, "echo", NOW).message


def test_evaluate_access_for_non_tool_methods() -> None:
    assert evaluate_access(doc(), BOB, NOW).allowed
    assert evaluate_access(doc(), None, NOW).reason == Reason.missing_identity
    assert evaluate_access(doc(sessions=[session(revoked=True)]), BOB, NOW).reason == Reason.session_revoked
    assert evaluate_access(doc(server(mode="observe")), None, NOW).reason == Reason.observed


def test_allowed_tools_filters_listing() -> None:
    document = doc(grants=[grant(rules=[{"name": "echo"}, {"name": "add"}, {"name": "drop_db"}], max_trust="medium")])
    assert allowed_tools(document, BOB, NOW) == ["add", "echo"]
    assert allowed_tools(document, None, NOW) == []


# --- the document -----------------------------------------------------------------------------


def test_compile_keeps_only_this_servers_resources_and_sorts() -> None:
    document = compile_policy(server(), [
        grant("b"), grant("a"), grant("other", server_name="billing"),
    ], [session("s2"), session("s1")])
    assert [g.name for g in document.grants] == ["a", "b"]
    assert [s.name for s in document.sessions] == ["s1", "s2"]
    assert [t.name for t in document.tools] == ["add", "create_task", "drop_db", "echo"]
    assert document.server.team_id == "acme-uuid"


def test_revision_is_deterministic_and_content_addressed() -> None:
    a = compile_policy(server(), [grant("a"), grant("b")], [session()])
    b = compile_policy(server(), [grant("b"), grant("a")], [session()])
    assert a.revision == b.revision and len(a.revision) == 64
    assert a.to_json() == b.to_json()
    c = compile_policy(server(), [grant("a"), grant("b")], [session(revoked=True)])
    assert c.revision != a.revision


def test_json_round_trip_and_canonical_form() -> None:
    document = doc()
    raw = document.to_json()
    assert b" " not in raw.replace(b"bob@globex.com", b"")  # compact separators
    loaded = PolicyDocument.from_json(raw)
    assert loaded == document and loaded.revision == document.revision
    assert list(json.loads(raw)) == sorted(json.loads(raw))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"schemaVersion": 99}', "schemaVersion 99 is not supported"),
        (b'{"schemaVersion": 1}', "server: missing required field"),
    ],
)
def test_bad_documents_are_refused(data: bytes, expected: str) -> None:
    with pytest.raises(PolicyDocumentError, match=expected):
        PolicyDocument.from_json(data)


def test_tampered_document_is_refused() -> None:
    raw = json.loads(doc().to_json())
    raw["grants"][0]["maxTrust"] = "high" if raw["grants"][0]["maxTrust"] != "high" else "low"
    with pytest.raises(PolicyDocumentError, match="does not match its content"):
        PolicyDocument.from_json(json.dumps(raw))


# --- properties -------------------------------------------------------------------------------

TRUSTS = ["low", "medium", "high"]
SIDE_EFFECTS = ["read", "write", "destructive"]
TOOL_NAMES = ["echo", "add", "create_task", "drop_db", "ghost"]

subjects = st.fixed_dictionaries({}, optional={
    "agentID": st.sampled_from(["cursor", "claude"]),
    "teamID": st.sampled_from([GLOBEX, "acme-uuid"]),
    "humanID": st.sampled_from(["bob@globex.com", "alice@acme.com"]),
}).filter(bool)
rules = st.lists(st.fixed_dictionaries({
    "name": st.sampled_from(TOOL_NAMES),
    "decision": st.sampled_from(["allow", "deny"]),
}, optional={"requiredTrust": st.sampled_from(TRUSTS)}), max_size=3, unique_by=lambda r: r["name"])


@st.composite
def grants_strategy(draw: st.DrawFn) -> list[MCPAccessGrant]:
    count = draw(st.integers(min_value=0, max_value=4))
    return [
        grant(f"g{i}", subject=draw(subjects), max_trust=draw(st.sampled_from(TRUSTS)), rules=draw(rules),
              side_effects=draw(st.lists(st.sampled_from(SIDE_EFFECTS), max_size=2, unique=True)),
              disabled=draw(st.booleans()),
              expires_at=draw(st.sampled_from([None, NOW - timedelta(hours=1), NOW + timedelta(hours=1)])))
        for i in range(count)
    ]


identities = st.builds(
    Identity,
    human_id=st.sampled_from([None, "bob@globex.com", "alice@acme.com"]),
    agent_id=st.sampled_from([None, "cursor", "claude"]),
    team_id=st.sampled_from([None, GLOBEX, "acme-uuid"]),
    session_id=st.sampled_from([None, "s1"]),
)
sessions_strategy = st.builds(
    lambda trust, revoked, subj: [session(trust=trust, revoked=revoked, subject=subj)],
    st.sampled_from(TRUSTS), st.booleans(), subjects,
)
defaults = st.sampled_from(["allow", "deny"])


@settings(max_examples=300, deadline=None)
@given(grants_strategy(), sessions_strategy, identities, st.sampled_from(TOOL_NAMES), rules, defaults)
def test_adding_a_deny_rule_never_turns_deny_into_allow(
    grants: list[MCPAccessGrant], sessions: list[MCPAgentSession], identity: Identity, tool: str,
    extra_rules: list[dict[str, Any]], default: str,
) -> None:
    srv = server(default=default)
    before = evaluate(compile_policy(srv, grants, sessions), identity, tool, NOW)
    if before.allowed or not grants:
        return
    # Add a deny rule for some tool to one grant (replacing any rule of that name).
    target = grants[0]
    new_rule = {"name": tool, "decision": "deny"}
    kept = [r.model_dump(by_alias=True, exclude_none=True, mode="json") for r in target.spec.tool_rules
            if r.name != tool]
    changed = grant(target.metadata.name, subject=target.spec.subject.to_wire(), max_trust=target.spec.max_trust,
                    rules=[*kept, new_rule], side_effects=list(target.spec.allowed_side_effects),
                    disabled=target.spec.disabled, expires_at=target.spec.expires_at)
    after = evaluate(compile_policy(srv, [changed, *grants[1:]], sessions), identity, tool, NOW)
    assert not after.allowed


@settings(max_examples=300, deadline=None)
@given(grants_strategy(), identities, st.sampled_from(TOOL_NAMES), st.sampled_from(TRUSTS),
       st.sampled_from(TRUSTS), defaults)
def test_lowering_session_trust_never_turns_deny_into_allow(
    grants: list[MCPAccessGrant], identity: Identity, tool: str, high: str, low: str, default: str,
) -> None:
    if TRUSTS.index(low) > TRUSTS.index(high):
        high, low = low, high
    srv = server(default=default)
    subj = {"agentID": "cursor", "teamID": GLOBEX}
    before = evaluate(compile_policy(srv, grants, [session(trust=high, subject=subj)]), identity, tool, NOW)
    after = evaluate(compile_policy(srv, grants, [session(trust=low, subject=subj)]), identity, tool, NOW)
    if not before.allowed:
        assert not after.allowed


@settings(max_examples=300, deadline=None)
@given(grants_strategy(), sessions_strategy, identities, defaults, st.sampled_from(["allow-list", "observe"]))
def test_allowed_tools_is_exactly_the_callable_tools(
    grants: list[MCPAccessGrant], sessions: list[MCPAgentSession], identity: Identity, default: str, mode: str,
) -> None:
    document = compile_policy(server(default=default, mode=mode), grants, sessions)
    listed = set(allowed_tools(document, identity, NOW))
    callable_tools = {t for t in TOOL_NAMES if evaluate(document, identity, t, NOW).may_call}  # some once approved
    declared = {t.name for t in document.tools}
    assert listed == callable_tools & declared


@settings(max_examples=200, deadline=None)
@given(grants_strategy(), sessions_strategy)
def test_revision_is_independent_of_input_order(grants: list[MCPAccessGrant], sessions: list[MCPAgentSession]) -> None:
    assert compile_policy(server(), grants, sessions).revision == compile_policy(
        server(), list(reversed(grants)), sessions).revision
