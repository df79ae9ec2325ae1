"""How a virtual server asks each member's policy, through the one evaluator (policy/evaluator.py).

Nothing is decided here: these helpers only hand the member's own document, the caller's identity as
that member knows it, and what the member's route observed (pins, rate limits) to `policy.evaluate`,
`evaluate_access` and `allowed_tools`, exactly as the member's own route does (gateway/pipeline.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from mcp_runtime.gateway.routes import BoundRoute
from mcp_runtime.policy import Decision, Identity, Reason, allowed_tools, evaluate, evaluate_access
from mcp_runtime.resources.virtual import qualified_session


def member_identity(identity: Identity, virtual_namespace: str) -> Identity:
    """The caller as a member's document knows it: the same human, agent and team, and the virtual
    server's session under its qualified name (the platform compiles it into every member's document,
    with its consented trust, expiry and revocation)."""
    session = identity.session_id
    return Identity(human_id=identity.human_id, agent_id=identity.agent_id, team_id=identity.team_id,
                    session_id=qualified_session(virtual_namespace, session) if session else None)


def access(route: BoundRoute, identity: Identity, now: datetime) -> Decision | None:
    """Whether the caller may talk to the member at all (None: the member has no policy loaded yet)."""
    doc = route.source.document
    return evaluate_access(doc, identity, now) if doc is not None else None


def call_decision(route: BoundRoute, identity: Identity, tool: str, arguments: dict[str, Any],
                  now: datetime) -> Decision | None:
    """The member's decision on one call, rate limits counted in the member's own buckets."""
    doc = route.source.document
    if doc is None:
        return None
    decision = evaluate(doc, identity, tool, now, arguments, observed=route.tools.observation(doc))
    return count_limits(route, decision, now)


def count_limits(route: BoundRoute, decision: Decision, now: datetime) -> Decision:
    """An allowed call (or one a person just approved) counted against the member's rate limits."""
    if decision.allowed and decision.limits:
        refused = route.limiter.take(decision.limits, now)
        if refused is not None:
            decision = replace(decision, allowed=False, reason=Reason.rate_limited, limits=(refused.limit,),
                               retry_after=refused.retry_after)
    return decision


def visible(route: BoundRoute, identity: Identity, now: datetime, tools: list[Any]) -> list[dict[str, Any]]:
    """The member's `tools/list` entries the caller may call (its document, its pins), as its own route
    would filter them."""
    doc = route.source.document
    if doc is None:
        return []
    allowed = set(allowed_tools(doc, identity, now))
    keep = route.tools.filter(doc, identity, now, allowed)
    return [t for t in tools if isinstance(t, dict) and keep(t)]
