"""Reviewing tool definitions: what the gateway saw, how it stands against the pins, and approving it.

The gateway reports every change in how a server's tools stand against their pins (`record`): the
platform keeps the definitions it saw in `status.observedTools`, sets the `ToolsPinned` condition
(False with what changed), and writes an audit entry. `rows` is what `server tools diff` and the
dashboard show; `approve` (team owners and admins) copies the seen definitions into the server's pins
and recompiles the policy, which is pushed to the gateway at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import yaml

from mcp_runtime.platform.errors import ApiError
from mcp_runtime.platform.policies import PolicyCompiler
from mcp_runtime.platform.principal import Principal
from mcp_runtime.platform.repository import ResourceRepository
from mcp_runtime.platform.servers import ServerService
from mcp_runtime.platform.visibility import require_manage
from mcp_runtime.policy import compile_policy
from mcp_runtime.policy.pinning import PinState, drift, pin_state
from mcp_runtime.resources import Condition, ConditionStatus, MCPServer, MCPServerStatus
from mcp_runtime.resources.pinning import PinMode, ToolPin
from mcp_runtime.resources.server import ObservedTool

CONDITION = "ToolsPinned"
_WORDS = {PinState.changed: "definition changed", PinState.not_pinned: "not pinned",
          PinState.unverified: "pinned but no longer listed"}


def tools_pinned(server: MCPServer, now: datetime) -> Condition | None:
    """The `ToolsPinned` condition for what the gateway saw (None: it has seen nothing yet)."""
    observed = server.status.observed_tools if server.status else None
    if observed is None:
        return None
    doc = compile_policy(server, [], [])
    if server.spec.pinning.mode == PinMode.off:
        status, reason, message = ConditionStatus.unknown, "PinningOff", "tool definitions are not checked"
    elif not doc.has_pins:
        status, reason = ConditionStatus.unknown, "NotReviewed"
        message = (f"no tool is pinned yet: review with 'mcp-runtime server tools diff {server.name}' and pin "
                   f"with 'mcp-runtime server tools approve {server.name}'")
    else:
        found = drift(doc, {t.name: t.digest for t in observed})
        if found:
            status, reason = ConditionStatus.false, "ToolsChanged"
            message = "; ".join(f"{d.name}: {_WORDS[d.state]}" for d in found)
        else:
            status, reason, message = ConditionStatus.true, "Pinned", "every listed tool is the reviewed one"
    return Condition(type=CONDITION, status=status, reason=reason, message=message[:1024],
                     last_transition_time=now, observed_generation=server.metadata.generation)


def with_condition(status: MCPServerStatus, condition: Condition | None) -> bool:
    """Put `condition` in `status` (replacing one of its type); True when its status, reason or message moved."""
    if condition is None:
        return False
    old = next((c for c in status.conditions if c.type == condition.type), None)
    if old is not None and (old.status, old.reason, old.message) == (condition.status, condition.reason,
                                                                        condition.message):
        return False
    status.conditions = [c for c in status.conditions if c.type != condition.type] + [condition]
    return True


def definition_lines(definition: Mapping[str, Any] | None) -> list[str]:
    """A definition as YAML lines (sorted keys, long text wrapped), so a diff points at what changed."""
    if not definition:
        return []
    return yaml.safe_dump(dict(definition), sort_keys=True, width=72, allow_unicode=True).splitlines()


def definition_diff(name: str, pinned: Mapping[str, Any] | None, seen: Mapping[str, Any] | None) -> list[str]:
    """The reviewed definition against the one the server lists now, as a unified diff (what `server tools
    diff` prints and the dashboard shows); a tool never pinned shows all of its definition as added."""
    return list(difflib.unified_diff(definition_lines(pinned), definition_lines(seen),
                                     fromfile=f"{name} (pinned)" if pinned else f"{name} (never pinned)",
                                     tofile=f"{name} (server now)", lineterm=""))


class ToolReview:
    def __init__(self, repo: ResourceRepository, servers: ServerService, policies: PolicyCompiler) -> None:
        self.repo, self.servers, self.policies = repo, servers, policies

    def record(self, namespace: str, name: str, tools: dict[str, dict[str, Any]]) -> MCPServer | None:
        """The gateway's report: the tools as it last saw them. Stored only when something moved."""
        server = self.repo.get(MCPServer, namespace, name)
        if server is None:
            return None
        observed = [ObservedTool(name=n, digest=str(t["digest"]), definition=dict(t.get("definition") or {}))
                    for n, t in sorted(tools.items())]
        status = server.status or MCPServerStatus()
        seen_changed = status.observed_tools != observed
        status.observed_tools = observed
        server.status = status
        moved = with_condition(status, tools_pinned(server, datetime.now(UTC)))
        if not (seen_changed or moved):
            return server
        drifted = any(c.type == CONDITION and c.status == ConditionStatus.false for c in status.conditions)
        return self.repo.replace(server, "gateway", action="tools_drift" if moved and drifted else "", spec=False)

    def rows(self, caller: Principal, namespace: str, name: str) -> dict[str, Any]:
        """Each tool with its pinned and seen definitions and where it stands (for diffs)."""
        server = self.servers.get(caller, namespace, name)
        observed = {t.name: t for t in (server.status.observed_tools or [])} if server.status else {}
        doc = compile_policy(server, [], [])
        names = sorted({t.name for t in server.spec.tools} | set(observed))
        rows = []
        for tool_name in names:
            spec = server.spec.tool(tool_name)
            seen = observed.get(tool_name)
            state = pin_state(doc.tool(tool_name), seen.digest if seen else None)
            rows.append({"name": tool_name, "state": str(state), "declared": spec is not None,
                         "pinnedDigest": spec.pin.digest if spec and spec.pin else None,
                         "seenDigest": seen.digest if seen else None,
                         "pinned": spec.pin.definition if spec and spec.pin else None,
                         "seen": seen.definition if seen else None,
                         "diff": definition_diff(tool_name, spec.pin.definition if spec and spec.pin else None,
                                                 seen.definition if seen else None)
                         if state in (PinState.changed, PinState.not_pinned) else []})
        condition = next((c for c in (server.status.conditions if server.status else []) if c.type == CONDITION),
                         None)
        return {"name": name, "namespace": namespace, "mode": str(server.spec.pinning.mode),
                "seen": server.status is not None and server.status.observed_tools is not None,
                "condition": condition.to_wire() if condition else None, "tools": rows}

    def approve(self, caller: Principal, namespace: str, name: str, tools: list[str] | None) -> dict[str, Any]:
        """Pin the definitions the gateway saw (all that differ, or the named tools) and push the policy."""
        server = self.servers.get(caller, namespace, name)
        require_manage(caller, namespace, "approve tool definitions")
        before = server.model_copy(deep=True)
        observed = {t.name: t for t in (server.status.observed_tools or [])} if server.status else {}
        if not observed:
            raise ApiError(409, "tools_not_seen",
                           f"the gateway has not listed the tools of {name} yet: start the server (or list its "
                           "tools through the gateway) and try again")
        if tools:
            unknown = [t for t in tools if t not in observed]
            if unknown:
                raise ApiError(422, "tool_not_seen",
                               f"{', '.join(unknown)} not in what {name} lists (it lists: "
                               f"{', '.join(sorted(observed))}); check the tool name")
            targets = list(dict.fromkeys(tools))
        else:  # every change; tools the metadata does not declare stay hidden (tool_side_effect_unknown)
            targets = [n for n, t in observed.items() if (spec := server.spec.tool(n)) is not None
                       and (spec.pin is None or spec.pin.digest != t.digest)]
        undeclared = [t for t in targets if server.spec.tool(t) is None]
        if undeclared:
            raise ApiError(422, "tool_not_declared",
                           f"{', '.join(undeclared)} is not declared in {name}'s metadata, so its side effect is "
                           "unknown: add it (server init --from-server --force, or edit servers.yaml) and "
                           "redeploy, then approve")
        approved = []
        for tool_name in targets:
            seen = observed[tool_name]
            pin = ToolPin.of(seen.definition)
            if pin.digest != seen.digest:
                raise ApiError(409, "definition_mismatch",
                               f"the definition seen for {tool_name} does not match its digest; list the tools "
                               "through the gateway again and retry")
            spec = server.spec.tool(tool_name)
            assert spec is not None
            if spec.pin != pin:
                spec.pin = pin
                approved.append(tool_name)
        if approved:
            assert server.status is not None
            with_condition(server.status, tools_pinned(server, datetime.now(UTC)))
            server = self.repo.replace(server, caller.email, "approve_tools", before=before)
        document = self.policies.recompile(namespace, name)
        return {"name": name, "namespace": namespace, "approved": approved,
                "policyRevision": document.revision if document else None}
