"""The audit log's rows: appending one linked into the hash chain, and reading them back as entries."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from mcp_runtime.resources.common import utcnow
from mcp_runtime.store.audit_chain import body_hash, entry_body, lock_statement
from mcp_runtime.store.records import AuditEntry, AuditRecord
from mcp_runtime.store.sql.models import AuditRow


def append_audit_entry(session: Session, record: AuditRecord) -> AuditRow:
    """Insert an entry linked into the audit hash chain (store/audit_chain.py): the chain's lock first,
    the insert (its id), then the head before it, then the entry's own hash."""
    lock = lock_statement(session.get_bind().dialect.name)
    if lock is not None:
        session.execute(text(lock))
    row = AuditRow(at=utcnow(), actor=record.actor, action=record.action, kind=record.kind,
                   namespace=record.namespace, name=record.name, before=record.before, after=record.after)
    session.add(row)
    session.flush()
    head = session.execute(select(AuditRow.seq, AuditRow.record_hash).where(
        AuditRow.id < row.id, AuditRow.seq.is_not(None)).order_by(AuditRow.id.desc()).limit(1)).first()
    row.seq = 0 if head is None or head[0] is None else int(head[0]) + 1
    row.prev_hash = None if head is None else head[1]
    row.record_hash = body_hash(entry_body(
        id=row.id, at=row.at, actor=row.actor, action=row.action, kind=row.kind, namespace=row.namespace,
        name=row.name, before=json_value(row.before), after=json_value(row.after), seq=row.seq,
        prev_hash=row.prev_hash))
    return row


def audit_entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(id=row.id, at=_aware(row.at) or utcnow(), actor=row.actor, action=row.action,
                      kind=row.kind, namespace=row.namespace, name=row.name, before=row.before,
                      after=row.after, seq=row.seq, prev_hash=row.prev_hash, record_hash=row.record_hash)


def json_value(value: Any) -> Any:
    """A value as the JSON column gives it back (tuples as lists, ...), so the hash covers what is stored."""
    return json.loads(json.dumps(value)) if value is not None else None


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
