"""The platform audit log as a hash chain (chain id `platform`), like each gateway's decision log.

Every entry gets the next sequence number, the previous entry's hash and its own: SHA-256 over its
canonical JSON (`entry_body`: every field but the hash, timestamps in microseconds UTC). Appending
takes the chain's head under a lock (PostgreSQL: a transaction-scoped advisory lock, so replicas of the
API append one at a time; SQLite: the database's single writer lock, taken by the insert before the
head is read), so the chain never forks. Entries written before the chain existed carry no hash and are
reported as unchained by `audit verify`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

PLATFORM_CHAIN = "platform"
_LOCK_KEY = 0x6D6370_6175  # pg_advisory_xact_lock key of the audit chain ("mcp" "au")


def timestamp_text(at: datetime) -> str:
    """The one text form a timestamp is hashed in, whichever database gave it back."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_body(*, id: int, at: datetime | str, actor: str, action: str, kind: str, namespace: str | None,
               name: str | None, before: Any, after: Any, seq: int | None, prev_hash: str | None) -> dict[str, Any]:
    """The fields an entry's hash covers, as exported (camelCase)."""
    return {"id": id, "at": at if isinstance(at, str) else timestamp_text(at), "actor": actor, "action": action,
            "kind": kind, "namespace": namespace, "name": name, "before": before, "after": after,
            "chainSeq": seq, "prevHash": prev_hash}


def body_hash(body: dict[str, Any]) -> str:
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def lock_statement(dialect: str) -> str | None:
    """SQL that serializes appends to the chain until the transaction ends (None: the database does)."""
    return f"SELECT pg_advisory_xact_lock({_LOCK_KEY})" if dialect == "postgresql" else None
