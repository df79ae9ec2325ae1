"""The SQL store: SQLAlchemy 2 on SQLite (default) or PostgreSQL (psycopg 3), schema by Alembic."""

from mcp_runtime.store.sql.engine import make_engine, sqlite_url
from mcp_runtime.store.sql.store import SqlStore

__all__ = ["SqlStore", "make_engine", "sqlite_url"]
