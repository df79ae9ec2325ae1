"""Quota use as the analytics show it: calls today against each daily quota, per bucket key.

The gateways count quotas in memory (gateway/limits.py, one count per replica); the platform answers
from the decision log instead, so the figure covers every replica and survives restarts: the allowed
calls of the UTC day the quota counts in, grouped by the quota's `per` keys (agent, human, team, tool,
server), and the calls refused `rate_limited` for the same key. A grant's and a tool rule's quota
count the calls that grant decided (`matched_grant`), as the gateway does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from mcp_runtime.policy import PolicyDocument
from mcp_runtime.policy.document import PolicyRateLimit
from mcp_runtime.sentinel.store import EventStore, ToolUsage, UsageFilter

MAX_ROWS = 1000


def quota_rows(events: EventStore, documents: Iterable[PolicyDocument], flt: UsageFilter,
               now: datetime | None = None) -> list[dict[str, Any]]:
    """One row per (server, quota, key) with calls today, sorted by the share of the quota used."""
    now = now or datetime.now(UTC)
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    today = replace(flt, since=midnight, until=None, decision=None, reason=None)
    rows: list[dict[str, Any]] = []
    for doc in documents:
        for scope, grant, tool, limit in _quotas(doc):
            scoped = replace(today, server=doc.server.name, namespace=doc.server.namespace, grant=grant, tool=tool)
            used = _by_key(events.by_tool(replace(scoped, decision="allow"), MAX_ROWS), limit)
            limited = _by_key(events.by_tool(replace(scoped, reason="rate_limited"), MAX_ROWS), limit)
            quota = limit.calls_per_day or 0
            for key in sorted(set(used) | set(limited)):
                calls = used.get(key, 0)
                rows.append({"server": doc.server.name, "namespace": doc.server.namespace, "limit": scope,
                             "per": ",".join(limit.per) or "-", "key": ",".join(key) or "(all)",
                             "callsToday": calls, "quota": quota, "remaining": max(0, quota - calls),
                             "usedPercent": round(100.0 * calls / quota, 1) if quota else 0.0,
                             "rateLimitedToday": limited.get(key, 0)})
    rows.sort(key=lambda r: (-r["usedPercent"], r["server"], r["limit"], r["key"]))
    return rows[:MAX_ROWS]


def _quotas(doc: PolicyDocument) -> Iterable[tuple[str, str | None, str | None, PolicyRateLimit]]:
    """(scope, grant, tool, limit) of every daily quota in the document, named as the gateway names them."""
    if doc.rate_limit is not None and doc.rate_limit.calls_per_day is not None:
        yield "server", None, None, doc.rate_limit
    for grant in doc.grants:
        if grant.rate_limit is not None and grant.rate_limit.calls_per_day is not None:
            yield f"grant/{grant.name}", grant.name, None, grant.rate_limit
        for rule in grant.tool_rules:
            if rule.rate_limit is not None and rule.rate_limit.calls_per_day is not None:
                yield f"grant/{grant.name}/tool/{rule.name}", grant.name, rule.name, rule.rate_limit


def _by_key(rows: Iterable[ToolUsage], limit: PolicyRateLimit) -> dict[tuple[str, ...], int]:
    counts: dict[tuple[str, ...], int] = {}
    for row in rows:
        values = {"server": row.server, "tool": row.tool, "team": row.team_id or "", "human": row.human_id or "",
                  "agent": row.agent_id or ""}
        key = tuple(values[str(k)] for k in limit.per)
        counts[key] = counts.get(key, 0) + row.calls
    return counts
