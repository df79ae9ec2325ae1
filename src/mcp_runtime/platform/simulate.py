"""`POST runtime/simulate`: what a change to a server's access would have done to its recorded calls.

The change is prepared exactly as applying it would be (the same checks as `access grant apply`,
`access session apply`, `server deploy --update`), the would-be document is compiled by the same
compiler from the same inputs, and every recorded `tools/call` of the window is replayed through the
evaluator by `policy.replay` (docs/governance.md, "Before you change access"). Only a caller who may
apply the change may simulate it: a team cannot probe another team's server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from pydantic import Field

from mcp_runtime.platform.access import AccessService
from mcp_runtime.platform.analytics import Names, parse_time
from mcp_runtime.platform.errors import ApiError, not_found
from mcp_runtime.platform.policies import PolicyCompiler, PolicyInputs
from mcp_runtime.platform.principal import Principal
from mcp_runtime.platform.servers import ServerService
from mcp_runtime.platform.visibility import require_write
from mcp_runtime.policy import Identity, Reason, RecordedCall, Replayer, ReplayReport, SessionState
from mcp_runtime.resources import CamelModel, MCPServerSpec, ServerMetadata, Trust
from mcp_runtime.resources.common import utcnow
from mcp_runtime.sentinel.events import REPLAYABLE_VERSION, AnalyticsEvent
from mcp_runtime.sentinel.store import MAX_QUERY_ROWS, EventStore, UsageFilter
from mcp_runtime.store import ControlPlaneStore

MAX_REPLAY_EVENTS = 2_000_000
"""The most recorded calls one simulation replays; a busier window is replayed up to that many calls (oldest
first) and the answer says it was cut."""
MAX_CHANGES = 50
MAX_CONCURRENT = 2
"""Simulations replayed at once (each may read up to MAX_REPLAY_EVENTS events); more wait their turn: 429."""
TOO_OLD = (f"recorded before events carried the replay inputs (event version below {REPLAYABLE_VERSION}, "
           "no session state or trust)")
NO_SESSION_STATE = "recorded without the state of its session"
NO_TRUST = "recorded without the consented trust of its session"
_POLICY_REASONS = frozenset(str(r) for r in Reason)


class DeployChange(CamelModel):
    """A server change as `server deploy --update` sends it: `.mcp` metadata or an MCPServer spec."""

    metadata: ServerMetadata | None = None
    spec: MCPServerSpec | None = None


class SimulateRequest(CamelModel):
    """`POST runtime/simulate`: a server, a window, and the change (any mix of the parts)."""

    server: str = Field(min_length=1, max_length=63)
    namespace: str | None = Field(default=None, max_length=63)
    since: str = Field(default="7d", max_length=40, description="15m, 24h, 7d or an ISO 8601 time")
    until: str | None = Field(default=None, max_length=40)
    grants: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_CHANGES,
                                         description="MCPAccessGrant resources to apply")
    delete_grants: list[str] = Field(default_factory=list, max_length=MAX_CHANGES)
    sessions: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_CHANGES,
                                           description="MCPAgentSession resources to apply (admins)")
    deploy: DeployChange | None = None


class SimulationService:
    def __init__(self, store: ControlPlaneStore, servers: ServerService, access: AccessService,
                 policies: PolicyCompiler, events: EventStore, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.store, self.servers, self.access, self.policies, self.events = store, servers, access, policies, events
        self.clock = clock
        self._running = threading.BoundedSemaphore(MAX_CONCURRENT)

    def simulate(self, caller: Principal, req: SimulateRequest) -> dict[str, Any]:
        """The report of `req` for `caller` (checks first; then the replay, at most MAX_CONCURRENT at once)."""
        server = self.servers.find(caller, req.server, req.namespace)
        namespace, name = server.metadata.namespace or "", server.metadata.name
        if not (req.grants or req.delete_grants or req.sessions or req.deploy):
            raise ApiError(422, "invalid_request", "nothing to simulate: send grants, deleteGrants, sessions or deploy "
                                                   "(the change you are about to apply)")
        require_write(caller, namespace, f"simulate access changes on {name}")
        now = self.clock()
        since = parse_time(req.since, now=now)
        until = parse_time(req.until, now=now, field="until") or now
        if since is None or since >= until:
            raise ApiError(422, "invalid_request", f"since ({req.since}) must be before until")
        inputs = self.policies.inputs(namespace, name)
        if inputs is None:
            raise not_found(f"server {name} in namespace {namespace}")
        proposed, change = self._apply(caller, inputs, req)
        replayer = Replayer(inputs.compile(), proposed.compile(), frozenset(change["sessions"]))
        if not self._running.acquire(blocking=False):
            raise ApiError(429, "rate_limited", f"{MAX_CONCURRENT} simulations are running; retry in a few seconds",
                           headers={"Retry-After": "5"})
        try:
            truncated = False
            for count, call in enumerate(recorded_calls(self.events, namespace, name, since, until)):
                if count >= MAX_REPLAY_EVENTS:
                    truncated = True
                    break
                replayer.add(call)
        finally:
            self._running.release()
        report = replayer.report()
        relative = req.since.strip()[:-1].strip().isdigit() and req.since.strip()[-1:] in ("s", "m", "h", "d", "w")
        window = f"last {req.since.strip()}" if relative else f"window since {req.since.strip()}"
        return _answer(report, name, namespace, since, until, truncated, change, self._names(), window)

    # the change ------------------------------------------------------------------------------------
    def _apply(self, caller: Principal, inputs: PolicyInputs,
               req: SimulateRequest) -> tuple[PolicyInputs, dict[str, list[str]]]:
        """The inputs with the change applied, prepared as applying it would; and what changed, by name."""
        namespace, name = inputs.server.metadata.namespace or "", inputs.server.metadata.name
        grants = {g.metadata.name: g for g in inputs.grants}
        sessions = {s.metadata.name: s for s in inputs.sessions}
        change: dict[str, list[str]] = {"applied": [], "created": [], "deleted": [], "sessions": [], "server": []}
        for index, body in enumerate(req.grants):
            grant = self._checked(lambda b: self.access.checked_grant(caller, b, "simulate grants"), body,
                                  f"grants[{index}]")
            self._same_server(grant.metadata.namespace, grant.spec.server_ref.name, namespace, name, "grant",
                              grant.metadata.name)
            change["applied" if grant.metadata.name in grants else "created"].append(grant.metadata.name)
            grants[grant.metadata.name] = grant
        for grant_name in req.delete_grants:
            if grants.pop(grant_name, None) is None:
                raise not_found(f"grant {grant_name} for server {name} in namespace {namespace}")
            change["deleted"].append(grant_name)
        for index, body in enumerate(req.sessions):
            session = self._checked(lambda b: self.access.checked_session(caller, b, what="simulate sessions"), body,
                                    f"sessions[{index}]")
            self._same_server(session.metadata.namespace, session.spec.server_ref.name, namespace, name, "session",
                              session.metadata.name)
            sessions[session.metadata.name] = session
            change["sessions"].append(session.metadata.name)
        server = inputs.server
        if req.deploy is not None:
            server = self.servers.redeployed(caller, server, req.deploy.metadata, req.deploy.spec)
            change["server"].append(name)
        return PolicyInputs(server, list(grants.values()), list(sessions.values())), change

    @staticmethod
    def _checked(check: Callable[[Any], Any], body: Any, where: str) -> Any:
        try:
            return check(body)
        except ApiError as exc:
            if exc.status == 422:
                raise ApiError(422, exc.code, f"{where}: {exc.message}") from None
            raise

    @staticmethod
    def _same_server(resource_ns: str | None, ref: str, namespace: str, name: str, word: str, what: str) -> None:
        if (resource_ns, ref) != (namespace, name):
            raise ApiError(422, "invalid_request",
                           f"{word} {what} is for server {ref} in {resource_ns}, not {name} in {namespace}: "
                           f"simulate one server at a time")

    def _names(self) -> Names:
        teams = self.store.list_teams()
        return Names({t.id: t.slug for t in teams}, {t.namespace: t.slug for t in teams})


def recorded_calls(events: EventStore, namespace: str, name: str, since: datetime,
                   until: datetime) -> Iterator[RecordedCall]:
    """Every recorded `tools/call` of a server in the window, page by page (no window is held in memory)."""
    flt = UsageFilter(server=name, namespace=namespace, method="tools/call", since=since, until=until)
    after: str | None = None
    while True:
        page = events.events(flt, MAX_QUERY_ROWS, after_event_id=after)
        for event in page:
            if event.tool_name is not None:
                yield recorded_call(event)
        if len(page) < MAX_QUERY_ROWS:
            return
        after = page[-1].event_id


def recorded_call(event: AnalyticsEvent) -> RecordedCall:
    """The replay input of one event; what the event cannot tell is named as a gap, never filled in."""
    identity = Identity(human_id=event.human_id, agent_id=event.agent_id, team_id=event.subject_team_id,
                        session_id=event.session_id)
    state = SessionState(event.session_state) if event.session_state else None
    trust = Trust(event.consented_trust) if event.consented_trust else None
    gap = None
    if event.event_version < REPLAYABLE_VERSION:
        gap = TOO_OLD
    elif identity.session_id and state is None:
        gap = NO_SESSION_STATE
    elif state is not None and state != SessionState.not_found and trust is None:
        gap = NO_TRUST
    return RecordedCall(at=event.timestamp, tool=event.tool_name or "",
                        identity=None if identity.is_empty() else identity, session_state=state,
                        consented_trust=trust, allowed=event.decision == "allow", reason=event.reason or "",
                        gap=gap if event.reason in _POLICY_REASONS else None)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def summary_line(report: ReplayReport, window: str) -> str:
    """The one line `grant apply` prints: what would be lost, gained, and what could not be judged."""
    parts = []
    if report.newly_denied:
        parts.append(f"{report.newly_denied} call(s) that were allowed would be denied "
                     f"({report.callers_losing_access} caller(s), {report.tools_losing_access} tool(s))")
    if report.newly_allowed:
        parts.append(f"{report.newly_allowed} call(s) that were denied would be allowed")
    if report.reason_only:
        parts.append(f"{report.reason_only} call(s) would be decided for another reason")
    if not parts:
        parts.append("no recorded call would be decided differently")
    tail = f"{report.replayed} call(s) replayed"
    if report.not_replayable:
        tail += f", {report.not_replayable} too old to replay"
    return f"impact over the {window}: " + "; ".join(parts) + f" ({tail})"


def _answer(report: ReplayReport, name: str, namespace: str, since: datetime, until: datetime, truncated: bool,
            change: dict[str, list[str]], names: Names, window: str) -> dict[str, Any]:
    body = report.model_dump(by_alias=True, mode="json")
    for row in body["rows"]:
        row["team"] = names.team(row["teamID"])
    return {"server": name, "namespace": namespace,
            "window": {"since": _iso(since), "until": _iso(until), "truncated": truncated},
            "change": {"grantsApplied": change["applied"], "grantsCreated": change["created"],
                       "grantsDeleted": change["deleted"], "sessionsApplied": change["sessions"],
                       "serverRedeployed": bool(change["server"])},
            "summary": summary_line(report, window if not truncated else f"{window} (the first "
                                    f"{MAX_REPLAY_EVENTS} calls)"),
            **body}


__all__ = ["MAX_REPLAY_EVENTS", "DeployChange", "SimulateRequest", "SimulationService", "recorded_call",
           "recorded_calls", "summary_line"]
