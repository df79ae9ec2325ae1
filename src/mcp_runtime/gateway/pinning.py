"""What a route has seen of its server's tool definitions, and the drift it reports.

The request path feeds every `tools/list` answer through `ToolWatch.filter` (via `visible_tools`): each
tool's digest is computed here, the evaluator judges it against its pin (hidden when it may not be
shown), and the digest is remembered so a later `tools/call` is judged on what the server last said
(`ToolWatch.observed`, handed to the evaluator in `authorize`). When the set of drifted tools changes,
the route's drift is reported once: an analytics event per drifted tool, and the report to whoever
listens (`Gateway.drift_listener`: in `mcp-runtime up`, the platform's `ToolsPinned` condition).

When a policy with pins loads, the gateway lists the server's tools itself (`probe.py`), so drift is
found before any client asks and calls are judged even if no client listed first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mcp_runtime.policy import Identity, PolicyDocument, evaluate
from mcp_runtime.policy.pinning import PinState, ToolDrift, drift, pinning_active
from mcp_runtime.resources.pinning import PinMode, tool_definition, tool_digest

log = logging.getLogger("mcp_runtime.gateway.pinning")

MAX_WATCHED_TOOLS = 10_000
"""A server listing more tools than this is not remembered past the limit (bounded memory)."""


@dataclass(frozen=True)
class DriftReport:
    """One server's tool definitions as the gateway saw them, and how they stand against the pins."""

    namespace: str
    server: str
    mode: PinMode
    policy_revision: str
    tools: dict[str, dict[str, Any]]
    """Tool name -> `{"digest": ..., "definition": {...}}` as last seen."""
    drift: list[ToolDrift] = field(default_factory=list)


DriftListener = Callable[[DriftReport], None]


class ToolWatch:
    """Per route: the last seen digest and definition of each tool; reports drift when it changes."""

    def __init__(self) -> None:
        self.observed: dict[str, str] = {}
        self.definitions: dict[str, dict[str, Any]] = {}
        self.probed_pins: tuple[tuple[str, str | None], ...] | None = None
        self._last: tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str, str | None], ...]] | None = None

    # -- what the request path calls -----------------------------------------------------------------
    def observation(self, doc: PolicyDocument) -> Mapping[str, str] | None:
        """What `authorize` hands the evaluator: the digests seen, or None when nothing is pinned."""
        return self.observed if pinning_active(doc) else None

    def filter(self, doc: PolicyDocument, identity: Identity | None, now: datetime,
               allowed: set[str]) -> Callable[[dict[str, Any]], bool]:
        """The `tools/list` filter: `allowed` are the tools the evaluator lets the caller call (pins
        aside); with pins, each entry's own definition is judged too, and remembered."""
        if not pinning_active(doc):
            return lambda tool: tool.get("name") in allowed

        def visible(tool: dict[str, Any]) -> bool:
            name = tool.get("name")
            if not isinstance(name, str):
                return False
            digest = self.saw(tool)
            if name not in allowed:
                return False
            return evaluate(doc, identity, name, now, observed={name: digest}).may_call

        return visible

    def saw(self, tool: Mapping[str, Any]) -> str:
        """Remember one tool definition from a `tools/list` answer; returns its digest."""
        name = str(tool.get("name"))
        digest = tool_digest(tool)
        if name in self.observed or len(self.observed) < MAX_WATCHED_TOOLS:
            self.observed[name] = digest
            self.definitions[name] = tool_definition(tool)
        return digest

    def replace(self, tools: Sequence[Mapping[str, Any]]) -> None:
        """The server's complete list (the gateway's own listing): tools it no longer lists are forgotten."""
        self.observed.clear()
        self.definitions.clear()
        for tool in tools[:MAX_WATCHED_TOOLS]:
            self.saw(tool)

    # -- reporting -----------------------------------------------------------------------------------
    def report(self, doc: PolicyDocument, namespace: str) -> DriftReport | None:
        """A report when what the server lists, or how it stands against the pins, changed since the last
        one (else None): a grant or session change alone reports nothing."""
        if not self.observed and self._last is None:
            return None
        found = drift(doc, self.observed) if doc.pin_mode != PinMode.off else []
        key = (tuple(sorted(self.observed.items())), tuple((d.name, str(d.state), d.pinned) for d in found))
        if key == self._last:
            return None
        self._last = key
        tools = {name: {"digest": digest, "definition": self.definitions.get(name, {})}
                 for name, digest in sorted(self.observed.items())}
        return DriftReport(namespace, doc.server.name, doc.pin_mode, doc.revision, tools, found)


def drift_events(report: DriftReport, now: datetime) -> list[Any]:
    """One analytics event per drifted tool (`rpc_method` `tools/list`, the pinning reason; allowed in
    warn mode, denied in enforce mode), so drift shows in analytics next to the calls it blocked."""
    from mcp_runtime.sentinel.events import EVENT_VERSION, AnalyticsEvent

    reasons = {PinState.changed: "tool_definition_changed", PinState.not_pinned: "tool_not_pinned",
               PinState.unverified: "tool_definition_unverified"}
    allowed = report.mode != PinMode.enforce
    return [AnalyticsEvent(timestamp=now, server=report.server, namespace=report.namespace or "default",
                           rpc_method="tools/list", tool_name=d.name[:128], decision="allow" if allowed else "deny",
                           reason=reasons[d.state], status=200, latency_ms=0.0,
                           policy_revision=report.policy_revision[:128], event_version=EVENT_VERSION)
            for d in report.drift]
