"""`GET /audit/export`: the platform audit log and the decision log as JSON Lines, for a SIEM.

One line each: a header (`type: export`), the platform's audit entries (`type: platform`, chain
`platform`, signed checkpoints among them as kind `Checkpoint`), the gateways' decision events
(`type: decision`), and last a closing checkpoint signed over the heads of every chain in the export
(`type: checkpoint`, `closing: true`), so a file cut short is caught by `audit verify`. Read in pages,
written as it goes: an export of any size takes bounded memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from mcp_runtime.platform.checkpoints import Heads, sign_checkpoint
from mcp_runtime.platform.core import Platform
from mcp_runtime.resources.common import utcnow
from mcp_runtime.sentinel.store import UsageFilter
from mcp_runtime.store import AuditEntry
from mcp_runtime.store.audit_chain import PLATFORM_CHAIN, entry_body, timestamp_text

PAGE = 1000
EXPORT_VERSION = 1


def platform_line(entry: AuditEntry) -> dict[str, Any]:
    body = entry_body(id=entry.id, at=entry.at, actor=entry.actor, action=entry.action, kind=entry.kind,
                      namespace=entry.namespace, name=entry.name, before=entry.before, after=entry.after,
                      seq=entry.seq, prev_hash=entry.prev_hash)
    return {"type": "platform", "chainID": PLATFORM_CHAIN, **body, "recordHash": entry.record_hash}


def export_lines(platform: Platform, since: datetime | None, now: datetime | None = None) -> Iterator[str]:
    """The export, line by line (each ends in a newline)."""
    started = now or utcnow()
    yield _line({"type": "export", "version": EXPORT_VERSION, "at": timestamp_text(started),
                 "since": timestamp_text(since) if since is not None else None})
    heads: Heads = {}
    after_id = 0
    while True:
        page = platform.store.audit_since(since, after_id=after_id, limit=PAGE)
        for entry in page:
            if entry.seq is not None and entry.record_hash is not None:
                heads[PLATFORM_CHAIN] = (entry.seq, entry.record_hash)
            yield _line(platform_line(entry))
        if len(page) < PAGE:
            break
        after_id = page[-1].id
    after_event: str | None = None
    flt = UsageFilter(since=since)
    while True:
        events = platform.events.events(flt, limit=PAGE, after_event_id=after_event)
        for event in events:
            chain, seq, digest = event.chain_id, event.chain_seq, event.record_hash
            if chain is not None and seq is not None and digest is not None \
                    and (chain not in heads or seq > heads[chain][0]):
                heads[chain] = (seq, digest)
            yield _line({"type": "decision", **event.model_dump(mode="json")})
        if len(events) < PAGE:
            break
        after_event = events[-1].event_id
    yield _line(sign_checkpoint(platform.keyring, heads, utcnow(), closing=True))


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n"
