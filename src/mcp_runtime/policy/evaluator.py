"""The pure policy evaluator: the only place an allow or deny is decided.

The gateway, `access explain` and the tests all call `evaluate`; none of them decides on its own.
The order of checks is docs/architecture.md, "How a tool call is decided". Nothing here does I/O or
reads the clock: `now` is an argument, so a decision is a function of (document, identity, tool, now) alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any

from mcp_runtime.policy.document import (
    PolicyDocument,
    PolicyGrant,
    PolicyRateLimit,
    PolicySession,
    PolicySubject,
    PolicyTool,
    PolicyToolRule,
)
from mcp_runtime.policy.pinning import PinState, pin_state, pinning_active
from mcp_runtime.resources import PolicyMode, SideEffect, ToolDecision, Trust
from mcp_runtime.resources.approval import Approver, stricter
from mcp_runtime.resources.common import is_expired
from mcp_runtime.resources.limits import LimitKey
from mcp_runtime.resources.pinning import PinMode


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
    tool_definition_changed = "tool_definition_changed"
    tool_not_pinned = "tool_not_pinned"
    tool_definition_unverified = "tool_definition_unverified"
    condition_not_met = "condition_not_met"
    rate_limited = "rate_limited"  # not the evaluator's: the gateway's counters, for a limit it named
    approval_required = "approval_required"  # allowed once the approver says yes (`Decision.approval`)
    # what became of an approval_required call (the gateway's, after asking the person: gateway/approval.py)
    approved = "approved"
    approval_declined = "approval_declined"
    approval_denied = "approval_denied"
    approval_timeout = "approval_timeout"
    approval_unavailable = "approval_unavailable"
    approval_cancelled = "approval_cancelled"  # the caller went away, or cancelled the call, while it waited


AUTHENTICATION_REASONS = frozenset({
    Reason.missing_identity, Reason.missing_session, Reason.session_revoked,
    Reason.session_expired, Reason.session_not_found,
})

_PIN_DENIALS = {PinState.changed: Reason.tool_definition_changed, PinState.not_pinned: Reason.tool_not_pinned,
                PinState.unverified: Reason.tool_definition_unverified}

# When no grant passes, the failure that got furthest is reported: a grant that covers the tool and
# allows its side effect but lacks trust is "closer" than one that does not cover the tool at all.
_CLOSENESS = {Reason.tool_not_granted: 0, Reason.side_effect_not_allowed: 1, Reason.trust_too_low: 2,
              Reason.condition_not_met: 3}
_PASSING = frozenset({Reason.allowed, Reason.approval_required})


class Unknown(Enum):
    """The call's arguments are not known (a `tools/list` filter, `access explain` without `--arguments`,
    a replay of a recorded call, which keeps only their digest)."""

    arguments = "unknown"


ARGUMENTS_UNKNOWN = Unknown.arguments
"""Pass as `arguments` when they are not known: a rule with a condition then allows *conditionally*
(`Decision.conditional`), which the caller must not take as a plain allow for a call."""

_NO_ARGUMENTS: Mapping[str, Any] = MappingProxyType({})


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
class AppliedLimit:
    """A rate limit that applies to an allowed call, and the bucket it counts in: the gateway takes a
    token from every applied limit of a call (or refuses it with `rate_limited`)."""

    scope: str  # whose limit: "server", "grant/<name>" or "grant/<name>/tool/<tool>"
    key: tuple[str, ...]  # the call's values of `limit.per`: calls with the same key share a bucket
    limit: PolicyRateLimit


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
    condition: str | None = None  # the rule's condition that was checked (or could not be: `conditional`)
    condition_detail: str | None = None  # why it did not hold
    conditional: bool = False  # allowed only if `condition` holds: the arguments were not known
    limits: tuple[AppliedLimit, ...] = ()  # rate limits the gateway must count this allowed call against
    retry_after: float | None = None  # rate_limited: seconds until the limit lets a call through
    approval: Approver | None = None  # approval_required: who must say yes before the call goes on
    approved_by: str | None = None  # approved: who said yes

    @property
    def may_call(self) -> bool:
        """Allowed, or allowed once a person approves: what `tools/list` shows."""
        return self.allowed or self.reason is Reason.approval_required

    @property
    def needs_approval(self) -> bool:
        """Allowed once a person approves: the gateway must ask (`approval`) before it forwards the call."""
        return self.reason is Reason.approval_required

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
            "condition": self.condition,
            "conditionDetail": self.condition_detail,
            "conditional": self.conditional,
            "approval": self.approval.value if self.approval else None,
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


def evaluate(doc: PolicyDocument, identity: Identity | None, tool: str, now: datetime,
             arguments: Mapping[str, Any] | Unknown = _NO_ARGUMENTS, *,
             observed: Mapping[str, str] | None = None) -> Decision:
    """Decide a `tools/call` of `tool` by `identity` at `now` with `arguments`.

    The steps are those of docs/architecture.md, "How a tool call is decided". `arguments` defaults to
    none at all (so a rule's condition over an argument fails: closed); `ARGUMENTS_UNKNOWN` asks what
    would be decided for some arguments (see `Unknown`). `observed`: the digests of the tool definitions
    the gateway saw from the server (tool name -> `sha256:...`); given, the definition is judged against
    its pin (step 4b). Callers that do not see definitions (`access explain`, replays) leave it None."""
    server = doc.server.name
    spec = doc.tool(tool)
    side_effect = spec.side_effect if spec else None

    def decision(allowed: bool, reason: Reason, *, matched_grant: str | None = None,
                 matched_session: str | None = None, effective_trust: Trust | None = None,
                 required_trust: Trust | None = None, **extra: Any) -> Decision:
        return Decision(allowed, reason, server, tool=tool, side_effect=side_effect,
                        matched_grant=matched_grant, matched_session=matched_session,
                        effective_trust=effective_trust, required_trust=required_trust,
                        policy_revision=doc.revision, **extra)

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
    # 4b. a pinned server's tool must be exactly the reviewed definition (enforce mode).
    if observed is not None and doc.pin_mode == PinMode.enforce and pinning_active(doc):
        state = pin_state(spec, observed.get(tool))
        if state != PinState.pinned:
            return decision(False, _PIN_DENIALS[state], matched_session=session_name)
    # 5. grants that apply to this identity now.
    grants = [
        g for g in doc.grants_by_name
        if not g.disabled and not is_expired(g.expires_at, now) and _matches(g.subject, identity)
    ]
    if not grants:
        return _without_grant(doc, spec, session, identity, decision)
    # 6. an explicit deny in any matching grant wins.
    for grant in grants:
        rule = grant.rule_for(tool)
        if rule is not None and rule.decision == ToolDecision.deny:
            return decision(False, Reason.tool_denied, matched_grant=grant.name, matched_session=session_name,
                            required_trust=spec.required_trust)
    # 7-9. each grant on its own; the first (by name) that passes allows.
    closest: Decision | None = None
    for grant in grants:  # already in name order
        verdict = _judge_grant(doc, grant, spec, session, identity, arguments, decision, session_name)
        if verdict.reason in _PASSING:
            return verdict
        if closest is None or _CLOSENESS[verdict.reason] > _CLOSENESS[closest.reason]:
            closest = verdict
    assert closest is not None
    return closest


def _without_grant(doc: PolicyDocument, tool: PolicyTool, session: PolicySession | None, identity: Identity,
                   decision: Callable[..., Decision]) -> Decision:
    """Step 5 when no grant applies: the server's default decision (allow still asks for a tool's approval)."""
    session_name = session.name if session else None
    if doc.default_decision != ToolDecision.allow:
        return decision(False, Reason.no_matching_grant, matched_session=session_name,
                        required_trust=tool.required_trust)
    approver = tool.approval
    return decision(approver is None, Reason.approval_required if approver else Reason.default_allow,
                    matched_session=session_name, required_trust=tool.required_trust,
                    effective_trust=session.consented_trust if session else None, approval=approver,
                    limits=_limits(doc, None, None, tool.name, identity) if doc.rate_limit else ())


def _judge_grant(doc: PolicyDocument, grant: PolicyGrant, tool: PolicyTool, session: PolicySession | None,
                 identity: Identity, arguments: Mapping[str, Any] | Unknown,
                 decision: Callable[..., Decision], session_name: str | None) -> Decision:
    """Steps 7-9 for one grant: does it cover the tool, allow its side effect, carry enough trust; does
    its rule's argument condition hold; which rate limits does the call count against."""
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
    extra: dict[str, Any] = {}
    if reason == Reason.allowed and rule is not None:
        compiled = rule.program
        if compiled is not None:  # 8. the rule's argument condition
            extra["condition"] = compiled.source
            if isinstance(arguments, Unknown):
                extra["conditional"] = True
            else:
                why = compiled.check(arguments, lambda: _caller(identity))
                if why is not None:
                    reason = Reason.condition_not_met
                    extra["condition_detail"] = why
    if reason == Reason.allowed and (doc.rate_limit or grant.rate_limit or (rule is not None and rule.rate_limit)):
        extra["limits"] = _limits(doc, grant, rule, tool.name, identity)  # 9. the limits that apply
    if reason == Reason.allowed and (tool.approval is not None or (rule is not None and rule.approval is not None)):
        extra["approval"] = stricter(tool.approval, rule.approval if rule is not None else None)  # 10.
        reason = Reason.approval_required
    return decision(reason == Reason.allowed, reason, matched_grant=grant.name,
                    matched_session=session_name, required_trust=required, effective_trust=effective, **extra)


def _caller(identity: Identity) -> dict[str, str | None]:
    return {"humanID": identity.human_id, "agentID": identity.agent_id, "teamID": identity.team_id,
            "sessionID": identity.session_id}


def _limits(doc: PolicyDocument, grant: PolicyGrant | None, rule: PolicyToolRule | None, tool: str,
            identity: Identity) -> tuple[AppliedLimit, ...]:
    """The rate limits an allowed call counts against: the server's, its grant's and its tool rule's,
    each with the call's bucket key (its values of the limit's `per`)."""
    applied = []
    if doc.rate_limit is not None:
        applied.append(AppliedLimit("server", _key(doc.rate_limit, doc, tool, identity), doc.rate_limit))
    if grant is not None and grant.rate_limit is not None:
        applied.append(AppliedLimit(f"grant/{grant.name}", _key(grant.rate_limit, doc, tool, identity),
                                    grant.rate_limit))
    if grant is not None and rule is not None and rule.rate_limit is not None:
        applied.append(AppliedLimit(f"grant/{grant.name}/tool/{tool}", _key(rule.rate_limit, doc, tool, identity),
                                    rule.rate_limit))
    return tuple(applied)


def _key(limit: PolicyRateLimit, doc: PolicyDocument, tool: str, identity: Identity) -> tuple[str, ...]:
    values = {LimitKey.server: doc.server.name, LimitKey.tool: tool, LimitKey.team: identity.team_id or "",
              LimitKey.human: identity.human_id or "", LimitKey.agent: identity.agent_id or ""}
    return tuple(values[k] for k in limit.per)


def allowed_tools(doc: PolicyDocument, identity: Identity | None, now: datetime) -> list[str]:
    """The tools `identity` may call now (some once a person approves), by asking `evaluate` for each:
    list and call always agree."""
    return [t.name for t in doc.tools if evaluate(doc, identity, t.name, now, ARGUMENTS_UNKNOWN).may_call]


def _limit_text(applied: AppliedLimit) -> str:
    limit = applied.limit
    parts = []
    if limit.requests_per_second is not None:
        parts.append(f"{limit.requests_per_second:g}/s (burst {limit.burst})")
    if limit.calls_per_day is not None:
        parts.append(f"{limit.calls_per_day} calls/day")
    per = ", ".join(limit.per) or "everyone"
    return f"the {applied.scope} limit of {' and '.join(parts)} per {per}"


_APPROVAL_TEXT = {
    Reason.approval_required: ("{tool} on {server} runs only once a person approves this call (approver: {approver}); "
                               "pending calls are listed by 'mcp-runtime access approvals list'"),
    Reason.approved: "{tool} on {server} was approved by {by} for exactly these arguments",
    Reason.approval_declined: "the person asked declined {tool} on {server}: the call did not run",
    Reason.approval_denied: "{by} denied this call of {tool} on {server}: it did not run",
    Reason.approval_timeout: ("nobody approved this call of {tool} on {server} in time: it did not run; call again "
                              "and ask an approver to run 'mcp-runtime access approvals approve ID'"),
    Reason.approval_cancelled: "the caller went away or cancelled the call while {tool} on {server} waited for "
                               "approval: it did not run",
    Reason.approval_unavailable: ("{tool} on {server} needs a person's approval and the gateway cannot ask for one "
                                  "now (no approval channel, or too many calls waiting): it did not run"),
}


def describe(decision: Decision) -> str:
    """The human sentence for a decision; shown by MCP clients in the JSON-RPC error message."""
    tool = f"tool {decision.tool!r}" if decision.tool else "this request"
    for part in (_describe_caller, _describe_definition, _describe_grant):
        text = part(decision, tool, decision.server)
        if text is not None:
            return text
    return (f"{tool} needs trust {decision.required_trust} but this session has {decision.effective_trust}; "
            "request a higher trust or ask for a grant with a higher maxTrust")


def _describe_caller(decision: Decision, tool: str, server: str) -> str | None:
    """The outcomes decided before any grant: mode, identity and session."""
    reason = decision.reason
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
    if reason == Reason.no_matching_grant:
        return (f"no grant on {server} matches this caller; ask the server's team to create one "
                "with 'mcp-runtime access grant init ... && mcp-runtime access grant apply'")
    return None


def _describe_definition(decision: Decision, tool: str, server: str) -> str | None:
    """The outcomes about the tool's declaration and its pinned definition."""
    reason = decision.reason
    if reason == Reason.tool_side_effect_unknown:
        return (f"{tool} is not declared in {server}'s metadata with a side effect; add it to "
                ".mcp/servers.yaml and redeploy (server validate catches this)")
    if reason == Reason.tool_definition_changed:
        return (f"{tool}'s definition on {server} changed since it was reviewed; an owner must review it "
                f"('mcp-runtime server tools diff {server}') and approve it "
                f"('mcp-runtime server tools approve {server} --tool {decision.tool}')")
    if reason == Reason.tool_not_pinned:
        return (f"{tool} on {server} was never reviewed; an owner must review and approve it "
                f"('mcp-runtime server tools approve {server} --tool {decision.tool}')")
    if reason == Reason.tool_definition_unverified:
        return (f"the gateway has not seen {tool}'s definition from {server} (it is not in the server's "
                "tools/list answer): list the tools first; if it stays, the server no longer offers it")
    return None


def _describe_grant(decision: Decision, tool: str, server: str) -> str | None:
    """The outcomes a grant decided: allowed, its condition, limits, approval, deny, scope (not trust)."""
    reason = decision.reason
    if reason == Reason.allowed:
        text = f"{tool} on {server} is allowed by grant {decision.matched_grant or '(none)'}"
        if decision.condition is not None:
            when = "if" if decision.conditional else "as"
            text += f" {when} its condition holds: {decision.condition}"
        return text
    if reason == Reason.condition_not_met:
        return (f"{tool} is allowed by grant {decision.matched_grant!r} only when {decision.condition}, and "
                f"for this call it does not hold ({decision.condition_detail})")
    if reason == Reason.rate_limited:
        limit = decision.limits[0] if decision.limits else None
        what = _limit_text(limit) if limit is not None else "a rate limit"
        return (f"{tool} on {server} is over {what}; retry in {math.ceil(decision.retry_after or 1)} s "
                "or ask the server's team for a higher limit")
    if reason in _APPROVAL_TEXT:
        return _APPROVAL_TEXT[reason].format(tool=tool, server=server, approver=decision.approval or "caller",
                                             by=decision.approved_by or "an approver")
    if reason == Reason.tool_denied:
        return f"{tool} is explicitly denied by grant {decision.matched_grant!r}"
    if reason == Reason.tool_not_granted:
        return f"{tool} is not in grant {decision.matched_grant!r}; add a toolRule for it to the grant"
    if reason == Reason.side_effect_not_allowed:
        return (f"{tool} has side effect {decision.side_effect}, which grant {decision.matched_grant!r} "
                "does not allow")
    return None
