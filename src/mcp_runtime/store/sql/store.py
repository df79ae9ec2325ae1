"""`ControlPlaneStore` on SQLAlchemy 2: one short transaction per call, records out, never ORM objects."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from mcp_runtime.resources.common import utcnow
from mcp_runtime.store.records import (
    AlreadyExists,
    ApiKey,
    AuditEntry,
    AuditRecord,
    Membership,
    NotFound,
    OAuthItem,
    PlatformRole,
    RefreshToken,
    RotateOutcome,
    RotateResult,
    StoredResource,
    StoreUnavailable,
    Team,
    TeamRole,
    User,
)
from mcp_runtime.store.sql import migrate
from mcp_runtime.store.sql.audit import append_audit_entry, audit_entry
from mcp_runtime.store.sql.engine import make_engine
from mcp_runtime.store.sql.models import (
    ApiKeyRow,
    AuditRow,
    MembershipRow,
    OAuthItemRow,
    RefreshTokenRow,
    ResourceRow,
    SettingRow,
    TeamRow,
    UserRow,
)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every datetime leaving the store is UTC-aware."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _user(row: UserRow) -> User:
    return User(id=row.id, email=row.email, password_hash=row.password_hash, role=PlatformRole(row.role),
                created_at=_aware(row.created_at) or utcnow())


def _team(row: TeamRow) -> Team:
    return Team(id=row.id, slug=row.slug, name=row.name, namespace=row.namespace,
                created_at=_aware(row.created_at) or utcnow())


def _api_key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(id=row.id, user_id=row.user_id, name=row.name, prefix=row.prefix, key_hash=row.key_hash,
                  created_at=_aware(row.created_at) or utcnow(), last_used_at=_aware(row.last_used_at))


def _refresh(row: RefreshTokenRow) -> RefreshToken:
    return RefreshToken(id=row.id, user_id=row.user_id, family_id=row.family_id, token_hash=row.token_hash,
                        created_at=_aware(row.created_at) or utcnow(),
                        expires_at=_aware(row.expires_at) or utcnow(),
                        used_at=_aware(row.used_at), revoked_at=_aware(row.revoked_at))


def _oauth_item(row: OAuthItemRow) -> OAuthItem:
    return OAuthItem(key=row.key, data=dict(row.data or {}), created_at=_aware(row.created_at) or utcnow(),
                     expires_at=_aware(row.expires_at), used_at=_aware(row.used_at))


def _resource(row: ResourceRow) -> StoredResource:
    return StoredResource(kind=row.kind, namespace=row.namespace, name=row.name, uid=row.uid,
                          generation=row.generation, spec=row.spec, status=row.status,
                          labels=dict(row.labels or {}), annotations=dict(row.annotations or {}),
                          api_version=row.api_version, created_at=_aware(row.created_at),
                          updated_at=_aware(row.updated_at))


def _transient(exc: Exception) -> bool:
    """Whether a database error means "unavailable now" rather than a bug (SQLite's `no such table`
    is an OperationalError too, and must stay a 500)."""
    if isinstance(exc, PoolTimeout | InterfaceError):
        return True
    orig = getattr(exc, "orig", None)
    module = type(orig).__module__ if orig is not None else ""
    if module.startswith("sqlite3"):
        text = str(orig).lower()
        return any(word in text for word in ("locked", "busy", "disk i/o", "unable to open"))
    return True  # PostgreSQL: connection refused or lost, server shutting down or starting up


def _reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    text = " ".join(str(orig or exc).split())
    return text[:300]


class SqlStore:
    """The SQL implementation of `ControlPlaneStore` (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, *, run_migrations: bool = True) -> SqlStore:
        """Connect and bring the schema up to date."""
        engine = make_engine(url)
        if run_migrations:
            migrate.upgrade(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self, audit: AuditRecord | None = None) -> Iterator[Session]:
        """One transaction; the audit record (if any) commits or rolls back with the change.

        A lost or refused connection, or no free connection in the pool, becomes `StoreUnavailable`:
        the transaction did not commit (or, if the connection broke during COMMIT itself, the caller
        cannot know; every write here is one transaction, so it is all there or not at all)."""
        try:
            with self._sessions.begin() as session:
                yield session
                if audit is not None:
                    self._append_audit(session, audit)
        except (OperationalError, InterfaceError, PoolTimeout) as exc:
            if not _transient(exc):
                raise
            raise StoreUnavailable(_reason(exc)) from exc

    @staticmethod
    def _append_audit(session: Session, record: AuditRecord) -> None:
        append_audit_entry(session, record)

    # settings -----------------------------------------------------------------------------------
    def get_setting(self, key: str) -> str | None:
        with self._tx() as s:
            row = s.get(SettingRow, key)
            return row.value if row else None

    def put_setting_if_absent(self, key: str, value: str) -> str:
        try:
            with self._tx() as s:
                row = s.get(SettingRow, key)
                if row is not None:
                    return row.value
                s.add(SettingRow(key=key, value=value))
            return value
        except IntegrityError:
            stored = self.get_setting(key)
            assert stored is not None
            return stored

    def set_setting(self, key: str, value: str) -> None:
        with self._tx() as s:
            s.merge(SettingRow(key=key, value=value))

    # users --------------------------------------------------------------------------------------
    def create_user(self, email: str, password_hash: str, role: PlatformRole,
                    audit: AuditRecord | None = None) -> User:
        row = UserRow(id=str(uuid.uuid4()), email=email.lower(), password_hash=password_hash, role=str(role),
                      created_at=utcnow())
        try:
            with self._tx(audit) as s:
                s.add(row)
        except IntegrityError as exc:
            raise AlreadyExists(f"user {email} already exists") from exc
        return _user(row)

    def get_user(self, user_id: str) -> User | None:
        with self._tx() as s:
            row = s.get(UserRow, user_id)
            return _user(row) if row else None

    def get_user_by_email(self, email: str) -> User | None:
        with self._tx() as s:
            row = s.scalars(select(UserRow).where(UserRow.email == email.lower())).first()
            return _user(row) if row else None

    def list_users(self) -> list[User]:
        with self._tx() as s:
            return [_user(r) for r in s.scalars(select(UserRow).order_by(UserRow.email))]

    def count_users(self) -> int:
        with self._tx() as s:
            return int(s.scalar(select(func.count()).select_from(UserRow)) or 0)

    def set_password_hash(self, user_id: str, password_hash: str) -> None:
        with self._tx() as s:
            s.execute(update(UserRow).where(UserRow.id == user_id).values(password_hash=password_hash))

    # teams --------------------------------------------------------------------------------------
    def create_team(self, slug: str, name: str, namespace: str, audit: AuditRecord | None = None) -> Team:
        row = TeamRow(id=str(uuid.uuid4()), slug=slug, name=name, namespace=namespace, created_at=utcnow())
        try:
            with self._tx(audit) as s:
                s.add(row)
        except IntegrityError as exc:
            raise AlreadyExists(f"team {slug} already exists") from exc
        return _team(row)

    def get_team(self, slug: str) -> Team | None:
        with self._tx() as s:
            row = s.scalars(select(TeamRow).where(TeamRow.slug == slug)).first()
            return _team(row) if row else None

    def get_team_by_id(self, team_id: str) -> Team | None:
        with self._tx() as s:
            row = s.get(TeamRow, team_id)
            return _team(row) if row else None

    def get_team_by_namespace(self, namespace: str) -> Team | None:
        with self._tx() as s:
            row = s.scalars(select(TeamRow).where(TeamRow.namespace == namespace)).first()
            return _team(row) if row else None

    def list_teams(self) -> list[Team]:
        with self._tx() as s:
            return [_team(r) for r in s.scalars(select(TeamRow).order_by(TeamRow.slug))]

    def rename_team(self, slug: str, name: str, audit: AuditRecord | None = None) -> Team:
        with self._tx(audit) as s:
            row = s.scalars(select(TeamRow).where(TeamRow.slug == slug)).first()
            if row is None:
                raise NotFound(f"team {slug} not found")
            row.name = name
            return _team(row)

    def delete_team(self, slug: str, audit: AuditRecord | None = None) -> None:
        with self._tx(audit) as s:
            row = s.scalars(select(TeamRow).where(TeamRow.slug == slug)).first()
            if row is None:
                raise NotFound(f"team {slug} not found")
            s.execute(delete(MembershipRow).where(MembershipRow.team_id == row.id))
            s.delete(row)

    def add_member(self, team_id: str, user_id: str, role: TeamRole,
                   audit: AuditRecord | None = None) -> Membership:
        with self._tx(audit) as s:
            team, user = s.get(TeamRow, team_id), s.get(UserRow, user_id)
            if team is None or user is None:
                raise NotFound("team or user not found")
            existing = s.get(MembershipRow, (team_id, user_id))
            if existing is not None:
                existing.role = str(role)
            else:
                s.add(MembershipRow(team_id=team_id, user_id=user_id, role=str(role)))
            return Membership(team=_team(team), user=_user(user), role=role)

    def create_member(self, team_id: str, email: str, password_hash: str, role: TeamRole,
                      audits: Sequence[AuditRecord] = ()) -> Membership:
        row = UserRow(id=str(uuid.uuid4()), email=email.lower(), password_hash=password_hash,
                      role=str(PlatformRole.user), created_at=utcnow())
        try:
            with self._tx() as s:
                team = s.get(TeamRow, team_id)
                if team is None:
                    raise NotFound("team not found")
                s.add(row)
                s.flush()  # the user row first: the membership refers to it
                s.add(MembershipRow(team_id=team_id, user_id=row.id, role=str(role)))
                for audit in audits:
                    self._append_audit(s, audit)
                return Membership(team=_team(team), user=_user(row), role=role)
        except IntegrityError as exc:
            raise AlreadyExists(f"user {email} already exists") from exc

    def remove_member(self, team_id: str, user_id: str, audit: AuditRecord | None = None) -> None:
        with self._tx(audit) as s:
            row = s.get(MembershipRow, (team_id, user_id))
            if row is None:
                raise NotFound("membership not found")
            s.delete(row)

    def list_members(self, team_id: str) -> list[Membership]:
        with self._tx() as s:
            rows = s.execute(
                select(MembershipRow, TeamRow, UserRow)
                .join(TeamRow, TeamRow.id == MembershipRow.team_id)
                .join(UserRow, UserRow.id == MembershipRow.user_id)
                .where(MembershipRow.team_id == team_id)
                .order_by(UserRow.email)
            ).all()
            return [Membership(team=_team(t), user=_user(u), role=TeamRole(m.role)) for m, t, u in rows]

    def memberships_of(self, user_id: str) -> list[Membership]:
        with self._tx() as s:
            rows = s.execute(
                select(MembershipRow, TeamRow, UserRow)
                .join(TeamRow, TeamRow.id == MembershipRow.team_id)
                .join(UserRow, UserRow.id == MembershipRow.user_id)
                .where(MembershipRow.user_id == user_id)
                .order_by(TeamRow.slug)
            ).all()
            return [Membership(team=_team(t), user=_user(u), role=TeamRole(m.role)) for m, t, u in rows]

    # API keys -----------------------------------------------------------------------------------
    def create_api_key(self, user_id: str, name: str, prefix: str, key_hash: str,
                       audit: AuditRecord | None = None) -> ApiKey:
        row = ApiKeyRow(id=str(uuid.uuid4()), user_id=user_id, name=name, prefix=prefix, key_hash=key_hash,
                        created_at=utcnow(), last_used_at=None)
        with self._tx(audit) as s:
            s.add(row)
        return _api_key(row)

    def find_api_key(self, key_hash: str) -> ApiKey | None:
        with self._tx() as s:
            row = s.scalars(select(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash)).first()
            return _api_key(row) if row else None

    def list_api_keys(self, user_id: str) -> list[ApiKey]:
        with self._tx() as s:
            query = select(ApiKeyRow).where(ApiKeyRow.user_id == user_id).order_by(ApiKeyRow.created_at)
            rows = s.scalars(query)
            return [_api_key(r) for r in rows]

    def delete_api_key(self, user_id: str, key_id: str, audit: AuditRecord | None = None) -> None:
        with self._tx(audit) as s:
            result = s.execute(delete(ApiKeyRow).where(ApiKeyRow.id == key_id, ApiKeyRow.user_id == user_id))
            if not result.rowcount:  # type: ignore[attr-defined]
                raise NotFound(f"API key {key_id} not found")

    def touch_api_key(self, key_id: str, at: datetime) -> None:
        with self._tx() as s:
            s.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=at))

    # refresh tokens -----------------------------------------------------------------------------
    def add_refresh_token(self, user_id: str, family_id: str, token_hash: str, expires_at: datetime) -> None:
        with self._tx() as s:
            s.add(RefreshTokenRow(id=str(uuid.uuid4()), user_id=user_id, family_id=family_id,
                                  token_hash=token_hash, created_at=utcnow(), expires_at=expires_at))

    def rotate_refresh_token(self, old_hash: str, new_hash: str, new_expires_at: datetime,
                             now: datetime) -> RotateResult:
        with self._tx() as s:
            row = s.scalars(
                select(RefreshTokenRow).where(RefreshTokenRow.token_hash == old_hash).with_for_update()
            ).first()
            if row is None:
                return RotateResult(RotateOutcome.unknown)
            token = _refresh(row)
            if token.used_at is not None or token.revoked_at is not None:
                self._revoke_family(s, token.family_id, now)
                return RotateResult(RotateOutcome.reused, token.user_id, token.family_id)
            if token.expires_at <= now:
                row.revoked_at = now
                return RotateResult(RotateOutcome.expired, token.user_id, token.family_id)
            row.used_at = now
            s.add(RefreshTokenRow(id=str(uuid.uuid4()), user_id=token.user_id, family_id=token.family_id,
                                  token_hash=new_hash, created_at=now, expires_at=new_expires_at))
            return RotateResult(RotateOutcome.rotated, token.user_id, token.family_id)

    def revoke_refresh_family_of(self, token_hash: str, now: datetime) -> bool:
        with self._tx() as s:
            row = s.scalars(select(RefreshTokenRow).where(RefreshTokenRow.token_hash == token_hash)).first()
            if row is None:
                return False
            self._revoke_family(s, row.family_id, now)
            return True

    @staticmethod
    def _revoke_family(s: Session, family_id: str, now: datetime) -> None:
        s.execute(update(RefreshTokenRow)
                  .where(RefreshTokenRow.family_id == family_id, RefreshTokenRow.revoked_at.is_(None))
                  .values(revoked_at=now))

    def revoke_user_refresh_tokens(self, user_id: str, now: datetime) -> None:
        with self._tx() as s:
            s.execute(update(RefreshTokenRow)
                      .where(RefreshTokenRow.user_id == user_id, RefreshTokenRow.revoked_at.is_(None))
                      .values(revoked_at=now))

    # OAuth records ------------------------------------------------------------------------------
    def put_oauth_item(self, key: str, data: dict[str, Any], expires_at: datetime | None) -> None:
        with self._tx() as s:
            s.merge(OAuthItemRow(key=key, data=data, created_at=utcnow(), expires_at=expires_at, used_at=None))
            if expires_at is not None:  # expired records go as new ones arrive: the table stays bounded
                s.execute(delete(OAuthItemRow).where(OAuthItemRow.expires_at < utcnow()))

    def get_oauth_item(self, key: str) -> OAuthItem | None:
        with self._tx() as s:
            row = s.get(OAuthItemRow, key)
            return _oauth_item(row) if row is not None else None

    def use_oauth_item(self, key: str, now: datetime) -> OAuthItem | None:
        with self._tx() as s:
            row = s.get(OAuthItemRow, key)
            if row is None:
                return None
            item = _oauth_item(row)
            # a conditional update, so two concurrent uses cannot both be the first (on either database)
            marked = s.execute(update(OAuthItemRow).where(OAuthItemRow.key == key, OAuthItemRow.used_at.is_(None))
                               .values(used_at=now).execution_options(synchronize_session=False))
            if getattr(marked, "rowcount", 0) == 0 and item.used_at is None:
                return OAuthItem(key=item.key, data=item.data, created_at=item.created_at,
                                 expires_at=item.expires_at, used_at=now)
            return item

    def delete_oauth_item(self, key: str) -> None:
        with self._tx() as s:
            s.execute(delete(OAuthItemRow).where(OAuthItemRow.key == key))

    # resources ----------------------------------------------------------------------------------
    def create_resource(self, resource: StoredResource, audit: AuditRecord | None = None) -> StoredResource:
        now = utcnow()
        row = ResourceRow(api_version=resource.api_version, kind=resource.kind, namespace=resource.namespace,
                          name=resource.name, uid=resource.uid or str(uuid.uuid4()), generation=1,
                          labels=dict(resource.labels), annotations=dict(resource.annotations),
                          spec=resource.spec, status=resource.status, created_at=now, updated_at=now)
        try:
            with self._tx(audit) as s:
                s.add(row)
        except IntegrityError as exc:
            what = f"{resource.kind} {resource.namespace}/{resource.name}"
            raise AlreadyExists(f"{what} already exists") from exc
        return _resource(row)

    def get_resource(self, kind: str, namespace: str, name: str) -> StoredResource | None:
        with self._tx() as s:
            row = self._find(s, kind, namespace, name)
            return _resource(row) if row else None

    def list_resources(self, kind: str, namespace: str | None = None) -> list[StoredResource]:
        with self._tx() as s:
            query = select(ResourceRow).where(ResourceRow.kind == kind)
            if namespace is not None:
                query = query.where(ResourceRow.namespace == namespace)
            rows = s.scalars(query.order_by(ResourceRow.namespace, ResourceRow.name))
            return [_resource(r) for r in rows]

    def update_resource(self, kind: str, namespace: str, name: str, *, spec: dict[str, Any] | None = None,
                        status: dict[str, Any] | None = None, labels: dict[str, str] | None = None,
                        annotations: dict[str, str] | None = None,
                        audit: AuditRecord | None = None) -> StoredResource:
        with self._tx(audit) as s:
            row = self._find(s, kind, namespace, name, lock=True)
            if row is None:
                raise NotFound(f"{kind} {namespace}/{name} not found")
            if spec is not None and spec != row.spec:
                row.spec = spec
                row.generation = row.generation + 1
            if status is not None:
                row.status = status
            if labels is not None:
                row.labels = dict(labels)
            if annotations is not None:
                row.annotations = dict(annotations)
            row.updated_at = utcnow()
            s.flush()
            return _resource(row)

    def delete_resource(self, kind: str, namespace: str, name: str,
                        audit: AuditRecord | None = None) -> StoredResource:
        with self._tx(audit) as s:
            row = self._find(s, kind, namespace, name, lock=True)
            if row is None:
                raise NotFound(f"{kind} {namespace}/{name} not found")
            gone = _resource(row)
            s.delete(row)
            return gone

    @staticmethod
    def _find(s: Session, kind: str, namespace: str, name: str, lock: bool = False) -> ResourceRow | None:
        query = select(ResourceRow).where(ResourceRow.kind == kind, ResourceRow.namespace == namespace,
                                          ResourceRow.name == name)
        if lock:
            query = query.with_for_update()
        return s.scalars(query).first()

    # audit --------------------------------------------------------------------------------------
    def append_audit(self, record: AuditRecord) -> None:
        with self._tx() as s:
            self._append_audit(s, record)

    def audit_since(self, since: datetime | None = None, *, after_id: int = 0, limit: int = 1000) -> list[AuditEntry]:
        """Entries after `after_id` (and at or after `since`), oldest first: the pages of `audit export`."""
        with self._tx() as s:
            query = select(AuditRow).where(AuditRow.id > after_id)
            if since is not None:
                query = query.where(AuditRow.at >= since)
            rows = s.scalars(query.order_by(AuditRow.id).limit(max(1, min(limit, 5000))))
            return [audit_entry(r) for r in rows]

    def list_audit(self, *, limit: int = 100, before_id: int | None = None, kind: str | None = None,
                   namespace: str | None = None, name: str | None = None) -> list[AuditEntry]:
        with self._tx() as s:
            query = select(AuditRow)
            if before_id is not None:
                query = query.where(AuditRow.id < before_id)
            if kind is not None:
                query = query.where(AuditRow.kind == kind)
            if namespace is not None:
                query = query.where(AuditRow.namespace == namespace)
            if name is not None:
                query = query.where(AuditRow.name == name)
            rows = s.scalars(query.order_by(AuditRow.id.desc()).limit(max(1, min(limit, 1000))))
            return [audit_entry(r) for r in rows]
