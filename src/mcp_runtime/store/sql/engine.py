"""Engines for the two databases: SQLite (a WAL file in the data dir) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

DB_FILE_NAME = "platform.db"
CONNECT_TIMEOUT = 5  # seconds to open a PostgreSQL connection
POOL_TIMEOUT = 10.0  # seconds to wait for a free pooled connection


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(Path(data_dir) / DB_FILE_NAME).resolve()}"


def make_engine(url: str) -> Engine:
    """An engine with the settings each backend needs; `postgresql://` is taken to mean psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # pre-ping replaces connections a database restart broke; the timeouts make a request fail (503)
    # instead of hanging while the database is unreachable or every connection is busy
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, pool_timeout=POOL_TIMEOUT,
                         connect_args={"connect_timeout": CONNECT_TIMEOUT})


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
