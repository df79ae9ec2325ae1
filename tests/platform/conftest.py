"""Fixtures for the store and platform API tests: each runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from databases import BACKENDS, database_url

from mcp_runtime.store.sql import SqlStore


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path / "data") as url:
        yield url


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    opened = SqlStore.open(db_url)
    yield opened
    opened.close()
