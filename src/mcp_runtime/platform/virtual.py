"""MCPVirtualServer in the control plane: apply, list, get, delete, and who may name which member.

A member must exist and be visible to the virtual server's owner: a server of the same namespace, of
a catalog namespace, or of another team's namespace when one of that server's grants shares it with
the virtual server's team (or names the caller). Anything else is refused with the reason and the fix.
Whatever the configuration, every call is still decided by the member's own policy at the gateway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from mcp_runtime.platform.errors import ApiError, not_found
from mcp_runtime.platform.policies import PolicyCompiler
from mcp_runtime.platform.principal import Principal
from mcp_runtime.platform.repository import ResourceRepository, parse_resource
from mcp_runtime.platform.visibility import (
    CATALOG_NAMESPACES,
    can_read_namespace,
    names_caller,
    require_manage,
    require_write,
)
from mcp_runtime.resources import MCPAccessGrant, MCPServer, MCPVirtualServer
from mcp_runtime.store import ControlPlaneStore

log = logging.getLogger("mcp_runtime.platform")

VirtualListener = Callable[[MCPVirtualServer, bool], None]
"""listener(virtual server, deleted): told after a virtual server is stored or deleted."""


class VirtualServerService:
    def __init__(self, store: ControlPlaneStore, repo: ResourceRepository, policies: PolicyCompiler) -> None:
        self.store, self.repo, self.policies = store, repo, policies
        self.listeners: list[VirtualListener] = []

    # write --------------------------------------------------------------------------------------
    def apply(self, caller: Principal, body: Any) -> tuple[MCPVirtualServer, bool]:
        """Create, or replace when it exists; (the stored virtual server, created)."""
        virtual = parse_resource(body, MCPVirtualServer)
        namespace = virtual.metadata.namespace
        if not namespace:
            raise ApiError(422, "invalid_request", "metadata.namespace is required (the owning team's namespace)")
        require_write(caller, namespace, "apply virtual servers")
        team = self.store.get_team_by_namespace(namespace)
        virtual.spec.team_id = team.id if team is not None else None
        if self.repo.get(MCPServer, namespace, virtual.metadata.name) is not None:
            raise ApiError(409, "name_conflict",
                           f"server {virtual.metadata.name} exists in namespace {namespace}: a virtual server and "
                           "a server share one name space (and one session audience); choose another name")
        for key in virtual.member_keys():
            self.check_member(caller, virtual, key)
        existing = self.repo.get(MCPVirtualServer, namespace, virtual.metadata.name)
        if existing is not None:
            saved = self.repo.replace(virtual, caller.email, "update", before=existing)
        else:
            saved = self.repo.create(virtual, caller.email)
        self._recompile_members(saved, existing)
        self._notify(saved, deleted=False)
        return saved, existing is None

    def check_member(self, caller: Principal, virtual: MCPVirtualServer, key: tuple[str, str]) -> None:
        """A member must exist and be visible to the owner; another team's only when a grant shares it."""
        namespace, name = key
        where = f"server {name} in namespace {namespace}"
        server = self.repo.get(MCPServer, namespace, name)
        if server is None:
            raise ApiError(422, "member_not_found", f"member {where} does not exist; deploy it first or fix "
                                                    "spec.members[].serverRef")
        own = virtual.metadata.namespace
        if namespace == own or namespace in CATALOG_NAMESPACES:
            return
        team_id = virtual.spec.team_id
        grants = [g for g in self.repo.list(MCPAccessGrant, namespace) if g.spec.server_ref.name == name
                  and not g.spec.disabled]
        shared = any((team_id and g.spec.subject.team_id == team_id) or names_caller(g.spec.subject, caller)
                     for g in grants)
        if shared or (caller.is_admin and can_read_namespace(caller, namespace) and grants):
            return
        raise ApiError(403, "member_not_visible",
                       f"member {where} belongs to another team and no grant shares it with team "
                       f"{team_id or '(none)'} of namespace {own}: ask that server's owners for an MCPAccessGrant "
                       f"whose subject.teamID is {team_id or 'your team'}")

    def delete(self, caller: Principal, namespace: str, name: str) -> MCPVirtualServer:
        virtual = self.get(caller, namespace, name)
        require_manage(caller, namespace, "delete virtual servers")
        self.repo.delete(virtual, caller.email)
        self._recompile_members(virtual, None)
        self._notify(virtual, deleted=True)
        return virtual

    # read ---------------------------------------------------------------------------------------
    def get(self, caller: Principal, namespace: str, name: str) -> MCPVirtualServer:
        virtual = self.repo.get(MCPVirtualServer, namespace, name)
        if virtual is None or not can_read_namespace(caller, namespace):
            raise not_found(f"virtual server {name} in namespace {namespace}")
        return virtual

    def list(self, caller: Principal, namespace: str | None = None) -> list[MCPVirtualServer]:
        return [v for v in self.repo.list(MCPVirtualServer, namespace)
                if can_read_namespace(caller, v.metadata.namespace or "")]

    # effects ------------------------------------------------------------------------------------
    def _recompile_members(self, virtual: MCPVirtualServer, before: MCPVirtualServer | None) -> None:
        """Members' documents carry the virtual server's sessions: recompile those that gained or lost it."""
        keys = dict.fromkeys([*virtual.member_keys(), *(before.member_keys() if before is not None else [])])
        for namespace, name in keys:
            self.policies.recompile(namespace, name)

    def _notify(self, virtual: MCPVirtualServer, *, deleted: bool) -> None:
        for listener in list(self.listeners):
            try:
                listener(virtual, deleted)
            except Exception:
                log.exception("virtual server listener failed for %s/%s", virtual.metadata.namespace,
                              virtual.metadata.name)
