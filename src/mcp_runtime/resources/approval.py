"""Human approval of a tool call: who must approve, and how long a call may wait for it.

A tool's metadata (`requiresApproval`, `approver`) or a grant's tool rule (`approval`) asks for it; a
`destructive` tool asks for it unless its metadata says `requiresApproval: false`. The evaluator turns
that into a decision (`approval_required`, with the approver); the gateway asks the person (MCP
elicitation, when the approver is the caller and the client can) or holds the call as a pending
approval that the server's owners (or the caller) approve in the CLI or the dashboard.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any

from mcp_runtime.resources.common import SideEffect

DEFAULT_APPROVAL_TIMEOUT = "2m"
MAX_APPROVAL_TIMEOUT_SECONDS = 3600.0
"""A call never waits longer than an hour, whatever the server says: it holds a connection open."""


class Approver(StrEnum):
    """Who may approve. `caller`: the person behind the call (asked by elicitation when the client can,
    else out of band; the server's owners may approve too). `owners`: the server's team owners (or an
    admin), out of band only: the caller cannot approve their own call."""

    caller = "caller"
    owners = "owners"


_STRENGTH = {Approver.caller: 1, Approver.owners: 2}


def stricter(a: Approver | None, b: Approver | None) -> Approver | None:
    """The stricter of two approval requirements (owners over caller over none): rules only narrow."""
    if a is None:
        return b
    if b is None:
        return a
    return a if _STRENGTH[a] >= _STRENGTH[b] else b


def tool_approver(side_effect: SideEffect | None, requires_approval: bool | None,
                  approver: Approver | None) -> Approver | None:
    """A tool's own requirement: explicit `requiresApproval`, else destructive tools need the caller's."""
    if requires_approval is None:
        requires_approval = side_effect == SideEffect.destructive
    if not requires_approval:
        return None
    return approver or Approver.caller


def arguments_digest(arguments: Any) -> str:
    """`sha256:<hex>` over the canonical JSON of a call's arguments (absent: `{}`), what an approval is
    bound to; the same hex as the analytics event's `arguments_digest`."""
    data = json.dumps({} if arguments is None else arguments, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return "sha256:" + hashlib.sha256(data.encode("utf-8")).hexdigest()
