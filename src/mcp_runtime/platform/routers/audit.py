"""`audit`: every mutation (who, what, when, before/after), for admins; and the export for a SIEM
(the platform audit log, the decision log and signed checkpoints as JSON Lines, `audit_export.py`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from mcp_runtime.platform.analytics import parse_time
from mcp_runtime.platform.audit_export import export_lines
from mcp_runtime.platform.deps import AdminDep, PlatformDep

router = APIRouter(tags=["audit"])


MAX_ROW_ID = 2**31 - 1
"""The largest audit id (a 32-bit INTEGER column in PostgreSQL): a larger `before` is a 422, not a database
overflow answered as a 500 (fuzz finding)."""


@router.get("/audit")
def list_audit(_: AdminDep, platform: PlatformDep, limit: int = Query(100, ge=1, le=1000),
               before: int | None = Query(None, ge=1, le=MAX_ROW_ID), kind: str | None = Query(None, max_length=63)
               ) -> dict[str, Any]:
    entries = platform.store.list_audit(limit=limit, before_id=before, kind=kind)
    return {"items": [
        {"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action, "kind": e.kind,
         "namespace": e.namespace, "name": e.name, "before": e.before, "after": e.after}
        for e in entries
    ]}


@router.get("/audit/export", response_class=StreamingResponse)
def export_audit(_: AdminDep, platform: PlatformDep,
                 since: str | None = Query(None, max_length=64, description="15m, 24h, 7d or ISO 8601")
                 ) -> StreamingResponse:
    """Everything a SIEM needs to keep and verify (`mcp-runtime audit verify`), streamed as JSON Lines."""
    start = parse_time(since)
    return StreamingResponse(export_lines(platform, start), media_type="application/x-ndjson")
