"""The operator's I/O for virtual servers: read V and its members, apply `plan_virtual`, write V's status,
and delete what V rendered in other namespaces when V goes (by label: owner references cannot cross
namespaces, and a finalizer would make deleting V hang whenever the operator is down).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from mcp_runtime.kube import KubeClient, NotFoundError
from mcp_runtime.manifests.virtual import LABEL_VIRTUAL, LABEL_VIRTUAL_NAMESPACE, gateway_name, virtual_selector
from mcp_runtime.operator.plan import known_status
from mcp_runtime.operator.settings import OperatorSettings
from mcp_runtime.operator.virtual import VIRTUAL_KINDS, VirtualPlan, cluster_ips, plan_virtual
from mcp_runtime.resources import SERVER_KIND, SESSION_KIND, MCPAgentSession, MCPServer, MCPVirtualServer


class Reconciler(Protocol):
    """What these functions use of `reconcile.Reconciler` (which calls them: no import cycle)."""

    client: KubeClient
    settings: OperatorSettings

    def _lock(self, namespace: str, name: str) -> threading.Lock: ...
    def _jwks(self) -> dict[str, object] | None: ...
    def _write_status(self, kind: str, namespace: str, name: str, current: object,
                      desired: dict[str, Any]) -> bool: ...
    def reconcile_server(self, namespace: str, name: str, now: datetime | None = None) -> object: ...

log = logging.getLogger("mcp_runtime.operator")

VIRTUAL_KIND = "MCPVirtualServer"
CROSS_KINDS = ("Role", "RoleBinding", "Service", "NetworkPolicy")
"""What a virtual server renders in member namespaces (swept for orphans)."""


def _load_virtual(raw: dict[str, Any]) -> MCPVirtualServer | None:
    try:
        return MCPVirtualServer.model_validate(known_status(raw))
    except Exception as exc:  # its own reconcile writes the Error status
        log.warning("skipping invalid MCPVirtualServer %s: %s", raw.get("metadata", {}).get("name"), exc)
        return None


def list_virtuals(rec: Reconciler) -> list[MCPVirtualServer]:
    """Every valid virtual server in the watched namespaces (all when none are set)."""
    found: list[MCPVirtualServer] = []
    namespaces: list[str | None] = [*rec.settings.namespaces] or [None]  # None: every namespace
    for namespace in namespaces:
        try:
            items = rec.client.list(VIRTUAL_KIND, namespace)
        except NotFoundError:  # the MCPVirtualServer CRD is not installed: no virtual servers
            return []
        for raw in items:
            if raw.get("metadata", {}).get("deletionTimestamp"):
                continue
            virtual = _load_virtual(raw)
            if virtual is not None:
                found.append(virtual)
    return found


def virtuals_of_member(rec: Reconciler, namespace: str, name: str) -> list[MCPVirtualServer]:
    return [v for v in list_virtuals(rec) if (namespace, name) in v.member_keys()]


def virtual_sessions(rec: Reconciler, namespace: str, name: str) -> list[MCPAgentSession]:
    """Sessions of every virtual server that has this server as a member: compiled into its policy under
    `<namespace>/<session>` (as the platform does, platform/policies.py)."""
    sessions: list[MCPAgentSession] = []
    for virtual in virtuals_of_member(rec, namespace, name):
        vns = virtual.metadata.namespace or ""
        for raw in rec.client.list(SESSION_KIND, vns):
            if ((raw.get("spec") or {}).get("serverRef") or {}).get("name") != virtual.metadata.name:
                continue
            try:
                sessions.append(MCPAgentSession.model_validate(known_status(raw)))
            except Exception as exc:
                log.warning("skipping invalid MCPAgentSession %s/%s: %s", vns, raw["metadata"].get("name"), exc)
    return sessions


def _member(rec: Reconciler, namespace: str, name: str) -> MCPServer | None:
    raw = rec.client.get(SERVER_KIND, name, namespace)
    if raw is None or raw.get("metadata", {}).get("deletionTimestamp"):
        return None
    try:
        return MCPServer.model_validate(known_status(raw))
    except Exception:
        return None  # an invalid member serves nothing; its own status says why


def _labelled(rec: Reconciler, namespace: str, name: str) -> list[dict[str, Any]]:
    selector = virtual_selector(namespace, name)
    return [obj for kind in VIRTUAL_KINDS for obj in rec.client.list(kind, None, label_selector=selector)]


def reconcile_virtual(rec: Reconciler, namespace: str, name: str, now: datetime | None = None) -> VirtualPlan | None:
    """Bring V's objects and status in line with its spec and members; None when V is gone (cleaned up)."""
    now = now or datetime.now(UTC)
    with rec._lock(namespace, f"virtual:{name}"):
        raw = rec.client.get(VIRTUAL_KIND, name, namespace)
        if raw is None or raw.get("metadata", {}).get("deletionTimestamp"):
            delete_virtual_objects(rec, namespace, name)
            return None
        virtual = _load_virtual(raw)
        if virtual is None:
            rec._write_status(VIRTUAL_KIND, namespace, name, raw.get("status"), {
                "phase": "Error", "message": "invalid MCPVirtualServer (see the operator's log)",
                "observedGeneration": raw.get("metadata", {}).get("generation")})
            return None
        members = {key: _member(rec, *key) for key in virtual.member_keys()}
        found = [m for m in members.values() if m is not None]
        by_ip = rec.settings.virtual_member_address == "cluster-ip"
        live = rec.client.get("Deployment", gateway_name(name), namespace)

        def planned() -> tuple[VirtualPlan, int]:
            existing = _labelled(rec, namespace, name)
            hosts = cluster_ips(virtual, found, existing) if by_ip else None
            return plan_virtual(virtual, members, existing, live, rec._jwks(), rec.settings.render, now,
                                hosts), len(hosts or {})

        plan, addressed = planned()
        _carry_out(rec, plan, namespace, name)
        if by_ip and addressed < len(found):  # direct Services just created: render again with their addresses
            plan, _ = planned()
            _carry_out(rec, plan, namespace, name)
        rec._write_status(VIRTUAL_KIND, namespace, name, raw.get("status"), plan.status)
        return plan


def _carry_out(rec: Reconciler, plan: VirtualPlan, namespace: str, name: str) -> None:
    for obj in plan.apply:
        action, _ = rec.client.apply(obj)
        if action != "unchanged":
            log.info("%s %s %s/%s (virtual server %s/%s)", action, obj["kind"], obj["metadata"]["namespace"],
                     obj["metadata"]["name"], namespace, name)
    for ref in plan.delete:
        if rec.client.delete(ref.kind, ref.name, ref.namespace):
            log.info("deleted %s %s/%s (no longer rendered for %s/%s)", ref.kind, ref.namespace, ref.name,
                     namespace, name)


def delete_virtual_objects(rec: Reconciler, namespace: str, name: str) -> int:
    """Delete everything rendered for V (the objects in its own namespace go by garbage collection too)."""
    count = 0
    for obj in _labelled(rec, namespace, name):
        meta = obj["metadata"]
        if rec.client.delete(obj["kind"], meta["name"], meta.get("namespace")):
            count += 1
    if count:
        log.info("deleted %d object(s) of the deleted virtual server %s/%s", count, namespace, name)
    return count


def sweep_virtual_orphans(rec: Reconciler) -> int:
    """Objects in member namespaces whose virtual server is gone (its delete event was missed): deleted."""
    owners: defaultdict[tuple[str, str], int] = defaultdict(int)
    for kind in CROSS_KINDS:
        for obj in rec.client.list(kind, None, label_selector=f"{LABEL_VIRTUAL},{LABEL_VIRTUAL_NAMESPACE}"):
            labels = obj["metadata"].get("labels") or {}
            owners[(labels[LABEL_VIRTUAL_NAMESPACE], labels[LABEL_VIRTUAL])] += 1
    deleted = 0
    for vns, vname in owners:
        if rec.client.get(VIRTUAL_KIND, vname, vns) is None:
            deleted += delete_virtual_objects(rec, vns, vname)
    return deleted


def reconcile_members_of(rec: Reconciler, namespace: str, name: str,
                         previous: Sequence[tuple[str, str]] = ()) -> None:
    """A virtual server or its sessions changed: re-render its members' policies (they hold its sessions)."""
    raw = rec.client.get(VIRTUAL_KIND, name, namespace)
    virtual = _load_virtual(raw) if raw is not None else None
    keys = set(previous) | set(virtual.member_keys() if virtual is not None else [])
    for member_ns, member in sorted(keys):
        rec.reconcile_server(member_ns, member)
