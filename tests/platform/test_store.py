"""The SQL store on SQLite and PostgreSQL: uniqueness, generations, refresh rotation, audit, restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mcp_runtime.store import (
    AlreadyExists,
    AuditRecord,
    NotFound,
    PlatformRole,
    RotateOutcome,
    StoredResource,
    TeamRole,
)
from mcp_runtime.store.sql import SqlStore, sqlite_url


def _grant(name: str, spec: dict | None = None) -> StoredResource:
    return StoredResource(kind="MCPAccessGrant", namespace="mcp-team-acme", name=name, uid="",
                          generation=0, spec=spec or {"maxTrust": "low"}, status=None)


def test_users_teams_and_memberships(store: SqlStore) -> None:
    alice = store.create_user("Alice@Acme.com", "hash", PlatformRole.user)
    assert store.get_user_by_email("alice@acme.com") == alice
    with pytest.raises(AlreadyExists):
        store.create_user("alice@acme.com", "other", PlatformRole.user)
    acme = store.create_team("acme", "Acme Corp", "mcp-team-acme")
    with pytest.raises(AlreadyExists):
        store.create_team("acme", "Again", "mcp-team-acme")
    store.add_member(acme.id, alice.id, TeamRole.owner)
    assert [(m.team.slug, m.role) for m in store.memberships_of(alice.id)] == [("acme", TeamRole.owner)]
    assert store.get_team_by_namespace("mcp-team-acme") == acme
    assert store.count_users() == 1


def test_resource_generation_bumps_only_on_spec_change(store: SqlStore) -> None:
    created = store.create_resource(_grant("g1"))
    assert created.generation == 1 and created.uid
    same = store.update_resource("MCPAccessGrant", "mcp-team-acme", "g1", status={"phase": "Active"})
    assert same.generation == 1 and same.status == {"phase": "Active"}
    changed = store.update_resource("MCPAccessGrant", "mcp-team-acme", "g1", spec={"maxTrust": "high"})
    assert changed.generation == 2
    with pytest.raises(AlreadyExists):
        store.create_resource(_grant("g1"))
    doc = changed.to_document()
    assert doc["metadata"]["uid"] == created.uid and doc["spec"] == {"maxTrust": "high"}
    store.delete_resource("MCPAccessGrant", "mcp-team-acme", "g1")
    with pytest.raises(NotFound):
        store.delete_resource("MCPAccessGrant", "mcp-team-acme", "g1")


def test_sql_looking_names_are_data(store: SqlStore) -> None:
    name = "x'; DROP TABLE resources; --"
    store.create_resource(_grant(name))
    assert store.get_resource("MCPAccessGrant", "mcp-team-acme", name) is not None
    assert len(store.list_resources("MCPAccessGrant")) == 1


def test_refresh_rotation_and_reuse_revokes_family(store: SqlStore) -> None:
    user = store.create_user("bob@globex.com", "hash", PlatformRole.user)
    now = datetime.now(UTC)
    later = now + timedelta(days=1)
    store.add_refresh_token(user.id, "fam", "h1", now + timedelta(days=1))
    assert store.rotate_refresh_token("h1", "h2", later, now).outcome == RotateOutcome.rotated
    assert store.rotate_refresh_token("h1", "h3", later, now).outcome == RotateOutcome.reused
    # the reuse revoked the whole family, including the newest token
    assert store.rotate_refresh_token("h2", "h4", later, now).outcome == RotateOutcome.reused
    assert store.rotate_refresh_token("nope", "h5", now, now).outcome == RotateOutcome.unknown
    store.add_refresh_token(user.id, "fam2", "old", now - timedelta(seconds=1))
    assert store.rotate_refresh_token("old", "h6", now, now).outcome == RotateOutcome.expired


def test_oauth_items_are_used_once_and_expired_ones_go(store: SqlStore) -> None:
    now = datetime.now(UTC)
    store.put_oauth_item("code:h1", {"client_id": "c1", "scopes": []}, now + timedelta(minutes=5))
    first = store.use_oauth_item("code:h1", now)
    assert first is not None and first.used_at is None and first.data["client_id"] == "c1"
    second = store.use_oauth_item("code:h1", now)
    assert second is not None and second.used_at is not None  # the earlier use is reported: a replay
    assert store.use_oauth_item("code:nope", now) is None
    store.put_oauth_item("code:old", {"x": 1}, now - timedelta(seconds=1))
    store.put_oauth_item("client:c1", {"client_id": "c1"}, None)  # a write with an expiry sweeps expired items
    store.put_oauth_item("request:r", {"x": 2}, now + timedelta(minutes=1))
    assert store.get_oauth_item("code:old") is None
    assert store.get_oauth_item("client:c1") is not None
    store.delete_oauth_item("client:c1")
    assert store.get_oauth_item("client:c1") is None


def test_audit_is_written_with_the_change_and_not_without(store: SqlStore) -> None:
    audit = AuditRecord(actor="admin@example.com", action="create", kind="MCPAccessGrant",
                        namespace="mcp-team-acme", name="g1", after={"spec": {}})
    store.create_resource(_grant("g1"), audit=audit)
    with pytest.raises(AlreadyExists):
        store.create_resource(_grant("g1"), audit=audit)
    entries = store.list_audit()
    assert len(entries) == 1 and entries[0].actor == "admin@example.com" and entries[0].at.tzinfo is not None


def test_sqlite_is_a_wal_file_in_the_data_dir(tmp_path: Path) -> None:
    sqlite = SqlStore.open(sqlite_url(tmp_path))
    try:
        with sqlite.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert (tmp_path / "platform.db").is_file()
    finally:
        sqlite.close()


def test_settings_first_writer_wins(store: SqlStore) -> None:
    assert store.put_setting_if_absent("keyring", "one") == "one"
    assert store.put_setting_if_absent("keyring", "two") == "one"


def test_reopen_keeps_everything_and_migrations_are_idempotent(db_url: str) -> None:
    first = SqlStore.open(db_url)
    first.create_user("admin@example.com", "hash", PlatformRole.admin)
    first.create_resource(_grant("kept"))
    first.close()
    second = SqlStore.open(db_url)
    try:
        assert second.get_user_by_email("admin@example.com") is not None
        assert second.get_resource("MCPAccessGrant", "mcp-team-acme", "kept") is not None
    finally:
        second.close()
