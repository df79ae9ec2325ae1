"""`audit`: every mutation (who, what, when, before/after), for admins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

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
