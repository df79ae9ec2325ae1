"""The embedded analytics store: one SQLite file in WAL mode (`EventStore` of `sentinel.store`).

    store = SQLiteEventStore(Path("~/.mcp-runtime/analytics.db").expanduser())
    store.insert(events)                       # INSERT OR IGNORE on the primary key event_id
    store.by_tool(UsageFilter())

Why SQLite: the embedded runtime needs no service, and one writer with WAL ingests tens of thousands of
events per second in batches while readers (the dashboard) never block it. Thread-safe: a small pool
of connections (readers run in parallel under WAL) and one write lock (so writers queue in Python
instead of spinning on SQLITE_BUSY). Timestamps are stored as integer microseconds since the epoch so
events round-trip exactly and time buckets are integer arithmetic.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

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

SCHEMA_VERSION = 4
TABLE = "sentinel_events"

# The stored columns, in EVENT_COLUMNS order; `timestamp` is kept as `ts_us` (microseconds).
_COLUMNS = tuple("ts_us" if name == "timestamp" else name for name in EVENT_COLUMNS)
_SELECT_EVENT = ", ".join(_COLUMNS)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    event_id        TEXT PRIMARY KEY NOT NULL,
    ts_us           INTEGER NOT NULL,
    trace_id        TEXT,
    source          TEXT NOT NULL,
    server          TEXT NOT NULL,
    namespace       TEXT NOT NULL,
    team_id         TEXT,
    human_id        TEXT,
    agent_id        TEXT,
    subject_team_id TEXT,
    session_id      TEXT,
    rpc_method      TEXT NOT NULL,
    tool_name       TEXT,
    decision        TEXT NOT NULL,
    reason          TEXT,
    matched_grant   TEXT,
    required_trust  TEXT,
    effective_trust TEXT,
    side_effect     TEXT,
    status          INTEGER NOT NULL,
    latency_ms      REAL NOT NULL,
    bytes_in        INTEGER NOT NULL,
    bytes_out       INTEGER NOT NULL,
    policy_revision TEXT,
    event_version   INTEGER NOT NULL DEFAULT 1,
    session_state   TEXT,
    consented_trust TEXT,
    arguments_digest TEXT,
    chain_id        TEXT,
    chain_seq       INTEGER,
    prev_hash       TEXT,
    record_hash     TEXT,
    client_id       TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {TABLE}_ts ON {TABLE} (ts_us);
CREATE INDEX IF NOT EXISTS {TABLE}_server_ts ON {TABLE} (namespace, server, ts_us);
CREATE INDEX IF NOT EXISTS {TABLE}_team_ts ON {TABLE} (team_id, ts_us);
CREATE INDEX IF NOT EXISTS {TABLE}_caller_team_ts ON {TABLE} (subject_team_id, ts_us);
"""

# Schema upgrades, by the version they lead to. Each keeps every stored row: added columns take their
# default (version-1 rows are marked `event_version = 1`, so a replay counts them as too old).
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (f"ALTER TABLE {TABLE} ADD COLUMN event_version INTEGER NOT NULL DEFAULT 1",
        f"ALTER TABLE {TABLE} ADD COLUMN session_state TEXT",
        f"ALTER TABLE {TABLE} ADD COLUMN consented_trust TEXT",
        f"ALTER TABLE {TABLE} ADD COLUMN arguments_digest TEXT"),
    3: (f"ALTER TABLE {TABLE} ADD COLUMN chain_id TEXT",
        f"ALTER TABLE {TABLE} ADD COLUMN chain_seq INTEGER",
        f"ALTER TABLE {TABLE} ADD COLUMN prev_hash TEXT",
        f"ALTER TABLE {TABLE} ADD COLUMN record_hash TEXT"),
    4: (f"ALTER TABLE {TABLE} ADD COLUMN client_id TEXT",),
}

_INSERT = (f"INSERT OR IGNORE INTO {TABLE} ({', '.join(_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in _COLUMNS)})")


def _row(event: AnalyticsEvent) -> tuple[Any, ...]:
    return tuple(to_micros(event.timestamp) if name == "timestamp" else getattr(event, name)
                 for name in EVENT_COLUMNS)


class SQLiteEventStore:
    """`EventStore` on one SQLite file (created with its directory if missing)."""

    def __init__(self, path: Path | str, *, synchronous: Literal["FULL", "NORMAL"] = "FULL",
                 busy_timeout: float = 30.0, max_idle_connections: int = 8,
                 retention_days: int | None = None) -> None:
        """`synchronous="FULL"` (default) makes every acknowledged insert survive a power loss;
        `"NORMAL"` survives a crash of the process only, and writes single events faster.
        `retention_days`: what `prune()` keeps (the embedded counterpart of ClickHouse's TTL)."""
        if retention_days is not None and retention_days < 1:
            raise ValueError("retention_days must be at least 1 (or None to keep events forever)")
        self.retention_days = retention_days
        if str(path) == ":memory:":
            raise ValueError("SQLiteEventStore needs a file path (connections share it)")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._max_idle = max_idle_connections
        self._pool_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        with self._write_lock, self._connection() as conn:
            self._migrate(conn)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Create the table, or bring an older one up to `SCHEMA_VERSION` in one transaction."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                  (TABLE,)).fetchone() is not None
            if exists and version < SCHEMA_VERSION:
                for target in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[target]:
                        conn.execute(statement)
            elif version > SCHEMA_VERSION:
                raise RuntimeError(f"the analytics database is at schema {version}, newer than this "
                                   f"version of mcp-runtime understands ({SCHEMA_VERSION}); upgrade mcp-runtime")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # --- connections ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._pool_lock:
            if self._closed:
                raise RuntimeError("the event store is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            with self._pool_lock:
                if self._closed or len(self._idle) >= self._max_idle:
                    conn.close()
                else:
                    self._idle.append(conn)

    def close(self) -> None:
        """Close every idle connection; connections in use close when they are returned."""
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _query(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            return conn.execute(sql, tuple(params)).fetchall()

    def _where(self, flt: UsageFilter, extra: str | None = None) -> tuple[str, list[object]]:
        params = ParamCollector("qmark")
        condition = where_clause(flt, params, ts_column="ts_us")
        if extra:
            condition = f"{extra} AND {condition}"
        return condition, params.values

    # --- writing -------------------------------------------------------------------------------

    def insert(self, events: Sequence[AnalyticsEvent]) -> InsertResult:
        if not events:
            return InsertResult(accepted=0, duplicates=0)
        rows = [_row(event) for event in dedupe_batch(events)]
        with self._write_lock, self._connection() as conn:
            before = conn.total_changes
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_INSERT, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            accepted = conn.total_changes - before
        return InsertResult(accepted=accepted, duplicates=len(events) - accepted)

    def prune(self, before: datetime | None = None, chunk: int = 5000) -> int:
        """Delete events older than `before` (default: now minus `retention_days`; without either,
        nothing); returns how many. Deletes in chunks so writers wait at most one chunk. The platform
        calls it periodically. A replay of a pruned event would be stored again, as new."""
        if before is None:
            if self.retention_days is None:
                return 0
            before = datetime.now(UTC) - timedelta(days=self.retention_days)
        cutoff = to_micros(before)
        removed = 0
        while True:
            with self._write_lock, self._connection() as conn:
                cursor = conn.execute(
                    f"DELETE FROM {TABLE} WHERE event_id IN "
                    f"(SELECT event_id FROM {TABLE} WHERE ts_us < ? ORDER BY ts_us LIMIT ?)", (cutoff, chunk))
                removed += max(cursor.rowcount, 0)
                if cursor.rowcount < chunk:
                    return removed

    # --- queries -------------------------------------------------------------------------------

    def count(self) -> int:
        return int(self._query(f"SELECT COUNT(*) FROM {TABLE}", ())[0][0])

    def totals(self, filter: UsageFilter) -> UsageTotals:
        where, params = self._where(filter)
        row = self._query(
            f"SELECT COUNT(*), COALESCE(SUM(decision = 'allow'), 0), COALESCE(SUM(decision = 'deny'), 0), "
            f"COUNT(DISTINCT human_id), COUNT(DISTINCT agent_id), COUNT(DISTINCT namespace || '/' || server) "
            f"FROM {TABLE} WHERE {where}", params)[0]
        return UsageTotals(events=row[0], allowed=row[1], denied=row[2], humans=row[3], agents=row[4],
                           servers=row[5])

    def by_server(self, filter: UsageFilter, limit: int = 1000) -> list[ServerUsage]:
        where, params = self._where(filter)
        rows = self._query(
            f"SELECT namespace, server, COUNT(*) AS calls, SUM(decision = 'allow'), SUM(decision = 'deny'), "
            f"SUM(tool_name IS NOT NULL), COUNT(DISTINCT human_id), COUNT(DISTINCT agent_id), "
            f"AVG(latency_ms), MAX(ts_us) FROM {TABLE} WHERE {where} "
            f"GROUP BY namespace, server ORDER BY calls DESC, namespace, server LIMIT ?",
            [*params, clamp_limit(limit)])
        return [ServerUsage(namespace=r[0], server=r[1], calls=r[2], allowed=r[3], denied=r[4],
                            tool_calls=r[5], humans=r[6], agents=r[7], avg_latency_ms=round(r[8], 3),
                            last_seen=from_micros(r[9])) for r in rows]

    def by_tool(self, filter: UsageFilter, limit: int = 1000) -> list[ToolUsage]:
        where, params = self._where(filter, "tool_name IS NOT NULL")
        keys = f"namespace, server, tool_name, human_id, {CALLER_TEAM}, agent_id"
        rows = self._query(
            f"SELECT server, namespace, tool_name, human_id, {CALLER_TEAM}, agent_id, COUNT(*) AS calls, "
            f"SUM(decision = 'deny'), MAX(ts_us) FROM {TABLE} WHERE {where} "
            f"GROUP BY {keys} ORDER BY calls DESC, {keys} LIMIT ?", [*params, clamp_limit(limit)])
        return [ToolUsage(server=r[0], namespace=r[1], tool=r[2], human_id=r[3], team_id=r[4], agent_id=r[5],
                          calls=r[6], denied=r[7], last_seen=from_micros(r[8])) for r in rows]

    def by_actor(self, filter: UsageFilter, limit: int = 1000) -> list[ActorUsage]:
        where, params = self._where(filter)
        keys = f"human_id, agent_id, {CALLER_TEAM}"
        rows = self._query(
            f"SELECT {keys}, COUNT(*) AS calls, SUM(decision = 'allow'), SUM(decision = 'deny'), "
            f"COUNT(DISTINCT namespace || '/' || server), MAX(ts_us) FROM {TABLE} WHERE {where} "
            f"GROUP BY {keys} ORDER BY calls DESC, {keys} LIMIT ?", [*params, clamp_limit(limit)])
        return [ActorUsage(human_id=r[0], agent_id=r[1], team_id=r[2], calls=r[3], allowed=r[4], denied=r[5],
                           servers=r[6], last_seen=from_micros(r[7])) for r in rows]

    def by_reason(self, filter: UsageFilter) -> list[ReasonCount]:
        where, params = self._where(filter)
        rows = self._query(
            f"SELECT decision, reason, COUNT(*) AS n FROM {TABLE} WHERE {where} "
            f"GROUP BY decision, reason ORDER BY n DESC, decision, reason", params)
        return [ReasonCount(decision=r[0], reason=r[1], count=r[2]) for r in rows]

    def time_series(self, filter: UsageFilter, bucket: Bucket = "hour") -> list[TimeBucket]:
        if bucket not in BUCKET_SECONDS:
            raise ValueError(f"bucket must be 'hour' or 'day', not {bucket!r}")
        step = BUCKET_SECONDS[bucket]
        where, params = self._where(filter)
        rows = self._query(
            f"SELECT (ts_us / {step * 1_000_000}) * {step} AS start, COUNT(*), SUM(decision = 'allow'), "
            f"SUM(decision = 'deny') FROM {TABLE} WHERE {where} GROUP BY start ORDER BY start", params)
        return fill_buckets(rows, bucket, filter.since, filter.until)

    def recent(self, filter: UsageFilter, limit: int = 50) -> list[AnalyticsEvent]:
        where, params = self._where(filter)
        rows = self._query(f"SELECT {_SELECT_EVENT} FROM {TABLE} WHERE {where} "
                           f"ORDER BY ts_us DESC, event_id DESC LIMIT ?", [*params, clamp_limit(limit)])
        return [event_from_row(r) for r in rows]

    def events(self, filter: UsageFilter, limit: int = 500,
               after_event_id: str | None = None) -> list[AnalyticsEvent]:
        extra = None
        params: list[object] = []
        if after_event_id is not None:
            extra = "event_id > ?"
            params.append(after_event_id)
        where, filter_params = self._where(filter, extra)
        rows = self._query(f"SELECT {_SELECT_EVENT} FROM {TABLE} WHERE {where} ORDER BY event_id LIMIT ?",
                           [*params, *filter_params, clamp_limit(limit)])
        return [event_from_row(r) for r in rows]
