"""What a proposed policy would have decided about calls already made: the pure core of `access simulate`.

    replayer = Replayer(current, proposed, changed_sessions={"s-bob"})
    for call in recorded_calls:          # RecordedCall, built from analytics events by the platform
        replayer.add(call)
    report = replayer.report()           # the calls whose decision or reason would change, grouped

Every recorded `tools/call` is judged twice by `evaluate` (the only place a decision is made), at the
time it was made and with the identity it was made with: once under the current document (`before`) and
once under the proposed one (`after`). The report lists the calls where the two differ, grouped by caller
(human, agent, team) and tool, so a change is judged by its own effect, not by every change made since
the call. A call the current policy decides differently from what was recorded counts as `drifted`
(the policy changed since); a call with the policy of its own time never drifts, which is how the
replay checks itself.

The session is taken as it was at the call, not as it is now: a session revoked or expired since, or
deleted, does not hide what a grant change does to its caller. Its recorded state and consented trust
stand in for the document's entry, except under the proposed document for the sessions the change
itself replaces (a session file): there the proposed session decides.

A decision depends on the time only through expiries (`is_expired` of grants and sessions), so between two
expiry instants of a document it is the same for the same identity and tool: the replayer keeps each
answer of `evaluate` for (document, identity, tool, which expiries have passed) and a week of calls from a
few hundred callers costs a few hundred evaluations, exactly as if each call were evaluated.

Events keep only a digest of a call's arguments, so an argument condition cannot be re-run: calls are
judged with the arguments unknown (`ARGUMENTS_UNKNOWN`), and a rule's condition then allows
*conditionally*. Under the current document such a decision is taken as recorded (the condition decided
then as it did at the call); under the proposed one it is the same when the proposed document keeps that
grant's condition unchanged, and otherwise the call is a gap (`argument_condition`): counted, never guessed.

A call refused by a rate limit was allowed by the policy (the gateway's counters refused it): it is
replayed as allowed, since a replay judges grants, not traffic.

Calls that cannot be replayed faithfully carry a `gap` (e.g. recorded before the event log carried
the session state and consented trust): they are counted and named in the report, never guessed.
Calls refused before the policy was consulted (a forged or expired token) are counted apart: no
policy change can alter them.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from pydantic import ConfigDict

from mcp_runtime.policy.document import PolicyDocument, PolicySession, PolicySubject
from mcp_runtime.policy.evaluator import ARGUMENTS_UNKNOWN, Decision, Identity, Reason, SessionState, describe, evaluate
from mcp_runtime.resources import Trust
from mcp_runtime.resources.common import CamelModel, as_utc

_POLICY_REASONS = frozenset(str(r) for r in Reason)
_APPROVAL_OUTCOMES = frozenset(str(r) for r in (Reason.approved, Reason.approval_declined, Reason.approval_denied,
                                                 Reason.approval_timeout, Reason.approval_unavailable,
                                                 Reason.approval_cancelled))
_LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)  # an expiry that has passed at every recorded time
_OVERLAY_CACHE = 4096
_DECISION_CACHE = 1 << 16


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One recorded `tools/call` and everything its decision depended on.

    `identity` is None when the call carried no verified identity. `session_state` and
    `consented_trust` describe the identity's session when the call was decided. `allowed` and
    `reason` are what the gateway decided then. `gap` says why the call cannot be replayed
    faithfully (None: it can)."""

    at: datetime
    tool: str
    identity: Identity | None
    session_state: SessionState | None
    consented_trust: Trust | None
    allowed: bool
    reason: str
    gap: str | None = None


class _Report(CamelModel):
    model_config = ConfigDict(frozen=True)


class Outcome(_Report):
    """A decision as the report shows it."""

    decision: str  # allow | deny
    reason: str


class ImpactRow(_Report):
    """Calls of one caller to one tool whose decision or reason changes the same way."""

    human_id: str | None
    agent_id: str | None
    team_id: str | None
    tool: str
    before: Outcome
    after: Outcome
    calls: int
    first: datetime
    last: datetime
    message: str  # the sentence the caller would get after the change (from the latest call)


class Gap(_Report):
    """Calls that cannot be replayed faithfully, by why."""

    reason: str
    calls: int
    first: datetime
    last: datetime


class ReplayReport(_Report):
    """The effect of a change on the calls of a window, and what could not be judged."""

    current_revision: str
    proposed_revision: str
    recorded: int  # every tools/call event looked at
    replayed: int  # judged under both documents
    unchanged: int
    changed: int
    newly_denied: int  # allowed before, denied after
    newly_allowed: int
    reason_only: int  # same decision, another reason
    drifted: int  # decided differently today than when recorded (the policy changed since)
    before_policy: int  # refused before the policy (token failures): no change can alter them
    not_replayable: int
    gaps: tuple[Gap, ...]
    rows: tuple[ImpactRow, ...]
    callers_losing_access: int  # distinct (human, agent, team) with at least one newly denied call
    tools_losing_access: int


@dataclass
class _Group:
    calls: int
    first: datetime
    last: datetime
    latest: Decision  # the decision after the change of the latest call: its sentence goes in the report


@dataclass
class _GapGroup:
    calls: int
    first: datetime
    last: datetime


_Key = tuple[str | None, str | None, str | None, str, bool, str, bool, str]


@dataclass
class Replayer:
    """Replays calls one at a time (so a window of millions streams through) and reports the impact."""

    current: PolicyDocument
    proposed: PolicyDocument
    changed_sessions: frozenset[str] = frozenset()
    recorded: int = field(default=0, init=False)
    replayed: int = field(default=0, init=False)
    drifted: int = field(default=0, init=False)
    before_policy: int = field(default=0, init=False)
    _unchanged: int = field(default=0, init=False)
    _groups: dict[_Key, _Group] = field(default_factory=dict, init=False)
    _gaps: dict[str, _GapGroup] = field(default_factory=dict, init=False)
    _overlays: dict[tuple[object, ...], PolicyDocument] = field(default_factory=dict, init=False)
    _expiries: dict[int, tuple[datetime, ...]] = field(default_factory=dict, init=False)
    _decisions: dict[tuple[object, ...], Decision] = field(default_factory=dict, init=False)

    def add(self, call: RecordedCall) -> None:
        self.recorded += 1
        if call.gap is not None:
            self._add_gap(call.gap, call.at)
            return
        if call.reason not in _POLICY_REASONS:
            self.before_policy += 1
            return
        if call.reason == Reason.rate_limited:  # the policy allowed it; a limit's counter refused it
            call = replace(call, allowed=True, reason=str(Reason.allowed))
        elif call.reason in _APPROVAL_OUTCOMES:  # the policy asked for approval; a person decided the rest
            call = replace(call, allowed=False, reason=str(Reason.approval_required))
        before = self._decide(self._document(self.current, call, as_proposed=False), call)
        after = self._decide(self._document(self.proposed, call, as_proposed=True), call)
        if before.conditional or after.conditional:
            resolved = _resolve_conditions(call, before, after)
            if resolved is None:
                self._add_gap(ARGUMENT_CONDITION_GAP, call.at)
                return
            before, after = resolved
        self.replayed += 1
        if before.allowed != call.allowed or str(before.reason) != call.reason:
            self.drifted += 1
        if before.allowed == after.allowed and before.reason == after.reason:
            self._unchanged += 1
            return
        self._add_change(call, before, after)

    def _decide(self, doc: PolicyDocument, call: RecordedCall) -> Decision:
        """`evaluate(doc, call.identity, call.tool, call.at)`, remembered per expiry interval (module docstring)."""
        expiries = self._expiries.get(id(doc))
        if expiries is None:
            expiries = self._expiries[id(doc)] = _expiry_instants(doc)
        key = (id(doc), call.identity, call.tool, bisect_right(expiries, as_utc(call.at)))
        decision = self._decisions.get(key)
        if decision is None:
            if len(self._decisions) >= _DECISION_CACHE:
                self._decisions.clear()
            decision = self._decisions[key] = evaluate(doc, call.identity, call.tool, call.at,
                                                       ARGUMENTS_UNKNOWN)
        return decision

    def _add_change(self, call: RecordedCall, before: Decision, after: Decision) -> None:
        who = call.identity or Identity()
        key: _Key = (who.human_id, who.agent_id, who.team_id, call.tool, before.allowed, str(before.reason),
                     after.allowed, str(after.reason))
        group = self._groups.get(key)
        if group is None:
            self._groups[key] = _Group(1, call.at, call.at, after)
            return
        group.calls += 1
        if call.at < group.first:
            group.first = call.at
        if call.at >= group.last:
            group.last, group.latest = call.at, after

    def _add_gap(self, gap: str, at: datetime) -> None:
        group = self._gaps.get(gap)
        if group is None:
            self._gaps[gap] = _GapGroup(1, at, at)
            return
        group.calls += 1
        group.first, group.last = min(group.first, at), max(group.last, at)

    def _document(self, doc: PolicyDocument, call: RecordedCall, *, as_proposed: bool) -> PolicyDocument:
        """`doc` with the call's session as it was recorded (see the module docstring)."""
        identity = call.identity
        if identity is None or not identity.session_id:
            return doc
        if as_proposed and identity.session_id in self.changed_sessions:
            return doc
        key = (id(doc), identity.session_id, identity.human_id, identity.agent_id, identity.team_id,
               call.session_state, call.consented_trust)
        overlay = self._overlays.get(key)
        if overlay is None:
            if len(self._overlays) >= _OVERLAY_CACHE:  # ids of dropped overlays may be reused: forget all
                self._overlays.clear()
                self._expiries.clear()
                self._decisions.clear()
            overlay = self._overlays[key] = with_session(doc, identity.session_id,
                                                         recorded_session(identity, call.session_state,
                                                                          call.consented_trust))
        return overlay

    def report(self) -> ReplayReport:
        rows = [_row(key, group) for key, group in self._groups.items()]
        rows.sort(key=_row_order)
        newly_denied = [r for r in rows if r.before.decision == "allow" and r.after.decision == "deny"]
        return ReplayReport(
            current_revision=self.current.revision, proposed_revision=self.proposed.revision,
            recorded=self.recorded, replayed=self.replayed, unchanged=self._unchanged,
            changed=sum(r.calls for r in rows), newly_denied=sum(r.calls for r in newly_denied),
            newly_allowed=sum(r.calls for r in rows if r.before.decision == "deny" and r.after.decision == "allow"),
            reason_only=sum(r.calls for r in rows if r.before.decision == r.after.decision),
            drifted=self.drifted, before_policy=self.before_policy,
            not_replayable=sum(g.calls for g in self._gaps.values()),
            gaps=tuple(Gap(reason=reason, calls=g.calls, first=g.first, last=g.last)
                       for reason, g in sorted(self._gaps.items(), key=lambda item: -item[1].calls)),
            rows=tuple(rows),
            callers_losing_access=len({(r.human_id, r.agent_id, r.team_id) for r in newly_denied}),
            tools_losing_access=len({r.tool for r in newly_denied}),
        )


ARGUMENT_CONDITION_GAP = "argument_condition"


def _resolve_conditions(call: RecordedCall, before: Decision,
                        after: Decision) -> tuple[Decision, Decision] | None:
    """Decisions that hinge on an argument condition, resolved from what was recorded (module docstring);
    None when the proposed document's condition cannot be judged without the arguments."""
    if before.conditional:
        recorded = Reason(call.reason)
        if recorded not in (Reason.allowed, Reason.condition_not_met):
            return None  # the policy changed since the call: what the condition said is not known
        before = replace(before, allowed=recorded == Reason.allowed, reason=recorded, conditional=False)
    if after.conditional:
        if not (after.matched_grant == before.matched_grant and after.condition == before.condition):
            return None
        after = replace(after, allowed=before.allowed, reason=before.reason, conditional=False)
    return before, after


def _expiry_instants(doc: PolicyDocument) -> tuple[datetime, ...]:
    """The instants at which a decision under `doc` can change with time alone: its expiries, sorted."""
    instants = {as_utc(g.expires_at) for g in doc.grants if g.expires_at is not None}
    instants.update(as_utc(s.expires_at) for s in doc.sessions if s.expires_at is not None)
    return tuple(sorted(instants))


def recorded_session(identity: Identity, state: SessionState | None,
                     consented_trust: Trust | None) -> PolicySession | None:
    """The document entry that reproduces a session's recorded state (None: unknown to the document)."""
    if state is None or state == SessionState.not_found or identity.session_id is None:
        return None
    return PolicySession(
        name=identity.session_id,
        subject=PolicySubject(human_id=identity.human_id, agent_id=identity.agent_id, team_id=identity.team_id),
        consented_trust=consented_trust or Trust.low,
        revoked=state == SessionState.revoked,
        expires_at=_LONG_AGO if state == SessionState.expired else None,
    )


def with_session(doc: PolicyDocument, name: str, session: PolicySession | None) -> PolicyDocument:
    """`doc` with session `name` replaced by `session` (or removed). Built without re-validation: every
    part is already a validated model; the revision stays the document's own."""
    sessions = tuple(s for s in doc.sessions if s.name != name) + ((session,) if session is not None else ())
    values = {name_: getattr(doc, name_) for name_ in PolicyDocument.model_fields}
    values["sessions"] = sessions
    return PolicyDocument.model_construct(**values)


def _outcome(allowed: bool, reason: str) -> Outcome:
    return Outcome(decision="allow" if allowed else "deny", reason=reason)


def _row(key: _Key, group: _Group) -> ImpactRow:
    human, agent, team, tool, before_allowed, before_reason, after_allowed, after_reason = key
    return ImpactRow(human_id=human, agent_id=agent, team_id=team, tool=tool,
                     before=_outcome(before_allowed, before_reason), after=_outcome(after_allowed, after_reason),
                     calls=group.calls, first=group.first, last=group.last, message=describe(group.latest))


def _row_order(row: ImpactRow) -> tuple[int, int, str, str, str, str]:
    """Lost access first, then gained, then reason-only changes; the busiest rows first in each."""
    if row.before.decision == "allow" and row.after.decision == "deny":
        kind = 0
    elif row.before.decision == "deny" and row.after.decision == "allow":
        kind = 1
    else:
        kind = 2
    return (kind, -row.calls, row.human_id or "", row.agent_id or "", row.team_id or "", row.tool)


def replay(current: PolicyDocument, proposed: PolicyDocument, calls: list[RecordedCall], *,
           changed_sessions: frozenset[str] = frozenset()) -> ReplayReport:
    """Replay `calls` under both documents (see `Replayer`)."""
    replayer = Replayer(current, proposed, changed_sessions)
    for call in calls:
        replayer.add(call)
    return replayer.report()
