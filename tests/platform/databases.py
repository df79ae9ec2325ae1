"""The two databases the store and API tests run on: a SQLite file and a fresh PostgreSQL schema."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import text

from mcp_runtime.store.sql import make_engine, sqlite_url

POSTGRES_URL = os.environ.get(
    "MCP_RUNTIME_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/mcp_runtime_test"
)
BACKENDS = ["sqlite", "postgres"]


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL whose connections see only a new, empty schema; dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = make_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def database_url(backend: str, data_dir: Path) -> Iterator[str]:
    if backend == "sqlite":
        data_dir.mkdir(parents=True, exist_ok=True)
        yield sqlite_url(data_dir)
    else:
        with postgres_schema() as url:
            yield url
