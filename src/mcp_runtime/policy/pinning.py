"""Judging a tool's definition against its pin: the pure half of tool-definition pinning.

The gateway computes the digest of each tool definition it sees (`resources.pinning.tool_digest`) and
hands the evaluator what it saw; the evaluator asks `pin_state` here and turns a mismatch into a denial
(`tool_definition_changed`, `tool_not_pinned`, `tool_definition_unverified`) in enforce mode. `drift`
lists what differs, for the gateway's report to the platform (the `ToolsPinned` condition).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from mcp_runtime.policy.document import PolicyDocument, PolicyTool
from mcp_runtime.resources.pinning import PinMode

Observed = Mapping[str, str]
"""Tool name -> digest of its definition, as the gateway saw it in a `tools/list` answer."""


class PinState(StrEnum):
    pinned = "pinned"
    """The definition seen is the reviewed one."""
    changed = "changed"
    """The definition seen differs from its pin."""
    not_pinned = "not_pinned"
    """The tool has no pin (new, or never reviewed)."""
    unverified = "unverified"
    """The tool has a pin but the gateway has not seen its definition (not in any `tools/list` answer)."""


def pinning_active(doc: PolicyDocument) -> bool:
    """Definitions are checked once the server has at least one pin, unless its mode is off."""
    return doc.pin_mode != PinMode.off and doc.has_pins


def pin_state(tool: PolicyTool | None, seen: str | None) -> PinState:
    """How `seen` (a digest, None: not seen) stands against the pin of `tool` (None: not declared)."""
    pin = tool.pin if tool is not None else None
    if pin is None:
        return PinState.not_pinned
    if seen is None:
        return PinState.unverified
    return PinState.pinned if seen == pin else PinState.changed


@dataclass(frozen=True, slots=True)
class ToolDrift:
    """One tool whose definition is not the reviewed one."""

    name: str
    state: PinState
    pinned: str | None
    seen: str | None


def drift(doc: PolicyDocument, observed: Observed) -> list[ToolDrift]:
    """Every tool of `observed` that is changed or not pinned, and every pinned tool the server no
    longer lists (state unverified), by name. Empty when nothing drifted (or nothing is pinned)."""
    if not doc.has_pins:
        return []
    found: list[ToolDrift] = []
    for name in sorted(set(observed) | {t.name for t in doc.tools if t.pin}):
        tool = doc.tool(name)
        state = pin_state(tool, observed.get(name))
        if state != PinState.pinned:
            found.append(ToolDrift(name, state, tool.pin if tool else None, observed.get(name)))
    return found
