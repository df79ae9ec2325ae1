"""MCPVirtualServer: one governed endpoint (`/v/<name>/mcp`) that aggregates the tools of member servers.

A virtual server decides nothing itself: every member call is judged by that member's own policy
document (docs/virtual-servers.md). What lives here is only how member tools are *named* through the
virtual endpoint (a prefix per member, or explicit renames) and which of them are offered at all
(include/exclude lists), validated so that two members can never produce the same public name by
configuration.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mcp_runtime.resources.common import (
    GROUP_VERSION,
    CamelModel,
    Condition,
    DnsLabel,
    GroupVersion,
    ObjectMeta,
    ServerRef,
    ToolName,
    check_tool_name,
)

MAX_MEMBERS = 32
"""A virtual server fans a client session out to at most this many member sessions."""
MAX_PREFIX = 64


class ConflictPolicy(StrEnum):
    """How member tools get their public names: `prefix` (each member's prefix before every tool name)
    or `rename` (names as the member declares them, explicit `rename` entries where they would clash)."""

    prefix = "prefix"
    rename = "rename"


class ToolFilter(CamelModel):
    """Which of a member's tools are offered: `include` (empty: all) minus `exclude`. Filtering only ever
    hides tools; what the caller may call is still decided by the member's policy."""

    include: list[ToolName] = Field(default_factory=list, max_length=1024)
    exclude: list[ToolName] = Field(default_factory=list, max_length=1024)

    @model_validator(mode="after")
    def _disjoint(self) -> ToolFilter:
        both = sorted(set(self.include) & set(self.exclude))
        if both:
            raise ValueError(f"tools {', '.join(both)} are both included and excluded; keep each in one list")
        return self

    def offers(self, tool: str) -> bool:
        return (not self.include or tool in self.include) and tool not in self.exclude


class VirtualMember(CamelModel):
    """One member server (in the virtual server's namespace, or another team's when a grant shares it)."""

    server_ref: ServerRef
    prefix: str | None = Field(default=None, max_length=MAX_PREFIX)
    """Put before each tool name under the `prefix` policy; default `<server>_`."""
    rename: dict[str, str] = Field(default_factory=dict, max_length=1024)
    """member tool name -> public name (takes precedence over the prefix)."""
    tools: ToolFilter = Field(default_factory=ToolFilter)

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str | None) -> str | None:
        if value:
            check_tool_name(value)
        return value

    @field_validator("rename")
    @classmethod
    def _rename(cls, value: dict[str, str]) -> dict[str, str]:
        for source, target in value.items():
            check_tool_name(source)
            check_tool_name(target)
        return value

    def effective_prefix(self, policy: ConflictPolicy) -> str:
        if policy == ConflictPolicy.rename:
            return self.prefix or ""
        return self.server_ref.name + "_" if self.prefix is None else self.prefix

    def public_name(self, tool: str, policy: ConflictPolicy) -> str:
        """The name a client sees for the member's `tool`."""
        renamed = self.rename.get(tool)
        return renamed if renamed is not None else self.effective_prefix(policy) + tool

    def key(self, namespace: str) -> tuple[str, str]:
        return (self.server_ref.namespace or namespace, self.server_ref.name)


class VirtualServerSpec(CamelModel):
    team_id: str | None = Field(default=None, max_length=256)
    """The owning team (set by the platform from the namespace)."""
    description: str | None = Field(default=None, max_length=1000)
    conflict_policy: ConflictPolicy = ConflictPolicy.prefix
    members: list[VirtualMember] = Field(min_length=1, max_length=MAX_MEMBERS)

    @model_validator(mode="after")
    def _unambiguous(self) -> VirtualServerSpec:
        seen: set[tuple[str | None, str]] = set()
        for member in self.members:
            ref = (member.server_ref.namespace, member.server_ref.name)
            if ref in seen:
                raise ValueError(f"members names server {member.server_ref.name} twice: list each member once")
            seen.add(ref)
        check_names(self)
        return self


def check_names(spec: VirtualServerSpec) -> None:
    """Refuse a configuration that makes two members' tools share a public name: under `prefix`, one
    member's prefix may not start another's (`a_` + `b_x` = `a_b_` + `x`); explicit renames must be
    unique. (Clashes that depend on tools a member adds later are resolved at run time, first member
    wins, and reported: see gateway/virtual/mapping.py.)"""
    policy = spec.conflict_policy
    targets: dict[str, str] = {}
    for member in spec.members:
        for target in member.rename.values():
            owner = targets.get(target)
            if owner is not None:
                raise ValueError(f"rename target {target!r} is used by members {owner} and "
                                 f"{member.server_ref.name}: give each a different name")
            targets[target] = member.server_ref.name
    if policy != ConflictPolicy.prefix:
        return
    prefixes = [(m.effective_prefix(policy), m.server_ref.name) for m in spec.members]
    for index, (prefix, name) in enumerate(prefixes):
        for other, other_name in prefixes[index + 1:]:
            if prefix.startswith(other) or other.startswith(prefix):
                raise ValueError(
                    f"prefix collision: members {name} ({prefix!r}) and {other_name} ({other!r}) could expose the "
                    "same tool name; give each member a prefix that does not start another's")


class VirtualServerStatus(CamelModel):
    phase: str | None = None
    message: str | None = None
    url: str | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None


class MCPVirtualServer(CamelModel):
    api_version: GroupVersion = GROUP_VERSION
    kind: Literal["MCPVirtualServer"] = "MCPVirtualServer"
    metadata: ObjectMeta
    spec: VirtualServerSpec
    status: VirtualServerStatus | None = None

    def member_keys(self) -> list[tuple[str, str]]:
        namespace = self.metadata.namespace or ""
        return [m.key(namespace) for m in self.spec.members]


class VirtualServerMetadata(VirtualServerSpec):
    """A virtual server in `.mcp/servers.yaml` (`virtualServers:`): its name, an optional namespace, and
    the spec's fields inline, the way `servers:` entries are written."""

    name: DnsLabel
    namespace: DnsLabel | None = None

    def to_resource(self, namespace: str | None = None) -> MCPVirtualServer:
        """The MCPVirtualServer it stands for; `namespace` fills in one the entry does not name."""
        where = self.namespace or namespace
        if not where:
            raise ValueError(f"virtual server {self.name!r} names no namespace: add `namespace:` to the entry "
                             "or pass --namespace")
        spec = VirtualServerSpec.model_validate(self.model_dump(exclude={"name", "namespace"}))
        return MCPVirtualServer(metadata=ObjectMeta(name=self.name, namespace=where), spec=spec)


def virtual_path(name: str) -> str:
    """The public path of a virtual server in the process runtime's gateway."""
    return f"/v/{name}/mcp"


def qualified_session(namespace: str, name: str) -> str:
    """How a virtual server's session is named in a member's policy document: `<namespace>/<name>`. A
    `/` never appears in a resource name, so it can never be mistaken for a session of the member's own."""
    return f"{namespace}/{name}"
