"""Plain records the store hands out: no ORM objects escape the store, so callers never touch a session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from mcp_runtime.resources.common import GROUP_VERSION as API_VERSION


class PlatformRole(StrEnum):
    admin = "admin"
    user = "user"


class TeamRole(StrEnum):
    owner = "owner"
    member = "member"


@dataclass(frozen=True)
class User:
    id: str
    email: str
    password_hash: str
    role: PlatformRole
    created_at: datetime


@dataclass(frozen=True)
class Team:
    id: str
    slug: str
    name: str
    namespace: str
    created_at: datetime


@dataclass(frozen=True)
class Membership:
    team: Team
    user: User
    role: TeamRole


@dataclass(frozen=True)
class ApiKey:
    id: str
    user_id: str
    name: str
    prefix: str
    key_hash: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class RefreshToken:
    id: str
    user_id: str
    family_id: str
    token_hash: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


class RotateOutcome(StrEnum):
    rotated = "rotated"
    unknown = "unknown"
    expired = "expired"
    reused = "reused"  # an already used or revoked token: the family is revoked


@dataclass(frozen=True)
class RotateResult:
    outcome: RotateOutcome
    user_id: str | None = None
    family_id: str | None = None


@dataclass(frozen=True)
class StoredResource:
    """One Kubernetes-style resource as stored: the columns the store indexes plus the JSON it keeps."""

    kind: str
    namespace: str
    name: str
    uid: str
    generation: int
    spec: dict[str, Any]
    status: dict[str, Any] | None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    api_version: str = API_VERSION
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def to_document(self) -> dict[str, Any]:
        """The camelCase Kubernetes JSON that `mcp_runtime.resources.load_resource` accepts."""
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
            "generation": self.generation,
        }
        if self.created_at is not None:
            metadata["creationTimestamp"] = self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.labels:
            metadata["labels"] = dict(self.labels)
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        doc: dict[str, Any] = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": metadata,
            "spec": self.spec,
        }
        if self.status:
            doc["status"] = self.status
        return doc


@dataclass(frozen=True)
class AuditRecord:
    """What a mutation writes to the audit log, in the same transaction as the change."""

    actor: str
    action: str
    kind: str
    namespace: str | None = None
    name: str | None = None
    before: Any = None
    after: Any = None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    kind: str
    namespace: str | None
    name: str | None
    before: Any
    after: Any
    seq: int | None = None  # the hash chain (store/audit_chain.py); None on entries older than the chain
    prev_hash: str | None = None
    record_hash: str | None = None


@dataclass(frozen=True)
class OAuthItem:
    """One OAuth record (a client, a pending authorization, a code, a grant), as JSON under a key."""

    key: str
    data: dict[str, Any]
    created_at: datetime
    expires_at: datetime | None = None
    used_at: datetime | None = None


class StoreError(Exception):
    """Base of the store's own failures."""


class AlreadyExists(StoreError):
    """A unique key (email, slug, resource name, ...) is taken."""


class NotFound(StoreError):
    """The row to change does not exist."""


class StoreUnavailable(StoreError):
    """The database cannot be reached right now (restarting, down, out of connections); nothing was
    written by the call that raised it. The API answers 503 with Retry-After: try again shortly."""
