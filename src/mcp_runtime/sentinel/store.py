"""Where analytics events are kept and how they are asked about: the `EventStore` interface.

Two implementations answer the same questions with the same results:

- `mcp_runtime.sentinel.sqlite_store.SQLiteEventStore`: one SQLite file, the embedded default.
- `mcp_runtime.sentinel.clickhouse_store.ClickHouseEventStore`: ClickHouse, for scale.

Writing is idempotent on `event_id` (the emitter and the NATS pipeline deliver at least once):

    result = store.insert(events)           # InsertResult(accepted=new, duplicates=already stored)

Every query takes a `UsageFilter`. Its `visible_namespaces` / `visible_team_ids` / `visible_servers`
carry the caller's visibility (OR-ed), which the API computes from the caller's teams and always sets
(admins: `UsageFilter()` sees everything); the other fields narrow what the caller asked for:

    f = UsageFilter.for_teams(namespaces=["mcp-team-acme"], team_ids=["<acme uuid>"],
                              servers=[("mcp-servers-org", "search")], server="payments")
    store.totals(f); store.by_server(f); store.by_tool(f); store.by_actor(f); store.by_reason(f)
    store.time_series(f, bucket="hour"); store.recent(f, limit=50)
    store.events(f, limit=500, after_event_id=last_seen_id)      # page forward / follow

Stores are synchronous and thread-safe; async callers run them in a worker thread
(`starlette.concurrency.run_in_threadpool`, `asyncio.to_thread`). `sentinel.open_store.open_event_store(url)`
picks the implementation from a configuration string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from mcp_runtime.sentinel.events import AnalyticsEvent

Bucket = Literal["hour", "day"]
BUCKET_SECONDS: dict[str, int] = {"hour": 3600, "day": 86400}
MAX_QUERY_ROWS = 10_000
"""The most rows any one query returns, whatever `limit` a caller asks for."""

CALLER_TEAM = "subject_team_id"
"""The column of the calling team (the session's team); `team_id` is the team that owns the server."""

EVENT_COLUMNS: tuple[str, ...] = tuple(AnalyticsEvent.model_fields)
"""The event's fields in schema order: the column order both stores use."""


# ---------------------------------------------------------------------------------------------------
# The filter
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageFilter:
    """Which events a query looks at: the caller's visibility, then the narrowing it asked for.

    Teams in an event: `team_id` is the team that owns the server, `subject_team_id` the calling team
    (from the session token); that is what the gateway writes. Queries report the calling team.

    Visibility (set by the API, never from request parameters): an event is visible when its server's
    namespace is in `visible_namespaces` (the caller's team namespaces) OR its owning or calling team
    (`team_id`, `subject_team_id`) is in `visible_team_ids` (the caller's teams) OR its
    `(namespace, server)` is in `visible_servers`
    (servers the caller's teams own in shared namespaces: `mcp-servers-org`, `mcp-servers-public`).
    All None means no restriction (admins). An empty tuple matches nothing, and once any is set the
    others being None count as empty: a filter that restricts at all fails closed.

    Narrowing (all optional, combined with AND): exact `server`, `namespace`, calling `team`
    (`subject_team_id`), `human`, `agent`, `tool`, `decision`, JSON-RPC `method` (`rpc_method`), the
    deciding `grant` (`matched_grant`), `reason`;
    `since` inclusive, `until` exclusive.
    """

    visible_namespaces: tuple[str, ...] | None = None
    visible_team_ids: tuple[str, ...] | None = None
    visible_servers: tuple[tuple[str, str], ...] | None = None
    server: str | None = None
    namespace: str | None = None
    team: str | None = None
    human: str | None = None
    agent: str | None = None
    tool: str | None = None
    decision: Literal["allow", "deny"] | None = None
    method: str | None = None
    grant: str | None = None  # matched_grant: the grant that decided
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        # Accept lists from callers but keep the filter hashable and immutable.
        for name in ("visible_namespaces", "visible_team_ids"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                if isinstance(value, str):
                    raise TypeError(f"{name} must be a sequence of strings, not one string")
                object.__setattr__(self, name, tuple(value))
        if self.visible_servers is not None:
            pairs = tuple((str(namespace), str(server)) for namespace, server in self.visible_servers)
            object.__setattr__(self, "visible_servers", pairs)
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=UTC))

    @classmethod
    def for_teams(cls, namespaces: Sequence[str], team_ids: Sequence[str],
                  servers: Sequence[tuple[str, str]] = (), **narrowing: object) -> UsageFilter:
        """The filter of a non-admin caller: its teams' namespaces, its teams' ids, and the
        `(namespace, server)` of servers its teams own outside their namespaces."""
        return cls(visible_namespaces=tuple(namespaces), visible_team_ids=tuple(team_ids),
                   visible_servers=tuple(servers), **narrowing)  # type: ignore[arg-type]

    @property
    def restricted(self) -> bool:
        """True when visibility limits the result (a non-admin caller)."""
        return (self.visible_namespaces is not None or self.visible_team_ids is not None
                or self.visible_servers is not None)

    @property
    def since_us(self) -> int | None:
        return None if self.since is None else to_micros(self.since)

    @property
    def until_us(self) -> int | None:
        return None if self.until is None else to_micros(self.until)


def to_micros(value: datetime) -> int:
    """Microseconds since the epoch of an aware (or UTC-naive) datetime, exactly."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """The UTC datetime of microseconds since the epoch, exactly."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(value))


def clamp_limit(limit: int) -> int:
    """A limit between 0 and `MAX_QUERY_ROWS`."""
    return max(0, min(int(limit), MAX_QUERY_ROWS))


# ---------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InsertResult(_Result):
    """How many of the inserted events were new, and how many were already stored (or repeated)."""

    accepted: int
    duplicates: int


class UsageTotals(_Result):
    """Counts over all matching events; humans, agents and servers are distinct counts."""

    events: int
    allowed: int
    denied: int
    humans: int
    agents: int
    servers: int


class ServerUsage(_Result):
    """One server's traffic: every MCP request (tool calls and other methods)."""

    namespace: str
    server: str
    calls: int
    allowed: int
    denied: int
    tool_calls: int
    humans: int
    agents: int
    avg_latency_ms: float
    last_seen: datetime


class ToolUsage(_Result):
    """One row of the dashboard's Tools table: who (human, calling team, agent) called which tool where.
    `team_id` here is the calling team (the event's `subject_team_id`)."""

    server: str
    namespace: str
    tool: str
    human_id: str | None
    team_id: str | None
    agent_id: str | None
    calls: int
    denied: int
    last_seen: datetime


class ActorUsage(_Result):
    """One caller (human + agent + calling team) across servers; `team_id` is the calling team."""

    human_id: str | None
    agent_id: str | None
    team_id: str | None
    calls: int
    allowed: int
    denied: int
    servers: int
    last_seen: datetime


class ReasonCount(_Result):
    """How often a decision was made for a reason (`reason` is the policy's `Reason`, or None)."""

    decision: str
    reason: str | None
    count: int


class TimeBucket(_Result):
    """Requests in one hour or day starting at `start` (UTC)."""

    start: datetime
    calls: int
    allowed: int
    denied: int


# ---------------------------------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------------------------------


@runtime_checkable
class EventStore(Protocol):
    """Idempotent event storage plus the usage queries of the API and dashboard.

    Ordering of rows: aggregates by `calls` descending (ties by their key columns), `recent` newest
    first, `events` by `event_id` ascending (UUIDv7: emission order per gateway). `limit` is capped at
    `MAX_QUERY_ROWS`.
    """

    def insert(self, events: Sequence[AnalyticsEvent]) -> InsertResult:
        """Store the events whose `event_id` is new; an id seen before (or twice in the batch) is a
        duplicate and changes nothing. All-or-nothing: on an exception nothing was acknowledged, and
        retrying the same batch is safe."""
        ...

    def totals(self, filter: UsageFilter) -> UsageTotals: ...

    def by_server(self, filter: UsageFilter, limit: int = 1000) -> list[ServerUsage]: ...

    def by_tool(self, filter: UsageFilter, limit: int = 1000) -> list[ToolUsage]:
        """Tool calls only (events with a tool name), grouped by server, tool, human, team, agent."""
        ...

    def by_actor(self, filter: UsageFilter, limit: int = 1000) -> list[ActorUsage]: ...

    def by_reason(self, filter: UsageFilter) -> list[ReasonCount]: ...

    def time_series(self, filter: UsageFilter, bucket: Bucket = "hour") -> list[TimeBucket]:
        """Buckets (UTC) from the first to the last one with events, widened to `since`/`until` when
        the filter has them; empty buckets are included with zeros (see `fill_buckets`)."""
        ...

    def recent(self, filter: UsageFilter, limit: int = 50) -> list[AnalyticsEvent]:
        """The latest events by timestamp, newest first."""
        ...

    def events(self, filter: UsageFilter, limit: int = 500,
               after_event_id: str | None = None) -> list[AnalyticsEvent]:
        """Events with `event_id` greater than `after_event_id`, ascending: pass the last id of one
        page to get the next, or poll with it to follow new events. Ids are time-ordered per gateway, so
        an event that reaches the store late with an older id is not seen by a follower already past it.
        """
        ...

    def count(self) -> int:
        """All stored events (deduplicated), ignoring visibility: for health and tests."""
        ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------------
# Helpers the implementations share
# ---------------------------------------------------------------------------------------------------


def dedupe_batch(events: Sequence[AnalyticsEvent]) -> list[AnalyticsEvent]:
    """The batch without repeated ids, first occurrence kept, order preserved."""
    seen: set[str] = set()
    unique: list[AnalyticsEvent] = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            unique.append(event)
    return unique


def fill_buckets(rows: Sequence[tuple[int, int, int, int]], bucket: Bucket,
                 since: datetime | None = None, until: datetime | None = None) -> list[TimeBucket]:
    """Dense buckets from sparse `(start_epoch_seconds, calls, allowed, denied)` rows.

    The range runs from the first to the last bucket with events, widened to the buckets of `since` and
    `until` (exclusive) when given, so a chart of "the last 24 hours" has 24 buckets; a widened range
    longer than `MAX_QUERY_ROWS` buckets falls back to the range of the data."""
    if bucket not in BUCKET_SECONDS:
        raise ValueError(f"bucket must be 'hour' or 'day', not {bucket!r}")
    step = BUCKET_SECONDS[bucket]
    by_start = {int(start): (int(c), int(a), int(d)) for start, c, a, d in rows}
    starts = list(by_start)
    if since is not None:
        starts.append(to_micros(since) // 1_000_000 // step * step)
    if until is not None:
        starts.append((to_micros(until) - 1) // 1_000_000 // step * step)
    if not starts:
        return []
    first, last = min(starts), max(starts)
    if (last - first) // step >= MAX_QUERY_ROWS:
        if not by_start:
            return []
        first, last = min(by_start), max(by_start)
    result = []
    for start in range(first, last + step, step):
        calls, allowed, denied = by_start.get(start, (0, 0, 0))
        result.append(TimeBucket(start=datetime.fromtimestamp(start, tz=UTC), calls=calls, allowed=allowed,
                                 denied=denied))
    return result


def event_from_row(row: Sequence[object]) -> AnalyticsEvent:
    """An event from a row of `EVENT_COLUMNS` whose timestamp is microseconds since the epoch."""
    values = dict(zip(EVENT_COLUMNS, row, strict=True))
    values["timestamp"] = from_micros(int(values["timestamp"]))  # type: ignore[call-overload]
    return AnalyticsEvent.model_validate(values)


@dataclass
class ParamCollector:
    """Collects query parameters while a WHERE clause is built; `placeholder` returns the SQL for one."""

    style: Literal["qmark", "clickhouse"]
    values: list[object] = field(default_factory=list)
    named: dict[str, object] = field(default_factory=dict)

    def add(self, value: object, ch_type: str = "String") -> str:
        if self.style == "qmark":
            self.values.append(value)
            return "?"
        name = f"p{len(self.named)}"
        self.named[name] = value
        return "{" + f"{name}:{ch_type}" + "}"

    def add_list(self, values: Sequence[str]) -> str:
        """`(?, ?, ...)` for SQLite; one `Array(String)` parameter for ClickHouse (never empty here)."""
        if self.style == "qmark":
            self.values.extend(values)
            return "(" + ", ".join("?" for _ in values) + ")"
        return self.add(list(values), "Array(String)")

    def add_pairs(self, pairs: Sequence[tuple[str, str]]) -> str:
        """`(VALUES (?, ?), ...)` for SQLite; one `Array(Tuple(String, String))` for ClickHouse."""
        if self.style == "qmark":
            for pair in pairs:
                self.values.extend(pair)
            return "(VALUES " + ", ".join("(?, ?)" for _ in pairs) + ")"
        return self.add([tuple(pair) for pair in pairs], "Array(Tuple(String, String))")


def where_clause(flt: UsageFilter, params: ParamCollector, *, ts_column: str, ts_wrap: str = "{}") -> str:
    """The SQL condition (no WHERE keyword) for a filter.

    `ts_column` is compared with `ts_wrap` applied to a microseconds-since-epoch parameter (SQLite
    stores microseconds; ClickHouse converts the parameter so its timestamp index is used)."""
    clauses: list[str] = []
    if flt.restricted:
        visible: list[str] = []
        if flt.visible_namespaces:
            visible.append(f"namespace IN {params.add_list(flt.visible_namespaces)}")
        if flt.visible_team_ids:
            visible.append(f"team_id IN {params.add_list(flt.visible_team_ids)}")
            visible.append(f"{CALLER_TEAM} IN {params.add_list(flt.visible_team_ids)}")
        if flt.visible_servers:
            visible.append(f"(namespace, server) IN {params.add_pairs(flt.visible_servers)}")
        clauses.append("(" + " OR ".join(visible) + ")" if visible else "1 = 0")
    for column, value in (("server", flt.server), ("namespace", flt.namespace), (CALLER_TEAM, flt.team),
                          ("human_id", flt.human), ("agent_id", flt.agent), ("tool_name", flt.tool),
                          ("decision", flt.decision), ("rpc_method", flt.method), ("matched_grant", flt.grant),
                          ("reason", flt.reason)):
        if value is not None:
            clauses.append(f"{column} = {params.add(value)}")
    if flt.since is not None:
        clauses.append(f"{ts_column} >= " + ts_wrap.format(params.add(flt.since_us, "Int64")))
    if flt.until is not None:
        clauses.append(f"{ts_column} < " + ts_wrap.format(params.add(flt.until_us, "Int64")))
    return " AND ".join(clauses) if clauses else "1 = 1"
