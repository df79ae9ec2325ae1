"""The reconcile plan of an MCPVirtualServer: from V, its members as read and what exists now, decide what
to apply, what to delete and what status to write. Pure, like plan.py; reconcile_virtual.py does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from mcp_runtime.manifests import RenderError, RenderOptions, render_jwks_configmap
from mcp_runtime.manifests.options import OwnerReference
from mcp_runtime.manifests.virtual import Hosts, direct_service_name, render_virtual
from mcp_runtime.operator.plan import (
    Manifest,
    ObjectRef,
    deployment_readiness,
    previous_conditions,
    status_condition,
)
from mcp_runtime.resources import MCPServer, MCPVirtualServer, virtual_path

VIRTUAL_KINDS = ("Deployment", "Service", "Ingress", "ConfigMap", "ServiceAccount", "Role", "RoleBinding",
                 "NetworkPolicy")
"""Kinds rendered for a virtual server (in its namespace and its members'), found again by its labels."""


@dataclass(frozen=True)
class VirtualPlan:
    apply: list[Manifest]
    delete: list[ObjectRef]
    status: Manifest


def virtual_url(virtual: MCPVirtualServer, options: RenderOptions) -> str:
    """Where clients reach V: the public base URL plus `/v/<name>/mcp`, or just the path."""
    path = virtual_path(virtual.metadata.name)
    return options.public_url.rstrip("/") + path if options.public_url else path


def owner_of(virtual: MCPVirtualServer) -> OwnerReference:
    if not virtual.metadata.uid:
        raise ValueError(f"MCPVirtualServer {virtual.metadata.name!r} has no metadata.uid: read it from the API")
    return OwnerReference(api_version=virtual.api_version, kind=virtual.kind, name=virtual.metadata.name,
                          uid=virtual.metadata.uid)


def cluster_ips(virtual: MCPVirtualServer, members: Sequence[MCPServer], existing: Sequence[Manifest]) -> Hosts:
    """The ClusterIPs of the members' direct Services that exist now (for clusters without DNS)."""
    live = {(o["metadata"].get("namespace"), o["metadata"]["name"]): (o.get("spec") or {}).get("clusterIP")
            for o in existing if o.get("kind") == "Service"}
    hosts: dict[tuple[str, str], str] = {}
    for member in members:
        ip = live.get((member.namespace, direct_service_name(virtual, member)))
        if ip and ip != "None":
            hosts[(member.namespace or "", member.name)] = ip
    return hosts


def _ref(obj: Manifest) -> ObjectRef:
    meta = obj["metadata"]
    return ObjectRef(obj["kind"], meta.get("namespace") or "", meta["name"])


def plan_virtual(virtual: MCPVirtualServer, members: Mapping[tuple[str, str], MCPServer | None],
                 existing: Sequence[Manifest], live_deployment: Manifest | None,
                 jwks: Mapping[str, object] | None, options: RenderOptions, now: datetime,
                 hosts: Hosts | None = None) -> VirtualPlan:
    """`members`: each member key to the MCPServer read (None: not found); `existing`: every object that
    carries V's labels now, in any namespace (the stale ones are deleted); `hosts`: see render_virtual."""
    previous = previous_conditions(virtual.status.model_dump(by_alias=True, mode="json")
                                    if virtual.status else None)
    generation = virtual.metadata.generation
    found = [m for m in members.values() if m is not None]
    missing = [f"{ns}/{name}" for (ns, name), m in members.items() if m is None]

    def status(phase: str, message: str, conditions: list[Manifest]) -> Manifest:
        return {"phase": phase, "message": message[:1000], "url": virtual_url(virtual, options),
                "conditions": conditions, "observedGeneration": generation}

    try:
        rendered = render_virtual(virtual, found, replace(options, owner_reference=owner_of(virtual)), hosts)
    except (RenderError, ValueError) as exc:
        message = f"cannot render {virtual.metadata.name}: {exc}"
        return VirtualPlan(apply=[], delete=[], status=status("Error", message, [
            status_condition("Ready", False, "RenderFailed", message, generation, previous, now)]))
    desired = rendered.all()
    if jwks is not None:
        desired.insert(0, render_jwks_configmap(jwks, virtual.metadata.namespace or "", options))
    wanted = {_ref(o) for o in desired}
    delete = sorted({_ref(o) for o in existing} - wanted, key=lambda r: (r.namespace, r.kind, r.name))

    _, ready, problem = deployment_readiness(rendered.deployment, live_deployment)
    members_ok = not missing
    members_message = (f"members {', '.join(missing)} not found: their tools are unavailable until they exist"
                       if missing else f"{len(found)} member(s): " + ", ".join(
                           f"{m.namespace}/{m.name}" for m in found))
    deployment_message = problem or f"{ready} gateway replica(s) ready (every member policy loaded)"
    ok = problem is None and members_ok
    conditions = [
        status_condition("Ready", ok, "Ready" if ok else "NotReady",
                   f"serving {virtual_path(virtual.metadata.name)}" if ok else (problem or members_message),
                   generation, previous, now),
        status_condition("MembersFound", members_ok, "MembersFound" if members_ok else "MemberNotFound",
                   members_message, generation, previous, now),
        status_condition("DeploymentReady", problem is None, "ReplicasReady" if problem is None else "ReplicasNotReady",
                   deployment_message, generation, previous, now),
    ]
    if ok:
        phase, message = "Ready", f"serving {virtual_path(virtual.metadata.name)}: {members_message}"
    else:
        phase = "Pending"
        message = "; ".join(p for p in (problem, None if members_ok else members_message) if p)
    return VirtualPlan(apply=desired, delete=delete, status=status(phase, message, conditions))
