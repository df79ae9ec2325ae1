"""The evaluator's approval decision: which calls wait for a person, and who that person is.

A tool's metadata (`requiresApproval`, `approver`), a grant's tool rule (`approval`) and the default
(every destructive tool needs the caller's approval unless its metadata says otherwise) all end in one
decision, `approval_required` with the approver; the stricter requirement wins and rules only narrow.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_policy import BOB, NOW, doc, grant, server

from mcp_runtime.policy import Reason, allowed_tools, compile_policy, evaluate
from mcp_runtime.policy.document import PolicyDocument
from mcp_runtime.resources import MCPServer
from mcp_runtime.resources.approval import Approver, arguments_digest, tool_approver
from mcp_runtime.resources.common import SideEffect

TOOLS: list[dict[str, Any]] = [
    {"name": "echo", "sideEffect": "read"},
    {"name": "drop_db", "sideEffect": "destructive"},
    {"name": "wipe_cache", "sideEffect": "destructive", "requiresApproval": False},
    {"name": "refund", "sideEffect": "write", "requiresApproval": True, "approver": "owners"},
    {"name": "rename", "sideEffect": "write"},
]


def approval_doc(*rules: dict[str, Any], default: str = "deny", grants: bool = True) -> PolicyDocument:
    return doc(server(tools=TOOLS, default=default), grants=[grant(rules=list(rules))] if grants else [])


@pytest.mark.parametrize(("tool", "reason", "approver"), [
    ("echo", Reason.allowed, None),
    ("drop_db", Reason.approval_required, Approver.caller),  # destructive: the caller's approval by default
    ("wipe_cache", Reason.allowed, None),  # ... unless the metadata says otherwise
    ("refund", Reason.approval_required, Approver.owners),  # asked for by the metadata, the owners approve
    ("rename", Reason.allowed, None),
])
def test_tool_metadata_and_the_destructive_default(tool: str, reason: Reason, approver: Approver | None) -> None:
    decision = evaluate(approval_doc(), BOB, tool, NOW)
    assert (decision.reason, decision.approval) == (reason, approver)
    assert decision.allowed == (reason == Reason.allowed)  # fail closed: a caller that ignores it does not run it
    assert decision.may_call and decision.matched_grant == "g-cursor"


def test_a_grant_rule_asks_for_approval_and_the_stricter_approver_wins() -> None:
    document = approval_doc({"name": "rename", "approval": "caller"}, {"name": "drop_db", "approval": "owners"},
                            {"name": "refund", "approval": "caller"}, {"name": "echo"})
    got = {t: evaluate(document, BOB, t, NOW) for t in ("rename", "drop_db", "refund", "echo")}
    assert got["rename"].approval == Approver.caller
    assert got["drop_db"].approval == Approver.owners  # the rule is stricter than the tool's default
    assert got["refund"].approval == Approver.owners  # a rule never loosens the tool's own requirement
    assert got["echo"].allowed and got["echo"].approval is None


def test_approval_comes_after_every_denial() -> None:
    # a call the policy denies is denied with its reason: approval is never a way around a grant
    document = approval_doc({"name": "drop_db", "decision": "deny"})
    assert evaluate(document, BOB, "drop_db", NOW).reason == Reason.tool_denied
    document = doc(server(tools=TOOLS), grants=[grant(side_effects=["read", "write"])])
    assert evaluate(document, BOB, "drop_db", NOW).reason == Reason.side_effect_not_allowed


def test_default_allow_servers_still_ask() -> None:
    decision = evaluate(approval_doc(default="allow", grants=False), BOB, "drop_db", NOW)
    assert (decision.allowed, decision.reason, decision.approval) == (False, Reason.approval_required, Approver.caller)
    assert evaluate(approval_doc(default="allow", grants=False), BOB, "echo", NOW).reason == Reason.default_allow


def test_tools_that_need_approval_are_listed() -> None:
    # tools/list and tools/call agree: the tool is offered, and its call waits for the person
    assert set(allowed_tools(approval_doc(), BOB, NOW)) == {t["name"] for t in TOOLS}


def test_the_approval_travels_in_the_document_and_the_timeout_is_bounded() -> None:
    base = MCPServer.model_validate({"metadata": {"name": "payments", "namespace": "ns"},
                                     "spec": {"image": "i", "tools": TOOLS,
                                              "policy": {"approvalTimeout": "30s"}}})
    document = compile_policy(base, [], [])
    again = PolicyDocument.from_json(document.to_json())
    assert again.tool("drop_db").approval == Approver.caller and again.approval_timeout == 30.0  # type: ignore[union-attr]
    assert again.tool("echo").approval is None  # type: ignore[union-attr]
    slow = base.model_copy(update={"spec": base.spec.model_copy(update={
        "policy": base.spec.policy.model_copy(update={"approval_timeout": "9h"})})})
    assert compile_policy(slow, [], []).approval_timeout == 3600.0
    # a server without approvals keeps the revision it had before approvals existed (nothing new in its JSON)
    plain = MCPServer.model_validate({"metadata": {"name": "p", "namespace": "ns"},
                                      "spec": {"image": "i", "tools": [{"name": "echo", "sideEffect": "read"}]}})
    body = compile_policy(plain, [], []).body()
    assert "approval" not in str(body).lower()


def test_describe_says_what_to_do() -> None:
    decision = evaluate(approval_doc(), BOB, "refund", NOW)
    assert "access approvals list" in decision.message and "owners" in decision.message
    assert decision.to_json()["approval"] == "owners" and decision.to_json()["reason"] == "approval_required"


def test_tool_approver_and_argument_digest() -> None:
    assert tool_approver(SideEffect.destructive, None, None) == Approver.caller
    assert tool_approver(SideEffect.destructive, False, Approver.owners) is None
    assert tool_approver(SideEffect.read, True, None) == Approver.caller
    assert tool_approver(SideEffect.read, None, Approver.owners) is None
    # bound to the exact arguments: key order does not matter, any value does
    assert arguments_digest({"a": 1, "b": 2}) == arguments_digest({"b": 2, "a": 1})
    assert arguments_digest({"a": 1}) != arguments_digest({"a": 2}) and arguments_digest(None) == arguments_digest({})
