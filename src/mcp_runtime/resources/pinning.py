"""Tool-definition pinning: what a reviewed tool looked like, so a later change to it is noticed.

An MCP client hands a tool's name, title, description and schemas to an LLM: that text is the attack
surface of a "rug pull" (a server that changes a tool after it was reviewed). A pin is the SHA-256 of
the canonical JSON of exactly those fields; the reviewed definition travels with it so a drift can be
shown as a readable diff. Pins live in the server's resource (desired state, reviewable in Git).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema

from mcp_runtime.resources.common import CamelModel

PINNED_FIELDS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
"""The fields of an MCP tool definition a pin covers (what an LLM reads and what a call must match)."""

DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
MAX_DEFINITION_BYTES = 64 * 1024
"""A pinned definition larger than this is refused: it would bloat the resource and every policy."""


class PinMode(StrEnum):
    """What the gateway does with a tool whose definition differs from its pin (or has none).

    enforce: hide it from `tools/list` and deny its calls; warn: let it through but report the drift;
    off: do not check."""

    enforce = "enforce"
    warn = "warn"
    off = "off"


def tool_definition(tool: Mapping[str, Any]) -> dict[str, Any]:
    """The pinned fields of an MCP tool definition; a field that is absent or null is left out, so a
    server that starts sending `"title": null` is not a change."""
    return {key: tool[key] for key in PINNED_FIELDS if tool.get(key) is not None}


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def tool_digest(tool: Mapping[str, Any]) -> str:
    """`sha256:<hex>` over the canonical JSON (sorted keys, no spaces, UTF-8) of `tool_definition(tool)`."""
    return "sha256:" + hashlib.sha256(_canonical(tool_definition(tool))).hexdigest()


Definition = Annotated[dict[str, Any], WithJsonSchema(
    {"type": "object", "x-kubernetes-preserve-unknown-fields": True})]


class ToolPin(CamelModel):
    """The reviewed definition of one tool: its digest, and the definition itself for diffs."""

    digest: str = Field(pattern=DIGEST_PATTERN)
    definition: Definition | None = None

    @classmethod
    def of(cls, tool: Mapping[str, Any]) -> ToolPin:
        """Pin a tool definition as a server announced it (an entry of a `tools/list` answer)."""
        definition = tool_definition(tool)
        if len(_canonical(definition)) > MAX_DEFINITION_BYTES:
            raise ValueError(f"the definition of tool {tool.get('name')!r} is larger than "
                             f"{MAX_DEFINITION_BYTES // 1024} KiB and cannot be pinned")
        return cls(digest=tool_digest(tool), definition=definition)


class PinningSpec(CamelModel):
    """How the gateway treats tool definitions that differ from their pins (see `PinMode`).

    Checking starts once a server has at least one pin (`server init --from-server` or
    `server tools approve` writes them); a server nobody reviewed yet is reported as such."""

    mode: PinMode = PinMode.enforce

