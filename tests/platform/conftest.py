"""Fixtures for the store and platform API tests: each runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from platform_support import BACKENDS, LivePlatform, World, build_world, database_url, platform_settings, serve_platform

from mcp_runtime.security import passwords
from mcp_runtime.store.sql import SqlStore


@pytest.fixture(scope="session", autouse=True)
def _cheap_argon2() -> Iterator[None]:
    """Still argon2id, with test-sized cost: every login and user creation would otherwise take ~0.25 s."""
    saved = passwords._HASHER, passwords._DUMMY_HASH
    passwords._HASHER = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    passwords._DUMMY_HASH = passwords._HASHER.hash("dummy")
    yield
    passwords._HASHER, passwords._DUMMY_HASH = saved


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path / "data") as url:
        yield url


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    opened = SqlStore.open(db_url)
    yield opened
    opened.close()


@pytest.fixture(scope="session", params=BACKENDS)
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    """One platform API server per database for the whole run (tests use distinct names)."""
    data_dir = tmp_path_factory.mktemp(f"platform-{request.param}")
    with database_url(request.param, data_dir) as url, serve_platform(platform_settings(data_dir, url)) as served:
        yield served


@pytest.fixture(scope="session")
def world(live: LivePlatform) -> World:
    return build_world(live)
