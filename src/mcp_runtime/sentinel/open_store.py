"""Open the event store a configuration string names: the one place that knows every implementation."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

from mcp_runtime.sentinel.clickhouse_store import ChdbExecutor, ClickHouseEventStore
from mcp_runtime.sentinel.sqlite_store import SQLiteEventStore
from mcp_runtime.sentinel.store import EventStore


def open_event_store(url: str) -> EventStore:
    """The store a configuration string names (the store owns whatever it opens; `close()` it).

    - `sqlite:///abs/path/analytics.db`, `sqlite://rel/path.db` or a plain file path: SQLite (default).
    - `clickhouse://user:password@host:8123/database?ttl_days=90` (`clickhouses://` for HTTPS):
      a ClickHouse server through clickhouse-connect (extra `clickhouse`).
    - `chdb:///abs/data/dir?ttl_days=90`: ClickHouse in process (one chdb data directory per process).
    """
    parts = urlsplit(url)
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    ttl = int(query["ttl_days"]) if "ttl_days" in query else None
    if parts.scheme in ("", "file", "sqlite"):
        path = url if parts.scheme == "" else (parts.netloc + parts.path)
        return SQLiteEventStore(Path(path).expanduser())
    database = parts.path.strip("/") or "mcp_runtime"
    if parts.scheme == "chdb":
        return ClickHouseEventStore(ChdbExecutor(parts.netloc + parts.path), ttl_days=ttl, owns_executor=True)
    if parts.scheme in ("clickhouse", "clickhouses"):
        http = "https" if parts.scheme == "clickhouses" else "http"
        server_url = urlunsplit((http, parts.netloc, "", "", ""))
        return ClickHouseEventStore.from_url(server_url, database=database, ttl_days=ttl)
    raise ValueError(f"unknown analytics store URL scheme {parts.scheme!r} (sqlite, clickhouse, chdb)")
