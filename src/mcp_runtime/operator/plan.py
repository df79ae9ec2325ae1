"""The reconcile plan: from an MCPServer, its grants and sessions, and what exists now, decide what to
apply, what to delete and what status to write. Pure: no I/O, `now` is a parameter.

The kopf handlers (`handlers.py`) read the inputs, call `plan_server` / `plan_access_status`, and
apply the result through `reconcile.py`. Everything worth testing about reconciliation is here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from mcp_runtime.kube.client import ANNOTATION_APPLIED_HASH, manifest_hash
from mcp_runtime.manifests import (
    RenderedServer,
    RenderError,
    RenderOptions,
    owner_reference_for,
    render_jwks_configmap,
    render_server,
)
from mcp_runtime.manifests.common import ANNOTATION_IMAGE, LABEL_SERVER
from mcp_runtime.manifests.names import label_value
from mcp_runtime.policy import PolicyDocument, compile_policy
from mcp_runtime.resources import (
    MCPAccessGrant,
    MCPAgentSession,
    MCPServer,
    RolloutStrategy,
)
from mcp_runtime.resources.access import phase_message

Manifest = dict[str, Any]

OWNED_KINDS = ("Deployment", "Service", "Ingress", "ConfigMap", "ServiceAccount", "Role", "RoleBinding")
"""Kinds the operator creates per server, owned by the MCPServer (deletes cascade)."""

CONDITION_TYPES = ("Ready", "DeploymentReady", "GatewayReady", "PolicyReady")


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class Observed:
    """What exists now: the server's owned objects (by kind, the live manifests) and the JWKS to copy.

    `owned` holds only objects whose ownerReferences name the server's uid; the I/O layer filters.
    """

    owned: Mapping[str, Sequence[Manifest]] = field(default_factory=dict)
    jwks: Mapping[str, Any] | None = None

    def live(self, kind: str, name: str) -> Manifest | None:
        return next((o for o in self.owned.get(kind, ()) if o.get("metadata", {}).get("name") == name), None)


@dataclass(frozen=True)
class ServerPlan:
    """What one reconciliation of an MCPServer does."""

    apply: list[Manifest]
    delete: list[ObjectRef]
    status: Manifest
    policy: PolicyDocument | None = None


def server_url(server: MCPServer, tls: bool) -> str:
    """Where clients reach the server: `<scheme>://<host><path>`, or just the path without a host."""
    path = server.spec.ingress_path or f"/{server.name}/mcp"
    if server.spec.ingress_host:
        return f"{'https' if tls else 'http'}://{server.spec.ingress_host}{path}"
    return path


def status_condition(type_: str, ok: bool | None, reason: str, message: str, generation: int | None,
               previous: Mapping[str, Manifest], now: datetime) -> Manifest:
    """A condition; `lastTransitionTime` moves only when the status changes."""
    status = "Unknown" if ok is None else ("True" if ok else "False")
    before = previous.get(type_)
    changed = before is None or before.get("status") != status
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ") if changed or before is None else before.get("lastTransitionTime")
    cond: Manifest = {"type": type_, "status": status, "reason": reason, "message": message,
                      "lastTransitionTime": stamp}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def previous_conditions(status: Any) -> dict[str, Manifest]:
    conditions = (status or {}).get("conditions") or [] if isinstance(status, dict) else []
    return {c["type"]: c for c in conditions if isinstance(c, dict) and "type" in c}


def deployment_readiness(desired: Manifest, live: Manifest | None) -> tuple[int, int, str | None]:
    """(wanted replicas, ready replicas, why not ready or None) of one Deployment."""
    wanted = int(desired["spec"].get("replicas", 1))
    if live is None:
        return wanted, 0, f"Deployment {desired['metadata']['name']} is being created"
    status = live.get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    applied = (live.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_APPLIED_HASH)
    if applied != manifest_hash(desired):
        return wanted, ready, f"Deployment {desired['metadata']['name']} is being updated to the new spec"
    updated = int(status.get("updatedReplicas") or 0)
    generation = int(live.get("metadata", {}).get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    name = desired["metadata"]["name"]
    if observed < generation:
        return wanted, ready, f"Deployment {name} has a new revision the controller has not seen yet"
    if updated < wanted:
        return wanted, ready, f"Deployment {name} is rolling out: {updated}/{wanted} replicas updated"
    if ready < wanted:
        return wanted, ready, f"Deployment {name}: {ready}/{wanted} replicas ready"
    return wanted, ready, None


def _live_stable_image(server: MCPServer, observed: Observed, stable_name: str) -> str | None:
    """The image the stable track runs now (kept during a canary rollout)."""
    live = observed.live("Deployment", stable_name)
    if live is None:
        return None
    annotations = live.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations") or {}
    image = annotations.get(ANNOTATION_IMAGE)
    return str(image) if image else None


def plan_server(
    server: MCPServer,
    grants: Sequence[MCPAccessGrant],
    sessions: Sequence[MCPAgentSession],
    observed: Observed,
    options: RenderOptions,
    now: datetime,
    virtual_sessions: Sequence[MCPAgentSession] = (),
) -> ServerPlan:
    """Desired objects (owned by the server), stale owned objects to delete, and the server's status.
    `virtual_sessions`: sessions of the virtual servers it is a member of (compiled in qualified)."""
    previous = previous_conditions(server.status.model_dump(by_alias=True, mode="json") if server.status else None)
    generation = server.metadata.generation
    namespace = server.namespace or options.default_namespace

    def condition(kind: str, ok: bool | None, reason: str, message: str) -> Manifest:
        return status_condition(kind, ok, reason, message, generation, previous, now)

    def status_of(conditions: list[Manifest], phase: str, message: str, ready: int | None) -> Manifest:
        status: Manifest = {"phase": phase, "message": message, "url": server_url(server, options.tls_enabled),
                            "conditions": conditions, "observedGeneration": generation}
        if ready is not None:
            status["readyReplicas"] = ready
        return status

    try:
        policy, rendered = _render(server, grants, sessions, observed, options, virtual_sessions)
    except (RenderError, ValueError) as exc:
        message = f"cannot render {server.name}: {exc}"
        conditions = [condition("Ready", False, "RenderFailed", message),
                      condition("DeploymentReady", None, "RenderFailed", "nothing was applied"),
                      condition("GatewayReady", None, "RenderFailed", "nothing was applied"),
                      condition("PolicyReady", False, "RenderFailed", message)]
        return ServerPlan(apply=[], delete=[], status=status_of(conditions, "Error", message, None))

    desired = rendered.all()
    if observed.jwks is not None and server.spec.gateway.enabled:
        desired.insert(0, render_jwks_configmap(observed.jwks, namespace, options))
    wanted = {(o["kind"], o["metadata"]["name"]) for o in desired}
    delete = [ObjectRef(kind, namespace, o["metadata"]["name"])
              for kind in OWNED_KINDS for o in observed.owned.get(kind, ())
              if (kind, o["metadata"]["name"]) not in wanted]

    replicas = _Replicas.of(rendered, observed)
    gateway_ok, gateway_reason, gateway_message = _gateway_state(server, replicas)
    configmap = rendered.policy_configmap["metadata"]["name"]
    policy_message = (f"policy revision {policy.revision[:12]} with {len(policy.grants)} grant(s) and "
                      f"{len(policy.sessions)} session(s) is in ConfigMap {configmap}")
    ready = replicas.ok and gateway_ok
    conditions = [
        condition("Ready", ready, "Ready" if ready else "NotReady",
                  "the server is serving through its gateway" if ready else replicas.message),
        condition("DeploymentReady", replicas.ok, "ReplicasReady" if replicas.ok else "ReplicasNotReady",
                  replicas.message),
        condition("GatewayReady", gateway_ok, gateway_reason, gateway_message),
        condition("PolicyReady", True, "Published", policy_message),
    ]
    if ready:
        phase, message = "Ready", f"{replicas.ready}/{replicas.wanted} replicas ready"
    elif replicas.ready > 0:
        phase, message = "PartiallyReady", replicas.message
    else:
        phase, message = "Pending", replicas.message
    return ServerPlan(apply=desired, delete=delete, status=status_of(conditions, phase, message, replicas.ready),
                      policy=policy)


def _render(server: MCPServer, grants: Sequence[MCPAccessGrant], sessions: Sequence[MCPAgentSession],
            observed: Observed, options: RenderOptions,
            virtual_sessions: Sequence[MCPAgentSession]) -> tuple[PolicyDocument, RenderedServer]:
    """The policy document and the rendered objects; a canary keeps the stable image the live Deployment runs."""
    policy = compile_policy(server, list(grants), list(sessions), virtual_sessions)
    render_options = replace(options, owner_reference=owner_reference_for(server))
    if server.spec.rollout is not None and server.spec.rollout.strategy == RolloutStrategy.canary:
        render_options = replace(render_options, canary_stable_image=_live_stable_image(
            server, observed, render_server(server, policy, render_options).deployment["metadata"]["name"]))
    return policy, render_server(server, policy, render_options)


@dataclass(frozen=True)
class _Replicas:
    """Readiness summed over the server's Deployments (one, or stable and canary)."""

    wanted: int
    ready: int
    problems: tuple[str, ...]

    @classmethod
    def of(cls, rendered: RenderedServer, observed: Observed) -> _Replicas:
        wanted = ready = 0
        problems: list[str] = []
        for deployment in rendered.deployments:
            want, up, problem = deployment_readiness(deployment, observed.live("Deployment",
                                                                               deployment["metadata"]["name"]))
            wanted, ready = wanted + want, ready + up
            if problem:
                problems.append(problem)
        return cls(wanted, ready, tuple(problems))

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def message(self) -> str:
        if self.problems:
            return "; ".join(self.problems)
        return f"{self.ready}/{self.wanted} replicas ready" if self.wanted else "scaled to zero replicas"


def _gateway_state(server: MCPServer, replicas: _Replicas) -> tuple[bool, str, str]:
    """GatewayReady's status, reason and message: the sidecar is ready once it has loaded the policy."""
    if not server.spec.gateway.enabled:
        return True, "GatewayDisabled", "spec.gateway.enabled is false: traffic reaches the app ungoverned"
    if replicas.ok:
        return True, "SidecarReady", (f"the mcp-gateway sidecar is ready in {replicas.ready}/{replicas.wanted} pods "
                                      "(it is ready only once it has loaded the policy)")
    return False, "SidecarNotReady", ("waiting for the pods (the sidecar turns ready once it has loaded the policy): "
                                      + replicas.message)


def plan_access_status(obj: MCPAccessGrant | MCPAgentSession, server_exists: bool, now: datetime) -> Manifest:
    """Status of a grant (Active / Disabled / Expired) or session (Active / Expired / Revoked)."""
    phase, message = phase_message(obj, now)
    previous = previous_conditions(obj.status.model_dump(by_alias=True, mode="json") if obj.status else None)
    generation = obj.metadata.generation
    ref = obj.spec.server_ref.name
    namespace = obj.metadata.namespace
    what = "grant" if isinstance(obj, MCPAccessGrant) else "session"
    if not server_exists:
        message = (f"MCPServer {ref} does not exist in namespace {namespace}: the {what} has no effect until it "
                   "does (a grant or session must live in its server's namespace)")
    conditions = [
        status_condition("ServerFound", server_exists, "ServerFound" if server_exists else "ServerNotFound",
                   f"MCPServer {ref} exists" if server_exists else message, generation, previous, now),
        status_condition("Ready", server_exists and phase == "Active", phase, message, generation, previous, now),
    ]
    return {"phase": phase, "message": message, "conditions": conditions, "observedGeneration": generation}


def status_changed(current: Any, desired: Manifest) -> bool:
    """True when writing `desired` would change the stored status (so quiet loops write nothing)."""
    return not isinstance(current, dict) or any(current.get(k) != v for k, v in desired.items())


def owned_by(obj: Manifest, uid: str | None) -> bool:
    return bool(uid) and any(o.get("uid") == uid for o in obj.get("metadata", {}).get("ownerReferences") or [])


def server_selector(server_name: str) -> str:
    """The label selector of every object rendered for a server."""
    return f"{LABEL_SERVER}={label_value(server_name)}"


_STATUS_KEYS = {"phase", "message", "url", "readyReplicas", "conditions", "observedGeneration"}


def known_status(raw: dict[str, Any]) -> dict[str, Any]:
    """The object with only the status fields our models know (other writers may add their own)."""
    status = raw.get("status")
    if not isinstance(status, dict):
        return {k: v for k, v in raw.items() if k != "status"}
    return {**raw, "status": {k: v for k, v in status.items() if k in _STATUS_KEYS}}
