"""The analytics store at scale: ClickHouse (`EventStore` of `sentinel.store`).

    store = ClickHouseEventStore.from_url("http://user:password@clickhouse:8123", ttl_days=90)
    store = ClickHouseEventStore(ChdbExecutor(path))        # the same SQL, in process (tests, laptops)

The store only builds SQL; an *executor* runs it. `ClickHouseConnectExecutor` talks to a server with
`clickhouse-connect` (optional extra `clickhouse`, imported only when used); `ChdbExecutor` runs the
ClickHouse engine in process with `chdb`. Queries bind values as ClickHouse query parameters
(`{p0:String}`), never by pasting them into SQL text.

Table: `ReplacingMergeTree`, `PARTITION BY toDate(timestamp)`, `ORDER BY (namespace, server, event_id)`,
optional `TTL` in days. The sorting key ends in `event_id`, so merges collapse rows of the same event
(a resent event has the same namespace, server and timestamp, so the same key and partition), and the
leading `(namespace, server)` serves the per-server and visibility filters. Merges happen whenever
ClickHouse likes, so every query reads `FINAL`: a duplicate never counts twice, merged or not. Inserts
also skip ids already stored (looked up through a bloom-filter index on `event_id`), which keeps
`InsertResult` honest and the table small; two writers racing on the same new id may both insert it,
and `FINAL` absorbs that too.
"""

from __future__ import annotations

import importlib
import json
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from mcp_runtime.sentinel.events import AnalyticsEvent
from mcp_runtime.sentinel.store import (
    BUCKET_SECONDS,
    CALLER_TEAM,
    EVENT_COLUMNS,
    ActorUsage,
    Bucket,
    InsertResult,
    ParamCollector,
    ReasonCount,
    ServerUsage,
    TimeBucket,
    ToolUsage,
    UsageFilter,
    UsageTotals,
    clamp_limit,
    dedupe_batch,
    event_from_row,
    fill_buckets,
    from_micros,
    to_micros,
    where_clause,
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ClickHouseExecutor(Protocol):
    """Runs ClickHouse SQL. The store's only dependency on a client library."""

    def command(self, sql: str) -> None:
        """Run a statement that returns nothing (DDL)."""
        ...

    def query(self, sql: str, parameters: Mapping[str, object]) -> list[Sequence[Any]]:
        """Run a SELECT with `{name:Type}` parameters bound server-side; rows as sequences."""
        ...

    def insert_json_each_row(self, table: str, columns: Sequence[str], body: bytes) -> None:
        """Insert `body` (JSONEachRow: one JSON object per line) into `table` (`db.table`)."""
        ...


# ---------------------------------------------------------------------------------------------------
# Executors
# ---------------------------------------------------------------------------------------------------


def _escape_quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quoted_item(value: object) -> str:
    """An array element: a quoted string, or a tuple of them (`Array(Tuple(String, String))`)."""
    if isinstance(value, tuple):
        return "(" + ",".join(_escape_quoted(str(item)) for item in value) + ")"
    return _escape_quoted(str(value))


def _param_text(value: object) -> str:
    """A parameter value in the text form ClickHouse parses `param_<name>` with (as over HTTP)."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                .replace("\r", "\\r").replace("\0", "\\0"))
    if isinstance(value, list):
        return "[" + ",".join(_quoted_item(item) for item in value) + "]"
    raise TypeError(f"unsupported ClickHouse parameter type: {type(value).__name__}")


class ChdbExecutor:
    """The ClickHouse engine in process (`chdb`), on a data directory; one session, serialized calls.

    chdb runs one embedded server per process: only one data directory may be open at a time, so share
    one executor (several stores can use it with different `database` names) and `close()` it before
    opening another directory."""

    def __init__(self, path: Path | str) -> None:
        chdb_session: Any = importlib.import_module("chdb.session")  # heavy (~0.5 s): only when used
        self.path = Path(path)
        self._session: Any = chdb_session.Session(str(self.path))
        self._lock = threading.Lock()

    def command(self, sql: str) -> None:
        with self._lock:
            self._session.query(sql, "Null")

    def query(self, sql: str, parameters: Mapping[str, object]) -> list[Sequence[Any]]:
        params = {name: _param_text(value) for name, value in parameters.items()}
        with self._lock:
            result = self._session.query(sql, "JSONCompact", params=params)
        text = result.bytes() if hasattr(result, "bytes") else bytes(result)
        if not text.strip():
            return []
        data: list[Sequence[Any]] = json.loads(text)["data"]
        return data

    def insert_json_each_row(self, table: str, columns: Sequence[str], body: bytes) -> None:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) FORMAT JSONEachRow\n" + body.decode()
        with self._lock:
            self._session.query(sql, "Null")

    def close(self) -> None:
        with self._lock:
            self._session.close()


class ClickHouseConnectExecutor:
    """A ClickHouse server through `clickhouse-connect` (HTTP). Install the `clickhouse` extra."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> ClickHouseConnectExecutor:
        """`url` like `http://user:password@host:8123/database`; no session id, so threads may share it."""
        try:
            clickhouse_connect: Any = importlib.import_module("clickhouse_connect")
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise RuntimeError("ClickHouse analytics needs `pip install 'mcp-runtime[clickhouse]'`") from exc
        kwargs.setdefault("autogenerate_session_id", False)
        return cls(clickhouse_connect.get_client(dsn=url, **kwargs))

    def command(self, sql: str) -> None:
        self._client.command(sql)

    def query(self, sql: str, parameters: Mapping[str, object]) -> list[Sequence[Any]]:
        return list(self._client.query(sql, parameters=dict(parameters)).result_rows)

    def insert_json_each_row(self, table: str, columns: Sequence[str], body: bytes) -> None:
        self._client.raw_insert(table, column_names=list(columns), insert_block=body, fmt="JSONEachRow")

    def close(self) -> None:
        self._client.close()


# ---------------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------------

_COLUMN_TYPES: dict[str, str] = {
    "event_id": "String",
    "timestamp": "DateTime64(6, 'UTC')",
    "trace_id": "Nullable(String)",
    "source": "LowCardinality(String)",
    "server": "LowCardinality(String)",
    "namespace": "LowCardinality(String)",
    "team_id": "LowCardinality(Nullable(String))",
    "human_id": "Nullable(String)",
    "agent_id": "LowCardinality(Nullable(String))",
    "subject_team_id": "LowCardinality(Nullable(String))",
    "session_id": "Nullable(String)",
    "rpc_method": "LowCardinality(String)",
    "tool_name": "LowCardinality(Nullable(String))",
    "decision": "LowCardinality(String)",
    "reason": "LowCardinality(Nullable(String))",
    "matched_grant": "Nullable(String)",
    "required_trust": "LowCardinality(Nullable(String))",
    "effective_trust": "LowCardinality(Nullable(String))",
    "side_effect": "LowCardinality(Nullable(String))",
    "status": "UInt16",
    "latency_ms": "Float64",
    "bytes_in": "UInt64",
    "bytes_out": "UInt64",
    "policy_revision": "LowCardinality(Nullable(String))",
    "event_version": "UInt16 DEFAULT 1",
    "session_state": "LowCardinality(Nullable(String))",
    "consented_trust": "LowCardinality(Nullable(String))",
    "arguments_digest": "Nullable(String)",
    "chain_id": "LowCardinality(Nullable(String))",
    "chain_seq": "Nullable(UInt64)",
    "prev_hash": "Nullable(String)",
    "record_hash": "Nullable(String)",
    "client_id": "LowCardinality(Nullable(String))",
}
_ADDED_COLUMNS = ("event_version", "session_state", "consented_trust", "arguments_digest", "chain_id", "chain_seq",
                  "prev_hash", "record_hash", "client_id")
"""Columns added after the first schema: `ddl()` adds them to an older table; stored rows keep their data
and take the column default (`event_version` 1: recorded before the replay inputs were)."""
assert tuple(_COLUMN_TYPES) == EVENT_COLUMNS, "ClickHouse columns must follow AnalyticsEvent's fields"

_SELECT_EVENT = ", ".join("toUnixTimestamp64Micro(timestamp)" if name == "timestamp" else name
                          for name in EVENT_COLUMNS)
_TS_WRAP = "fromUnixTimestamp64Micro({}, 'UTC')"
_INT_COLUMNS = {"status", "bytes_in", "bytes_out", "event_version", "chain_seq"}


def event_json_row(event: AnalyticsEvent) -> str:
    """One JSONEachRow line of the table for an event (timestamp in the column's text form)."""
    row = event.model_dump()
    row["timestamp"] = event.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")  # UTC, the column's zone
    return json.dumps(row, separators=(",", ":"))


def _event(row: Sequence[Any]) -> AnalyticsEvent:
    values = [int(v) if name in _INT_COLUMNS and v is not None else v
              for name, v in zip(EVENT_COLUMNS, row, strict=True)]
    return event_from_row(values)


class ClickHouseEventStore:
    """`EventStore` on ClickHouse through an executor; creates its database and table if missing."""

    def __init__(self, executor: ClickHouseExecutor, *, database: str = "mcp_runtime",
                 table: str = "sentinel_events", ttl_days: int | None = None,
                 owns_executor: bool = False) -> None:
        """`owns_executor`: `close()` closes the executor too (else its creator closes it)."""
        for name in (database, table):
            if not _IDENTIFIER.match(name):
                raise ValueError(f"not a plain ClickHouse identifier: {name!r}")
        if ttl_days is not None and ttl_days < 1:
            raise ValueError("ttl_days must be at least 1 (or None to keep events forever)")
        self.executor = executor
        self.database = database
        self.table = f"{database}.{table}"
        self.ttl_days = ttl_days
        self._owns_executor = owns_executor
        for statement in self.ddl():
            executor.command(statement)

    def ddl(self) -> list[str]:
        """The statements that create the database and table (idempotent)."""
        columns = ",\n    ".join(f"{name} {kind}" for name, kind in _COLUMN_TYPES.items())
        ttl = f"\nTTL toDateTime(timestamp) + INTERVAL {int(self.ttl_days)} DAY" if self.ttl_days else ""
        return [
            f"CREATE DATABASE IF NOT EXISTS {self.database}",
            f"CREATE TABLE IF NOT EXISTS {self.table} (\n    {columns},\n"
            f"    INDEX event_id_bloom event_id TYPE bloom_filter(0.001) GRANULARITY 1,\n"
            f"    INDEX team_id_set team_id TYPE set(1000) GRANULARITY 4,\n"
            f"    INDEX subject_team_id_set subject_team_id TYPE set(1000) GRANULARITY 4\n"
            f") ENGINE = ReplacingMergeTree\n"
            f"PARTITION BY toDate(timestamp)\n"
            f"ORDER BY (namespace, server, event_id){ttl}",
            *(f"ALTER TABLE {self.table} ADD COLUMN IF NOT EXISTS {name} {_COLUMN_TYPES[name]}"
              for name in _ADDED_COLUMNS),
        ]

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> ClickHouseEventStore:
        """A store on a ClickHouse server (`http://user:password@host:8123`); it owns its client."""
        return cls(ClickHouseConnectExecutor.from_url(url), owns_executor=True, **kwargs)

    def close(self) -> None:
        closer = getattr(self.executor, "close", None)
        if self._owns_executor and callable(closer):
            closer()

    def _query(self, sql: str, params: Mapping[str, object]) -> list[Sequence[Any]]:
        return self.executor.query(sql, params)

    def _where(self, flt: UsageFilter, extra: str | None = None,
               params: ParamCollector | None = None) -> tuple[str, ParamCollector]:
        params = params or ParamCollector("clickhouse")
        condition = where_clause(flt, params, ts_column="timestamp", ts_wrap=_TS_WRAP)
        if extra:
            condition = f"{extra} AND {condition}"
        return condition, params

    # --- writing -------------------------------------------------------------------------------

    def insert(self, events: Sequence[AnalyticsEvent]) -> InsertResult:
        if not events:
            return InsertResult(accepted=0, duplicates=0)
        unique = dedupe_batch(events)
        stamps = [to_micros(event.timestamp) for event in unique]
        # A resent event has the same timestamp, so the time range prunes partitions for the lookup.
        lo, hi = _TS_WRAP.format("{lo:Int64}"), _TS_WRAP.format("{hi:Int64}")
        existing = {str(row[0]) for row in self._query(
            f"SELECT DISTINCT event_id FROM {self.table} "
            f"WHERE timestamp >= {lo} AND timestamp <= {hi} AND event_id IN {{ids:Array(String)}}",
            {"lo": min(stamps), "hi": max(stamps), "ids": [event.event_id for event in unique]})}
        new = [event for event in unique if event.event_id not in existing]
        if new:
            body = "\n".join(event_json_row(event) for event in new).encode() + b"\n"
            self.executor.insert_json_each_row(self.table, EVENT_COLUMNS, body)
        return InsertResult(accepted=len(new), duplicates=len(events) - len(new))

    # --- queries -------------------------------------------------------------------------------

    def count(self) -> int:
        return int(self._query(f"SELECT count() FROM {self.table} FINAL", {})[0][0])

    def totals(self, filter: UsageFilter) -> UsageTotals:
        where, params = self._where(filter)
        row = self._query(
            f"SELECT count(), countIf(decision = 'allow'), countIf(decision = 'deny'), uniqExact(human_id), "
            f"uniqExact(agent_id), uniqExact(namespace, server) FROM {self.table} FINAL WHERE {where}",
            params.named)[0]
        return UsageTotals(events=int(row[0]), allowed=int(row[1]), denied=int(row[2]), humans=int(row[3]),
                           agents=int(row[4]), servers=int(row[5]))

    def by_server(self, filter: UsageFilter, limit: int = 1000) -> list[ServerUsage]:
        where, params = self._where(filter)
        rows = self._query(
            f"SELECT namespace, server, count() AS calls, countIf(decision = 'allow'), "
            f"countIf(decision = 'deny'), countIf(tool_name IS NOT NULL), uniqExact(human_id), "
            f"uniqExact(agent_id), avg(latency_ms), max(toUnixTimestamp64Micro(timestamp)) "
            f"FROM {self.table} FINAL WHERE {where} GROUP BY namespace, server "
            f"ORDER BY calls DESC, namespace, server LIMIT {clamp_limit(limit)}", params.named)
        return [ServerUsage(namespace=r[0], server=r[1], calls=int(r[2]), allowed=int(r[3]), denied=int(r[4]),
                            tool_calls=int(r[5]), humans=int(r[6]), agents=int(r[7]),
                            avg_latency_ms=round(float(r[8]), 3), last_seen=from_micros(int(r[9])))
                for r in rows]

    def by_tool(self, filter: UsageFilter, limit: int = 1000) -> list[ToolUsage]:
        where, params = self._where(filter, "tool_name IS NOT NULL")
        keys = ("namespace", "server", "tool_name", "human_id", CALLER_TEAM, "agent_id")
        rows = self._query(
            f"SELECT server, namespace, tool_name, human_id, {CALLER_TEAM}, agent_id, count() AS calls, "
            f"countIf(decision = 'deny'), max(toUnixTimestamp64Micro(timestamp)) "
            f"FROM {self.table} FINAL WHERE {where} GROUP BY {', '.join(keys)} "
            f"ORDER BY calls DESC, {', '.join(f'{k} NULLS FIRST' for k in keys)} LIMIT {clamp_limit(limit)}",
            params.named)
        return [ToolUsage(server=r[0], namespace=r[1], tool=r[2], human_id=r[3], team_id=r[4], agent_id=r[5],
                          calls=int(r[6]), denied=int(r[7]), last_seen=from_micros(int(r[8]))) for r in rows]

    def by_actor(self, filter: UsageFilter, limit: int = 1000) -> list[ActorUsage]:
        where, params = self._where(filter)
        keys = ("human_id", "agent_id", CALLER_TEAM)
        rows = self._query(
            f"SELECT {', '.join(keys)}, count() AS calls, countIf(decision = 'allow'), "
            f"countIf(decision = 'deny'), uniqExact(namespace, server), "
            f"max(toUnixTimestamp64Micro(timestamp)) "
            f"FROM {self.table} FINAL WHERE {where} GROUP BY {', '.join(keys)} "
            f"ORDER BY calls DESC, {', '.join(f'{k} NULLS FIRST' for k in keys)} LIMIT {clamp_limit(limit)}",
            params.named)
        return [ActorUsage(human_id=r[0], agent_id=r[1], team_id=r[2], calls=int(r[3]), allowed=int(r[4]),
                           denied=int(r[5]), servers=int(r[6]), last_seen=from_micros(int(r[7])))
                for r in rows]

    def by_reason(self, filter: UsageFilter) -> list[ReasonCount]:
        where, params = self._where(filter)
        rows = self._query(
            f"SELECT decision, reason, count() AS n FROM {self.table} FINAL WHERE {where} "
            f"GROUP BY decision, reason ORDER BY n DESC, decision, reason NULLS FIRST", params.named)
        return [ReasonCount(decision=r[0], reason=r[1], count=int(r[2])) for r in rows]

    def time_series(self, filter: UsageFilter, bucket: Bucket = "hour") -> list[TimeBucket]:
        if bucket not in BUCKET_SECONDS:
            raise ValueError(f"bucket must be 'hour' or 'day', not {bucket!r}")
        step = BUCKET_SECONDS[bucket]
        where, params = self._where(filter)
        rows = self._query(
            f"SELECT intDiv(toUnixTimestamp64Micro(timestamp), {step * 1_000_000}) * {step} AS start, "
            f"count(), countIf(decision = 'allow'), countIf(decision = 'deny') FROM {self.table} FINAL "
            f"WHERE {where} GROUP BY start ORDER BY start", params.named)
        return fill_buckets([(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows], bucket,
                            filter.since, filter.until)

    def recent(self, filter: UsageFilter, limit: int = 50) -> list[AnalyticsEvent]:
        where, params = self._where(filter)
        rows = self._query(f"SELECT {_SELECT_EVENT} FROM {self.table} FINAL WHERE {where} "
                           f"ORDER BY timestamp DESC, event_id DESC LIMIT {clamp_limit(limit)}", params.named)
        return [_event(r) for r in rows]

    def events(self, filter: UsageFilter, limit: int = 500,
               after_event_id: str | None = None) -> list[AnalyticsEvent]:
        params = ParamCollector("clickhouse")
        extra = None
        if after_event_id is not None:
            extra = f"event_id > {params.add(after_event_id)}"
        where, params = self._where(filter, extra, params)
        rows = self._query(f"SELECT {_SELECT_EVENT} FROM {self.table} FINAL WHERE {where} "
                           f"ORDER BY event_id LIMIT {clamp_limit(limit)}", params.named)
        return [_event(r) for r in rows]
