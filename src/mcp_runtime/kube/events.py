"""Kubernetes Events as rows (`sentinel events`, `server status --use-kube`): newest first, bounded."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from mcp_runtime.kube.client import KubeClient

Manifest = dict[str, Any]
MAX_EVENTS = 500


def _when(event: Manifest) -> str:
    """When it last happened, as `2026-01-31T12:00:00Z` (events.k8s.io times carry microseconds; sorting
    needs one format)."""
    raw = str(event.get("lastTimestamp") or (event.get("series") or {}).get("lastObservedTime") or
              event.get("eventTime") or event["metadata"].get("creationTimestamp") or "")
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return raw
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_row(event: Manifest) -> dict[str, Any]:
    involved = event.get("involvedObject") or {}
    return {"lastSeen": _when(event), "type": event.get("type") or "Normal", "reason": event.get("reason") or "",
            "object": f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
            "namespace": event["metadata"].get("namespace"), "count": int(event.get("count") or 1),
            "message": str(event.get("message") or "").strip()}


def list_events(client: KubeClient, namespace: str | None, *, name_prefixes: Iterable[str] = (),
                warnings_only: bool = False, limit: int = 50) -> list[dict[str, Any]]:
    """Events in `namespace` (all when None) about objects whose name starts with one of `name_prefixes`
    (any object when empty), newest first, at most `limit` (capped at MAX_EVENTS)."""
    prefixes = tuple(name_prefixes)
    selector = "type=Warning" if warnings_only else None
    rows = [event_row(e) for e in client.list("Event", namespace, field_selector=selector)
            if not prefixes or str((e.get("involvedObject") or {}).get("name", "")).startswith(prefixes)]
    rows.sort(key=lambda r: r["lastSeen"], reverse=True)
    return rows[:max(0, min(limit, MAX_EVENTS))]
