"""One analytics event per audited JSON-RPC request, handed to the Sentinel emitter.

`Emitter.emit` only queues (the network and the spool are handled by its own task), so auditing adds
no I/O to a request. Values a client controls (tool names, methods) are clipped to the event schema's
bounds so a hostile request can never make the event invalid and lose the audit record.

Each event is linked into this process's hash chain (sentinel/chain.py), so a changed, removed or
reordered record is detected by `mcp-runtime analytics verify`. Each event also carries what a later
replay of the decision needs (`access simulate`, see docs/governance.md): the time the gateway decided
at, the state and consented trust of the caller's session in the policy of that moment, and a digest of
the tool call's arguments.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mcp_runtime.policy import canonical_json, session_state

if TYPE_CHECKING:
    from mcp_runtime.gateway.auth import Authenticated
    from mcp_runtime.policy import Decision, PolicyDocument
    from mcp_runtime.sentinel.emitter import Emitter

log = logging.getLogger("mcp_runtime.gateway.audit")

_NAME = 253
_SHORT = 128


def _clip(value: str | None, limit: int) -> str | None:
    if not value:
        return None
    return value if len(value) <= limit else value[:limit]


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None


class Auditor:
    """Builds events for one server's requests and queues them on the emitter."""

    def __init__(self, emitter: Emitter | None) -> None:
        self.emitter = emitter
        if emitter is not None:
            from mcp_runtime.sentinel.chain import EventChain
            from mcp_runtime.sentinel.events import EVENT_VERSION, AnalyticsEvent

            self._event = AnalyticsEvent
            self._version = EVENT_VERSION
            self.chain = EventChain()
            """This process's hash chain: every event links to the one before (sentinel/chain.py)."""

    @property
    def enabled(self) -> bool:
        return self.emitter is not None

    def record(
        self,
        *,
        server: str,
        namespace: str,
        doc: PolicyDocument | None,
        caller: Authenticated | None,
        rpc_method: str,
        tool: str | None,
        decision: Decision | None,
        denied_reason: str | None,
        status: int,
        latency_ms: float,
        bytes_in: int,
        bytes_out: int,
        trace_id: str | None,
        now: datetime | None = None,
        arguments: Any = None,
    ) -> None:
        """Queue one event. `decision` is None when the request failed before policy (bad token).

        `now` is the time the request was decided at (the gateway's clock); `arguments` the tool call's
        `params.arguments` (None when absent)."""
        if self.emitter is None:
            return
        claims = caller.claims if caller is not None else None
        when = now or datetime.now(UTC)
        state, session = (None, None)
        if doc is not None and caller is not None:
            state, session = session_state(doc, caller.identity, when)
        try:
            event = self._event(
                timestamp=when,
                trace_id=trace_id,
                server=_clip(server, _NAME) or "unknown",
                namespace=_clip(namespace, _NAME) or "default",
                team_id=_clip(doc.server.team_id if doc is not None else None, _NAME),
                human_id=_clip(claims.human_id if claims else None, _NAME),
                agent_id=_clip(claims.agent_id if claims else None, _NAME),
                subject_team_id=_clip(claims.team_id if claims else None, _NAME),
                session_id=_clip(claims.session_id if claims else None, _NAME),
                client_id=_clip(claims.client_id if claims else None, _NAME),
                rpc_method=_clip(rpc_method, _SHORT) or "unknown",
                tool_name=_clip(tool, _SHORT),
                decision="allow" if decision is not None and decision.allowed else "deny",
                reason=_clip(str(decision.reason) if decision is not None else denied_reason, _SHORT),
                matched_grant=_clip(decision.matched_grant if decision else None, _NAME),
                required_trust=_text(decision.required_trust) if decision else None,
                effective_trust=_text(decision.effective_trust) if decision else None,
                side_effect=_text(decision.side_effect) if decision else None,
                status=status if 100 <= status <= 599 else 500,
                latency_ms=max(latency_ms, 0.0),
                bytes_in=bytes_in,
                bytes_out=bytes_out,
                policy_revision=_clip(doc.revision if doc is not None else None, _SHORT),
                event_version=self._version,
                session_state=str(state) if state is not None else None,
                consented_trust=str(session.consented_trust) if session is not None else None,
                arguments_digest=arguments_digest(arguments) if tool is not None else None,
            )
            event = self.chain.link(event)
        except Exception:  # an audit record must never break the request it describes
            log.exception("could not build the analytics event for %s %s", server, rpc_method)
            return
        self.emitter.emit(event)


def arguments_digest(arguments: Any) -> str | None:
    """SHA-256 (hex) of a tool call's arguments as canonical JSON; absent arguments count as `{}`.
    None when they cannot be serialized (they came from JSON, so practically never)."""
    try:
        return hashlib.sha256(canonical_json({} if arguments is None else arguments)).hexdigest()
    except (TypeError, ValueError):
        return None


def tool_arguments(raw: Any) -> Any:
    """`params.arguments` of a JSON-RPC message (None when absent)."""
    params = raw.get("params") if isinstance(raw, dict) else None
    return params.get("arguments") if isinstance(params, dict) else None


def call_arguments(raw: Any) -> dict[str, Any]:
    """The arguments an argument condition sees: `params.arguments` when it is an object, else none."""
    arguments = tool_arguments(raw)
    return arguments if isinstance(arguments, dict) else {}


def trace_id_from(traceparent: bytes | None) -> str | None:
    """The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<flags>`), if well formed."""
    if traceparent is None:
        return None
    parts = traceparent.split(b"-")
    if len(parts) == 4 and len(parts[1]) == 32:
        try:
            int(parts[1], 16)
        except ValueError:
            return None
        return parts[1].decode("ascii")
    return None
