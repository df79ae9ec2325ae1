"""Control-plane store: one interface (`ControlPlaneStore`), a SQL implementation (`SqlStore`)."""

from mcp_runtime.store.interface import ControlPlaneStore
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
    StoreError,
    StoreUnavailable,
    Team,
    TeamRole,
    User,
)

__all__ = [
    "AlreadyExists", "ApiKey", "AuditEntry", "AuditRecord", "ControlPlaneStore", "Membership", "NotFound", "OAuthItem",
    "PlatformRole", "RefreshToken", "RotateOutcome", "RotateResult", "StoreError", "StoreUnavailable", "StoredResource",
    "Team",
    "TeamRole", "User",
]
