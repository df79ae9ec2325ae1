"""The platform's resource kinds in one table: the name, plural and short names of each.

The kind string itself is declared once, as the `kind` literal of each model; everything else (CRDs,
the Kubernetes REST paths, YAML loading, the API's audit records) reads it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from pydantic import BaseModel

from mcp_runtime.resources.access import MCPAccessGrant, MCPAgentSession
from mcp_runtime.resources.server import MCPServer
from mcp_runtime.resources.virtual import MCPVirtualServer

Resource: TypeAlias = MCPServer | MCPAccessGrant | MCPAgentSession | MCPVirtualServer


def kind_name(model: type[BaseModel]) -> str:
    """The `kind` a model declares (its literal default)."""
    return str(model.model_fields["kind"].default)


SERVER_KIND = kind_name(MCPServer)
GRANT_KIND = kind_name(MCPAccessGrant)
SESSION_KIND = kind_name(MCPAgentSession)
VIRTUAL_KIND = kind_name(MCPVirtualServer)


@dataclass(frozen=True)
class ResourceKind:
    """One custom resource kind: its model and how the Kubernetes API names it."""

    model: type[Resource]
    plural: str
    short_names: tuple[str, ...]
    word: str
    """What a person calls it in a sentence ("server 'payments' not found")."""

    @property
    def kind(self) -> str:
        return kind_name(self.model)


RESOURCE_KINDS: tuple[ResourceKind, ...] = (
    ResourceKind(MCPServer, "mcpservers", ("mcps",), "server"),
    ResourceKind(MCPAccessGrant, "mcpaccessgrants", ("mcpgrant",), "grant"),
    ResourceKind(MCPAgentSession, "mcpagentsessions", ("mcpsession",), "session"),
    ResourceKind(MCPVirtualServer, "mcpvirtualservers", ("mcpvs",), "virtual server"),
)

KINDS: dict[str, type[Resource]] = {k.kind: k.model for k in RESOURCE_KINDS}
"""kind name -> model, for loading YAML of any kind."""

BY_KIND: dict[str, ResourceKind] = {k.kind: k for k in RESOURCE_KINDS}
