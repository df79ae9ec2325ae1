"""The pure policy evaluator: the only place an allow or deny is decided.

The gateway, `access explain` and the tests all call `evaluate`; none of them decides on its own.
The order of checks is docs/architecture.md, "How a tool call is decided". Nothing here does I/O or
reads the clock: `now` is an argument, so a decision is a function of (document, identity, tool, now) alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from mcp_runtime.policy.document import (
    PolicyDocument,
    PolicyGrant,
    PolicySession,
    PolicySubject,
    PolicyTool,
)
from mcp_runtime.resources import PolicyMode, SideEffect, ToolDecision, Trust
from mcp_runtime.resources.common import is_expired


class Reason(StrEnum):
    allowed = "allowed"
    observed = "observed"
    default_allow = "default_allow"
    missing_identity = "missing_identity"
    missing_session = "missing_session"
    session_revoked = "session_revoked"
    session_expired = "session_expired"
    session_not_found = "session_not_found"
    tool_side_effect_unknown = "tool_side_effect_unknown"
    no_matching_grant = "no_matching_grant"
    tool_denied = "tool_denied"
    tool_not_granted = "tool_not_granted"
    side_effect_not_allowed = "side_effect_not_allowed"
    trust_too_low = "trust_too_low"


AUTHENTICATION_REASONS = frozenset({
    Reason.missing_identity, Reason.missing_session, Reason.session_revoked,
    Reason.session_expired, Reason.session_not_found,
})

# When no grant passes, the failure that got furthest is reported: a grant that covers the tool and
# allows its side effect but lacks trust is "closer" than one that does not cover the tool at all.
_CLOSENESS = {Reason.tool_not_granted: 0, Reason.side_effect_not_allowed: 1, Reason.trust_too_low: 2}


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling, as verified from a session token (never from client-set headers)."""

    human_id: str | None = None
    agent_id: str | None = None
    team_id: str | None = None
    session_id: str | None = None

    def is_empty(self) -> bool:
        return not (self.human_id or self.agent_id or self.team_id or self.session_id)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Reason
    server: str
    tool: str | None = None
    matched_grant: str | None = None
    matched_session: str | None = None
    effective_trust: Trust | None = None
    required_trust: Trust | None = None
    side_effect: SideEffect | None = None
    policy_revision: str = ""

    @property
    def is_authentication_failure(self) -> bool:
        return self.reason in AUTHENTICATION_REASONS

    @property
    def message(self) -> str:
        """A sentence a person can act on: what happened and what to do about it."""
        return describe(self)

    def to_json(self) -> dict[str, Any]:
        """The decision as `access explain -o json` shows it (camelCase, enums as their values); the
        platform's answer and the CLI's local mode both start from this one mapping."""
        return {
            "allowed": self.allowed,
            "reason": self.reason.value,
            "server": self.server,
            "tool": self.tool,
            "matchedGrant": self.matched_grant,
            "matchedSession": self.matched_session,
            "requiredTrust": self.required_trust.value if self.required_trust else None,
            "effectiveTrust": self.effective_trust.value if self.effective_trust else None,
            "sideEffect": self.side_effect.value if self.side_effect else None,
            "policyRevision": self.policy_revision,
            "message": self.message,
        }


def _matches(subject: PolicySubject, identity: Identity) -> bool:
    """Every field the subject sets must equal the identity's; unset fields match anyone."""
    return (
        (subject.human_id is None or subject.human_id == identity.human_id)
        and (subject.agent_id is None or subject.agent_id == identity.agent_id)
        and (subject.team_id is None or subject.team_id == identity.team_id)
    )


class SessionState(StrEnum):
    """Where the caller's session stood when a request was decided (recorded with each analytics event,
    so a replay judges the call with the session as it was, not as it is now)."""

    active = "active"
    revoked = "revoked"
    expired = "expired"
    not_found = "not_found"


_SESSION_DENIALS = {SessionState.revoked: Reason.session_revoked, SessionState.expired: Reason.session_expired,
                    SessionState.not_found: Reason.session_not_found}


def session_state(doc: PolicyDocument, identity: Identity | None,
                  now: datetime) -> tuple[SessionState | None, PolicySession | None]:
    """The state of the identity's session in `doc` at `now` (None: the identity names no session).

    Step 3 of the evaluation; whatever the mode, so the gateway can record it even in observe mode."""
    if identity is None or not identity.session_id:
        return None, None
    session = doc.session(identity.session_id)
    if session is None or not _matches(session.subject, identity):
        return SessionState.not_found, None
    if session.revoked:
        return SessionState.revoked, session
    if is_expired(session.expires_at, now):
        return SessionState.expired, session
    return SessionState.active, session


def _check_session(
    doc: PolicyDocument, identity: Identity | None, now: datetime
) -> tuple[Decision | None, PolicySession | None]:
    """Steps 2-3: identity and session. Returns a denial, or the session in force (may be None)."""
    server = doc.server.name
    if identity is None or identity.is_empty():
        return Decision(False, Reason.missing_identity, server, policy_revision=doc.revision), None
    if not identity.session_id:
        if doc.session_required:
            return Decision(False, Reason.missing_session, server, policy_revision=doc.revision), None
        return None, None
    state, session = session_state(doc, identity, now)
    if state is not None and state != SessionState.active:
        name = session.name if session is not None else identity.session_id
        return Decision(False, _SESSION_DENIALS[state], server, matched_session=name,
                        policy_revision=doc.revision), None
    return None, session


def evaluate_access(doc: PolicyDocument, identity: Identity | None, now: datetime) -> Decision:
    """Decide a request that is not a tool call (initialize, resources/*, prompts/*, tools/list)."""
    if doc.mode == PolicyMode.observe:
        return Decision(True, Reason.observed, doc.server.name, policy_revision=doc.revision)
    denial, session = _check_session(doc, identity, now)
    if denial is not None:
        return denial
    return Decision(True, Reason.allowed, doc.server.name,
                    matched_session=session.name if session else None,
                    effective_trust=session.consented_trust if session else None,
                    policy_revision=doc.revision)


def evaluate(doc: PolicyDocument, identity: Identity | None, tool: str, now: datetime) -> Decision:
    """Decide a `tools/call` of `tool` by `identity` at `now`.

    The steps are those of docs/architecture.md, "How a tool call is decided"."""
    server = doc.server.name
    spec = doc.tool(tool)
    side_effect = spec.side_effect if spec else None

    def decision(allowed: bool, reason: Reason, *, matched_grant: str | None = None,
                 matched_session: str | None = None, effective_trust: Trust | None = None,
                 required_trust: Trust | None = None) -> Decision:
        return Decision(allowed, reason, server, tool=tool, side_effect=side_effect,
                        matched_grant=matched_grant, matched_session=matched_session,
                        effective_trust=effective_trust, required_trust=required_trust,
                        policy_revision=doc.revision)

    # 1. observe mode records but never blocks.
    if doc.mode == PolicyMode.observe:
        return decision(True, Reason.observed)
    # 2-3. identity and session.
    denial, session = _check_session(doc, identity, now)
    if denial is not None:
        return decision(False, denial.reason, matched_session=denial.matched_session)
    assert identity is not None
    session_name = session.name if session else None
    # 4. the tool must be declared with a side effect.
    if spec is None or spec.side_effect is None:
        return decision(False, Reason.tool_side_effect_unknown, matched_session=session_name)
    # 5. grants that apply to this identity now.
    grants = [
        g for g in doc.grants_by_name
        if not g.disabled and not is_expired(g.expires_at, now) and _matches(g.subject, identity)
    ]
    if not grants:
        if doc.default_decision == ToolDecision.allow:
            return decision(True, Reason.default_allow, matched_session=session_name,
                            required_trust=spec.required_trust,
                            effective_trust=session.consented_trust if session else None)
        return decision(False, Reason.no_matching_grant, matched_session=session_name,
                        required_trust=spec.required_trust)
    # 6. an explicit deny in any matching grant wins.
    for grant in grants:
        rule = grant.rule_for(tool)
        if rule is not None and rule.decision == ToolDecision.deny:
            return decision(False, Reason.tool_denied, matched_grant=grant.name, matched_session=session_name,
                            required_trust=spec.required_trust)
    # 7. each grant on its own; the first (by name) that passes allows.
    closest: Decision | None = None
    for grant in grants:  # already in name order
        verdict = _judge_grant(grant, spec, session, decision, session_name)
        if verdict.allowed:
            return verdict
        if closest is None or _CLOSENESS[verdict.reason] > _CLOSENESS[closest.reason]:
            closest = verdict
    assert closest is not None
    return closest


def _judge_grant(grant: PolicyGrant, tool: PolicyTool, session: PolicySession | None,
                 decision: Callable[..., Decision], session_name: str | None) -> Decision:
    """Step 7 for one grant: does it cover the tool, allow its side effect, and carry enough trust?"""
    rule = grant.rule_for(tool.name)
    required = tool.required_trust
    if rule is not None and rule.required_trust is not None:
        required = max(required, rule.required_trust)
    effective = min(grant.max_trust, session.consented_trust) if session else grant.max_trust
    reason = Reason.allowed
    if grant.tool_rules and rule is None:
        reason = Reason.tool_not_granted
    elif grant.allowed_side_effects and tool.side_effect not in grant.allowed_side_effects:
        reason = Reason.side_effect_not_allowed
    elif effective < required:
        reason = Reason.trust_too_low
    return decision(reason == Reason.allowed, reason, matched_grant=grant.name,
                    matched_session=session_name, required_trust=required, effective_trust=effective)


def allowed_tools(doc: PolicyDocument, identity: Identity | None, now: datetime) -> list[str]:
    """The tools `identity` may call now, by asking `evaluate` for each: list and call always agree."""
    return [t.name for t in doc.tools if evaluate(doc, identity, t.name, now).allowed]


def describe(decision: Decision) -> str:
    """The human sentence for a decision; shown by MCP clients in the JSON-RPC error message."""
    tool = f"tool {decision.tool!r}" if decision.tool else "this request"
    server = decision.server
    reason = decision.reason
    if reason == Reason.allowed:
        return f"{tool} on {server} is allowed by grant {decision.matched_grant or '(none)'}"
    if reason == Reason.observed:
        return f"{server} is in observe mode: {tool} is recorded, not enforced"
    if reason == Reason.default_allow:
        return f"no grant matches, and {server}'s default decision is allow"
    if reason == Reason.missing_identity:
        return ("no verified identity: send a session token as 'Authorization: Bearer <token>' "
                "(get one with 'mcp-runtime adapter proxy --server ...' or 'access session token')")
    if reason == Reason.missing_session:
        return f"{server} requires a session: connect through 'mcp-runtime adapter' or send a session token"
    if reason == Reason.session_revoked:
        return (f"session {decision.matched_session!r} was revoked; an admin must run "
                f"'mcp-runtime access session unrevoke {decision.matched_session}' before it works again")
    if reason == Reason.session_expired:
        return f"session {decision.matched_session!r} has expired: obtain a new session (adapter --auto-refresh)"
    if reason == Reason.session_not_found:
        return f"session {decision.matched_session!r} is not known to {server}: obtain a new session"
    if reason == Reason.tool_side_effect_unknown:
        return (f"{tool} is not declared in {server}'s metadata with a side effect; add it to "
                ".mcp/servers.yaml and redeploy (server validate catches this)")
    if reason == Reason.no_matching_grant:
        return (f"no grant on {server} matches this caller; ask the server's team to create one "
                "with 'mcp-runtime access grant init ... && mcp-runtime access grant apply'")
    if reason == Reason.tool_denied:
        return f"{tool} is explicitly denied by grant {decision.matched_grant!r}"
    if reason == Reason.tool_not_granted:
        return f"{tool} is not in grant {decision.matched_grant!r}; add a toolRule for it to the grant"
    if reason == Reason.side_effect_not_allowed:
        return (f"{tool} has side effect {decision.side_effect}, which grant {decision.matched_grant!r} "
                "does not allow")
    return (f"{tool} needs trust {decision.required_trust} but this session has {decision.effective_trust}; "
            "request a higher trust or ask for a grant with a higher maxTrust")
