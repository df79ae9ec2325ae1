"""Analytics for people: the caller's visibility, time parsing, and rows with names instead of UUIDs.

Visibility (docs/architecture.md, "Who may see and change what": scoped to the caller's teams unless
admin): a non-admin sees events of servers in their teams' namespaces, events whose owning or calling
team is one of their teams, and events of servers their teams own in the shared namespaces (org,
public). A member of a third team sees none of Acme's server rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from mcp_runtime.platform.errors import ApiError
from mcp_runtime.platform.principal import Principal
from mcp_runtime.platform.quota_usage import quota_rows
from mcp_runtime.platform.repository import ResourceRepository
from mcp_runtime.platform.visibility import CATALOG_NAMESPACES
from mcp_runtime.policy import PolicyDocument
from mcp_runtime.resources import MCPServer
from mcp_runtime.sentinel.events import AnalyticsEvent
from mcp_runtime.sentinel.store import (
    ActorUsage,
    EventStore,
    ServerUsage,
    TimeBucket,
    ToolUsage,
    UsageFilter,
)
from mcp_runtime.store import ControlPlaneStore

SECTIONS = ("totals", "servers", "tools", "actors", "decisions", "timeseries", "recent", "quotas")
_RELATIVE = re.compile(r"^(\d{1,6})\s*(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(value: str | None, *, now: datetime | None = None, field: str = "since") -> datetime | None:
    """`15m`, `24h`, `7d` (that long ago) or an ISO 8601 time (UTC when it has no zone)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        try:
            return (now or datetime.now(UTC)) - timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])
        except OverflowError:  # e.g. 999999w: before the year 1
            raise ApiError(422, "invalid_request", f"{field}: {value!r} reaches back before the year 1") from None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, "invalid_request",
                       f"{field}: {value!r} is neither a duration like 15m, 24h, 7d nor an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class AnalyticsService:
    """The queries of `analytics/*` and the dashboard, as a given caller may see them."""

    def __init__(self, store: ControlPlaneStore, repo: ResourceRepository, events: EventStore,
                 documents: Callable[[str, str], PolicyDocument | None] | None = None) -> None:
        self.store, self.repo, self.events = store, repo, events
        self.documents = documents
        """A server's compiled policy (its quotas), for the `quotas` section."""

    # visibility and filters ---------------------------------------------------------------------------
    def visibility(self, caller: Principal) -> dict[str, Any]:
        """The `UsageFilter` visibility fields of the caller ({} for admins: everything)."""
        if caller.is_admin:
            return {}
        team_ids = [team.id for team in caller.teams]
        shared = [(ns, server.metadata.name or "") for ns in CATALOG_NAMESPACES
                  for server in self.repo.list(MCPServer, ns) if server.spec.team_id in team_ids]
        return {"visible_namespaces": tuple(team.namespace for team in caller.teams),
                "visible_team_ids": tuple(team_ids), "visible_servers": tuple(shared)}

    def team_id(self, team: str | None) -> str | None:
        """A team slug (or UUID) as the UUID events carry."""
        if not team:
            return None
        found = self.store.get_team(team)
        return found.id if found is not None else team

    def filter(self, caller: Principal, *, server: str | None = None, namespace: str | None = None,
               team: str | None = None, user: str | None = None, agent: str | None = None,
               tool: str | None = None, decision: Literal["allow", "deny"] | None = None,
               since: str | None = None, until: str | None = None) -> UsageFilter:
        return UsageFilter(server=server or None, namespace=namespace or None, team=self.team_id(team),
                           human=user or None, agent=agent or None, tool=tool or None, decision=decision,
                           since=parse_time(since), until=parse_time(until, field="until"),
                           **self.visibility(caller))

    # names ----------------------------------------------------------------------------------------------
    def names(self) -> Names:
        return Names({team.id: team.slug for team in self.store.list_teams()},
                     {team.namespace: team.slug for team in self.store.list_teams()})

    # queries ----------------------------------------------------------------------------------------------
    def usage(self, flt: UsageFilter, sections: Iterable[str] = SECTIONS, *, bucket: Literal["hour", "day"] = "hour",
              limit: int = 100) -> dict[str, Any]:
        """The asked sections of `GET analytics/usage`, with team slugs next to team UUIDs."""
        wanted = list(dict.fromkeys(sections))
        unknown = [s for s in wanted if s not in SECTIONS]
        if unknown:
            raise ApiError(422, "invalid_request",
                           f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
        names = self.names()
        answer: dict[str, Any] = {}
        for section in wanted:
            if section == "totals":
                answer["totals"] = self.events.totals(flt).model_dump()
            elif section == "servers":
                answer["servers"] = [names.server(r) for r in self.events.by_server(flt, limit)]
            elif section == "tools":
                answer["tools"] = [names.tool(r) for r in self.events.by_tool(flt, limit)]
            elif section == "actors":
                answer["actors"] = [names.actor(r) for r in self.events.by_actor(flt, limit)]
            elif section == "decisions":
                answer["decisions"] = [r.model_dump() for r in self.events.by_reason(flt)]
            elif section == "timeseries":
                answer["timeseries"] = {"bucket": bucket,
                                        "points": [_bucket(b) for b in self.events.time_series(flt, bucket)]}
            elif section == "recent":
                answer["recent"] = [names.event(e) for e in self.events.recent(flt, limit)]
            elif section == "quotas":
                answer["quotas"] = self.quotas(flt)
        return answer

    def quotas(self, flt: UsageFilter) -> list[dict[str, Any]]:
        """Calls today against every daily quota, per key (quota_usage.py); the filter's visibility applies."""
        if self.documents is None:
            return []
        servers = self.repo.list(MCPServer)
        if flt.server is not None:
            servers = [s for s in servers if s.metadata.name == flt.server]
        docs = [d for s in servers if (d := self.documents(s.metadata.namespace or "", s.metadata.name or ""))]
        return quota_rows(self.events, docs, flt)

    def list_events(self, flt: UsageFilter, *, limit: int = 100, after: str | None = None) -> dict[str, Any]:
        """A page of events in emission order; `next` is the cursor for the following page (or to follow)."""
        rows = self.events.events(flt, limit, after_event_id=after or None)
        names = self.names()
        return {"items": [names.event(e) for e in rows], "next": rows[-1].event_id if rows else after}


def _bucket(b: TimeBucket) -> dict[str, Any]:
    return {"start": _iso(b.start), "calls": b.calls, "allowed": b.allowed, "denied": b.denied}


class Names:
    """Rows of the store as the API shows them: camelCase, team slugs for team UUIDs (humans are emails)."""

    def __init__(self, team_slugs: dict[str, str], namespace_teams: dict[str, str]) -> None:
        self.team_slugs, self.namespace_teams = team_slugs, namespace_teams

    def team(self, team_id: str | None) -> str | None:
        return None if team_id is None else self.team_slugs.get(team_id, team_id)

    def server(self, r: ServerUsage) -> dict[str, Any]:
        return {"server": r.server, "namespace": r.namespace, "team": self.namespace_teams.get(r.namespace),
                "calls": r.calls, "allowed": r.allowed, "denied": r.denied, "toolCalls": r.tool_calls,
                "humans": r.humans, "agents": r.agents, "avgLatencyMs": r.avg_latency_ms,
                "lastSeen": _iso(r.last_seen)}

    def tool(self, r: ToolUsage) -> dict[str, Any]:
        return {"server": r.server, "namespace": r.namespace, "tool": r.tool, "user": r.human_id,
                "team": self.team(r.team_id), "teamID": r.team_id, "agent": r.agent_id, "calls": r.calls,
                "denied": r.denied, "lastSeen": _iso(r.last_seen)}

    def actor(self, r: ActorUsage) -> dict[str, Any]:
        return {"user": r.human_id, "agent": r.agent_id, "team": self.team(r.team_id), "teamID": r.team_id,
                "calls": r.calls, "allowed": r.allowed, "denied": r.denied, "servers": r.servers,
                "lastSeen": _iso(r.last_seen)}

    def event(self, e: AnalyticsEvent) -> dict[str, Any]:
        return {"eventID": e.event_id, "timestamp": _iso(e.timestamp), "server": e.server,
                "namespace": e.namespace, "serverTeam": self.team(e.team_id), "serverTeamID": e.team_id,
                "user": e.human_id, "agent": e.agent_id, "team": self.team(e.subject_team_id),
                "teamID": e.subject_team_id, "session": e.session_id, "client": e.client_id, "method": e.rpc_method,
                "tool": e.tool_name, "decision": e.decision, "reason": e.reason, "grant": e.matched_grant,
                "requiredTrust": e.required_trust, "effectiveTrust": e.effective_trust,
                "sideEffect": e.side_effect, "status": e.status, "latencyMs": e.latency_ms,
                "bytesIn": e.bytes_in, "bytesOut": e.bytes_out, "policyRevision": e.policy_revision,
                "traceID": e.trace_id, "source": e.source, "virtualServer": e.virtual_server}
