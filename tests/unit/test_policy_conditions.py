"""Argument conditions of tool rules: CEL over `args` and `caller`, decided by the pure evaluator."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from test_policy import BOB, GLOBEX, NOW, doc, grant, grants_strategy, identities, server, session

from mcp_runtime.policy import (
    ARGUMENTS_UNKNOWN,
    PolicyDocument,
    PolicyDocumentError,
    Reason,
    allowed_tools,
    compile_policy,
    evaluate,
)
from mcp_runtime.resources import MCPAccessGrant

REFUND = [{"name": "refund", "sideEffect": "write"}, {"name": "echo", "sideEffect": "read"}]


def refund_doc(condition: str, *, extra: list[MCPAccessGrant] | None = None) -> PolicyDocument:
    return doc(server(tools=REFUND), grants=[grant(rules=[{"name": "refund", "condition": condition}]),
                                             *(extra or [])])


@pytest.mark.parametrize(("condition", "arguments", "allowed"), [
    ("args.amount <= 100", {"amount": 100}, True),
    ("args.amount <= 100", {"amount": 100.5}, False),
    ("args.amount <= 100", {"amount": 7.25}, True),
    ("args.amount <= 100", {"amount": 101}, False),
    ("args.amount <= 100", {"amount": "50"}, False),  # a string is not a number: error, denied
    ("args.amount <= 100", {"amount": None}, False),
    ("args.amount <= 100", {}, False),  # a missing argument never passes
    ("args.currency == 'EUR'", {"currency": "EUR"}, True),
    ("args.currency == 'EUR'", {"currency": "USD"}, False),
    ("args.customer.startsWith('cus_')", {"customer": "cus_1"}, True),
    ("args.customer.startsWith('cus_')", {"customer": "acct_1"}, False),
    ("args.reason in ['duplicate', 'fraud']", {"reason": "fraud"}, True),
    ("args.reason in ['duplicate', 'fraud']", {"reason": "other"}, False),
    ("args.items.all(i, i.qty <= 3)", {"items": [{"qty": 1}, {"qty": 3}]}, True),
    ("args.items.all(i, i.qty <= 3)", {"items": [{"qty": 1}, {"qty": 4}]}, False),
    ("size(args.items) < 3", {"items": [1, 2]}, True),
    ("size(args.items) < 3", {"items": [1, 2, 3]}, False),
    ("!has(args.override)", {}, True),  # the author may choose to handle absence explicitly
    ("!has(args.override)", {"override": True}, False),
    ("args.amount", {"amount": 1}, False),  # not a boolean: denied
    ("1 / args.n == 1", {"n": 0}, False),  # an error: denied
])
def test_condition_decides(condition: str, arguments: dict[str, Any], allowed: bool) -> None:
    decision = evaluate(refund_doc(condition), BOB, "refund", NOW, arguments)
    assert decision.allowed == allowed
    assert decision.condition == condition
    if not allowed:
        assert decision.reason == Reason.condition_not_met
        assert decision.matched_grant == "g-cursor"
        assert condition in decision.message and decision.condition_detail


def test_missing_argument_is_named() -> None:
    decision = evaluate(refund_doc("args.amount <= 100"), BOB, "refund", NOW, {"currency": "EUR"})
    assert decision.condition_detail == "argument 'amount' is missing"
    assert "only when args.amount <= 100" in decision.message


def test_condition_over_the_caller() -> None:
    document = refund_doc(f"caller.teamID == '{GLOBEX}' && caller.humanID.endsWith('@globex.com')")
    assert evaluate(document, BOB, "refund", NOW, {}).allowed
    other = doc(server(tools=REFUND),
                grants=[grant(subject={"agentID": "cursor"},
                              rules=[{"name": "refund", "condition": "caller.humanID == 'alice@globex.com'"}])],
                sessions=[session(subject={"agentID": "cursor"})])
    assert evaluate(other, BOB, "refund", NOW, {}).reason == Reason.condition_not_met


def test_default_is_no_arguments_fail_closed() -> None:
    assert evaluate(refund_doc("args.amount <= 100"), BOB, "refund", NOW).reason == Reason.condition_not_met


def test_unknown_arguments_allow_conditionally_and_list_the_tool() -> None:
    document = refund_doc("args.amount <= 100")
    decision = evaluate(document, BOB, "refund", NOW, ARGUMENTS_UNKNOWN)
    assert decision.allowed and decision.conditional and decision.condition == "args.amount <= 100"
    assert "if its condition holds" in decision.message
    assert allowed_tools(document, BOB, NOW) == ["refund"]  # listed: some arguments pass


def test_another_grant_without_a_condition_still_allows() -> None:
    wide = grant("z-wide", rules=[{"name": "refund"}])
    decision = evaluate(refund_doc("args.amount <= 100", extra=[wide]), BOB, "refund", NOW, {"amount": 500})
    assert decision.allowed and decision.matched_grant == "z-wide" and decision.condition is None


@pytest.mark.parametrize(("rule", "expected"), [
    ({"name": "refund", "condition": "args.amount <="}, "toolRule 'refund': condition 'args.amount <=': not a valid"),
    ({"name": "refund", "condition": "amount <= 100"}, "unknown name(s) amount"),
    ({"name": "refund", "condition": "  "}, "the condition is empty"),
    ({"name": "refund", "condition": "x" * 3000}, "at most 2048 characters"),
    ({"name": "refund", "decision": "deny", "condition": "args.a"}, "only narrows an allow rule"),
])
def test_bad_conditions_are_refused_naming_the_rule(rule: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as err:
        grant(rules=[rule])
    assert expected in str(err.value)


def test_document_with_a_bad_condition_is_refused_on_load() -> None:
    raw = json.loads(refund_doc("args.amount <= 100").to_json())
    raw["grants"][0]["toolRules"][0]["condition"] = "args.amount <="
    raw.pop("revision")
    with pytest.raises(PolicyDocumentError, match="grant 'g-cursor' toolRule 'refund'"):
        PolicyDocument.from_json(json.dumps(raw))


def test_condition_round_trips_and_is_absent_when_unset() -> None:
    document = refund_doc("args.amount <= 100")
    loaded = PolicyDocument.from_json(document.to_json())
    assert loaded.revision == document.revision
    assert loaded.grants[0].tool_rules[0].condition == "args.amount <= 100"
    assert b'"condition"' not in doc().to_json()  # documents without conditions keep their revision


# --- property: a condition can only narrow what a rule allows -----------------------------------

conditions = st.sampled_from(["args.amount <= 100", "args.amount > 5 && args.currency == 'EUR'",
                              "has(args.note)", "true", "false", "args.amount", "caller.agentID == 'cursor'"])
arguments = st.fixed_dictionaries({}, optional={
    "amount": st.one_of(st.integers(-1000, 1000), st.floats(allow_nan=False, allow_infinity=False),
                        st.text(max_size=3)),
    "currency": st.sampled_from(["EUR", "USD"]),
    "note": st.none(),
})


@settings(max_examples=300, deadline=None)
@given(grants_strategy(), identities, st.sampled_from(["echo", "add", "create_task", "drop_db"]), conditions,
       arguments, st.data())
def test_a_condition_only_narrows(grants: list[MCPAccessGrant], identity: Any, tool: str, condition: str,
                                  args: dict[str, Any], data: st.DataObject) -> None:
    srv = server()
    sessions = [session()]
    before = evaluate(compile_policy(srv, grants, sessions), identity, tool, NOW, args)
    if not grants:
        return
    # Put the condition on an allow rule for the tool in one of the grants.
    index = data.draw(st.integers(0, len(grants) - 1))
    target = grants[index]
    kept = [r.model_dump(by_alias=True, exclude_none=True, mode="json") for r in target.spec.tool_rules
            if r.name != tool]
    existing = next((r for r in target.spec.tool_rules if r.name == tool), None)
    if existing is not None and existing.decision.value == "deny":
        return  # a condition goes only on allow rules
    new_rule: dict[str, Any] = {"name": tool, "condition": condition}
    if existing is not None and existing.required_trust is not None:
        new_rule["requiredTrust"] = existing.required_trust.value
    if existing is None and target.spec.tool_rules:
        return  # adding a rule would widen this grant; narrowing is about an existing allow
    changed = grant(target.metadata.name, subject=target.spec.subject.to_wire(), max_trust=target.spec.max_trust,
                    rules=[*kept, new_rule], side_effects=list(target.spec.allowed_side_effects),
                    disabled=target.spec.disabled, expires_at=target.spec.expires_at)
    after = evaluate(compile_policy(srv, [*grants[:index], changed, *grants[index + 1:]], sessions), identity,
                     tool, NOW, args)
    if after.allowed:
        assert before.allowed
    if condition == "true":
        assert after.allowed == before.allowed
