"""Render one MCPServer into the Kubernetes objects that run it.

The same pod template is what the operator applies (in a Deployment) and what the podman runtime runs
(`RenderedServer.pod()` with `podman kube play`), so the manifests the operator uses are exercised on a
single machine too. Everything here is a pure function of (server, policy, options): same input, same
dicts, no I/O.

Traffic path when the gateway is on: Ingress `<ingressPath>` -> Service `servicePort` -> the
`mcp-gateway` sidecar on `gateway.port` -> `http://127.0.0.1:<port><ingressPath>` (the app, in the same
pod network namespace). The Service never targets the app port, so all traffic is governed.

Canary rollout: two Deployments behind the one Service. `<name>` (track `stable`) runs
`replicas - canaryReplicas` pods of `options.canary_stable_image` (or the new image when unset);
`<name>-canary` (track `canary`) runs `canaryReplicas` pods of the new image. The Service selects both
tracks, so the canary gets its share of requests by pod count. Deployment selectors always include the
track, so they never change (they are immutable) when the strategy changes; the operator deletes the
canary Deployment it owns once it is no longer rendered.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp_runtime.manifests.common import (
    ANNOTATION_POLICY_REVISION,
    ANNOTATION_TEAM_ID,
    LABEL_MANAGED_BY,
    LABEL_TRACK,
    MANAGED_BY,
    POLICY_KEY,
    RESERVED_ENV,
    TRACK_CANARY,
    TRACK_STABLE,
    Manifest,
    RenderContext,
    RenderError,
    gateway_service_account_name,
    object_metadata,
    policy_configmap_name,
    route_path,
    selector_labels,
    server_labels,
)
from mcp_runtime.manifests.images import qualify_image
from mcp_runtime.manifests.names import object_name
from mcp_runtime.manifests.options import RenderOptions
from mcp_runtime.manifests.pod import pod_template, remote_ca_data
from mcp_runtime.policy import PolicyDocument
from mcp_runtime.resources import MCPServer, RolloutStrategy


@dataclass(frozen=True)
class RenderedServer:
    """The objects of one server. Dicts are fresh per render; `pod()` and `all()` return copies."""

    deployment: Manifest
    service: Manifest
    policy_configmap: Manifest
    ingress: Manifest | None = None
    canary_deployment: Manifest | None = None
    rbac: list[Manifest] = field(default_factory=list)

    @property
    def deployments(self) -> list[Manifest]:
        return [self.deployment] + ([self.canary_deployment] if self.canary_deployment else [])

    def pod(self) -> Manifest:
        """A bare Pod with the stable Deployment's pod template, for `podman kube play`."""
        meta = self.deployment["metadata"]
        template = copy.deepcopy(self.deployment["spec"]["template"])
        metadata: Manifest = {"name": meta["name"], "namespace": meta["namespace"], **template["metadata"]}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
                "spec": {**template["spec"], "restartPolicy": "Always"}}

    def all(self) -> list[Manifest]:
        """Every object in apply order: RBAC, policy ConfigMap, Deployments, Service, Ingress."""
        objects = [*self.rbac, self.policy_configmap, *self.deployments, self.service]
        if self.ingress is not None:
            objects.append(self.ingress)
        return copy.deepcopy(objects)


def render_server(server: MCPServer, policy: PolicyDocument, options: RenderOptions | None = None) -> RenderedServer:
    """Render the Deployment(s), Service, Ingress, policy ConfigMap and optional RBAC of a server."""
    options = options or RenderOptions()
    spec = server.spec
    path = route_path(server)
    env_names = {e.name for e in spec.env_vars} | {e.name for e in spec.secret_env_vars}
    if spec.stdio is not None:
        env_names |= {e.name for e in spec.stdio.env_vars} | {e.name for e in spec.stdio.secret_env_vars}
    clash = sorted(env_names.intersection(RESERVED_ENV))
    if clash:
        raise RenderError(
            f"envVars/secretEnvVars must not set {', '.join(clash)}: the platform sets PORT from spec.port "
            "and MCP_PATH from spec.ingressPath; change those fields instead"
        )
    if spec.remote is not None and spec.remote.session_token is not None:
        raise RenderError(
            "remote.sessionToken (each caller's own token) is served by the platform's gateway (mcp-runtime up) "
            "only: a sidecar cannot read every session's Secret; use remote.headerSecret on Kubernetes"
        )
    annotations = {ANNOTATION_TEAM_ID: spec.team_id} if spec.team_id else {}
    namespace = server.namespace or options.default_namespace
    _check_policy(server, namespace, policy)
    ctx = RenderContext(server=server, options=options, name=object_name(server.name), namespace=namespace,
                        path=path, labels=server_labels(server, dict(options.labels)), annotations=annotations)
    # a remote server runs elsewhere: its pods are the gateway alone (see pod.py)
    image = qualify_image(server.image_ref, options.registry_host) if spec.remote is None else options.gateway_image

    stable_replicas, canary_replicas = _replica_split(server, options)
    canary = None
    if canary_replicas is not None:
        stable_image = qualify_image(options.canary_stable_image, options.registry_host) \
            if options.canary_stable_image else image
        deployment = _deployment(ctx, policy, TRACK_STABLE, stable_replicas, stable_image)
        canary = _deployment(ctx, policy, TRACK_CANARY, canary_replicas, image)
    else:
        deployment = _deployment(ctx, policy, TRACK_STABLE, stable_replicas, image)
    return RenderedServer(
        deployment=deployment,
        canary_deployment=canary,
        service=_service(ctx),
        ingress=_ingress(ctx) if options.ingress_enabled else None,
        policy_configmap=_policy_configmap(ctx, policy),
        rbac=_rbac(ctx) if options.watch_policy_via_api and spec.gateway.enabled else [],
    )


MAX_POLICY_BYTES = 1_000_000
"""A ConfigMap holds at most 1 MiB; leave room for metadata."""


def _check_policy(server: MCPServer, namespace: str, policy: PolicyDocument) -> None:
    """Fail closed: a sidecar must never be handed another server's policy, or a truncated one."""
    if policy.server.name != server.name or (policy.server.namespace and policy.server.namespace != namespace):
        raise RenderError(
            f"the policy document is for {policy.server.namespace}/{policy.server.name}, not "
            f"{namespace}/{server.name}: compile it from this server"
        )
    size = len(policy.to_json())
    if size > MAX_POLICY_BYTES:
        raise RenderError(
            f"the policy of {server.name} is {size} bytes, more than a ConfigMap holds ({MAX_POLICY_BYTES}): "
            "delete expired or revoked sessions and disabled grants"
        )


def _replica_split(server: MCPServer, options: RenderOptions) -> tuple[int, int | None]:
    """(stable replicas, canary replicas or None when there is no canary Deployment)."""
    spec = server.spec
    if spec.rollout is None or spec.rollout.strategy != RolloutStrategy.canary:
        return spec.replicas, None
    wanted = spec.rollout.canary_replicas
    canary = min(options.default_canary_replicas if wanted is None else wanted, spec.replicas)
    return spec.replicas - canary, canary


def _policy_configmap(ctx: RenderContext, policy: PolicyDocument) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_metadata(ctx, policy_configmap_name(ctx.server.name),
                              annotations={ANNOTATION_POLICY_REVISION: policy.revision}),
        "data": {POLICY_KEY: policy.to_json().decode("utf-8"), **remote_ca_data(ctx.server)},
    }


def _rollout_strategy(ctx: RenderContext) -> Manifest:
    rollout = ctx.server.spec.rollout
    if rollout is not None and rollout.strategy == RolloutStrategy.recreate:
        return {"type": "Recreate"}
    rolling: Manifest = {}
    if rollout is not None and rollout.max_surge is not None:
        rolling["maxSurge"] = rollout.max_surge
    if rollout is not None and rollout.max_unavailable is not None:
        rolling["maxUnavailable"] = rollout.max_unavailable
    return {"type": "RollingUpdate", "rollingUpdate": rolling} if rolling else {"type": "RollingUpdate"}


def _deployment(ctx: RenderContext, policy: PolicyDocument, track: str, replicas: int, image: str) -> Manifest:
    name = ctx.name if track == TRACK_STABLE else object_name(ctx.server.name, "-canary")
    labels = {**ctx.labels, LABEL_TRACK: track}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_metadata(ctx, name, labels=labels),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": ctx.options.revision_history_limit,
            "selector": {"matchLabels": selector_labels(ctx.server, track)},
            "strategy": _rollout_strategy(ctx),
            "template": pod_template(ctx, policy, labels, image),
        },
    }


def _service(ctx: RenderContext) -> Manifest:
    spec = ctx.server.spec
    target = spec.gateway.port if spec.gateway.enabled else spec.port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_metadata(ctx, ctx.name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(ctx.server),
            "ports": [{"name": "http", "port": spec.service_port, "targetPort": target, "protocol": "TCP"}],
        },
    }


def _ingress(ctx: RenderContext) -> Manifest:
    spec = ctx.server.spec
    options = ctx.options
    annotations = dict(options.ingress_annotations)
    if options.tls_enabled and options.tls_cluster_issuer:
        annotations["cert-manager.io/cluster-issuer"] = options.tls_cluster_issuer
    elif options.tls_enabled and options.tls_issuer:
        annotations["cert-manager.io/issuer"] = options.tls_issuer
    rule: Manifest = {"http": {"paths": [{
        "path": ctx.path,
        "pathType": "Prefix",
        "backend": {"service": {"name": ctx.name, "port": {"number": spec.service_port}}},
    }]}}
    if spec.ingress_host:
        rule = {"host": spec.ingress_host, **rule}
    ingress_spec: Manifest = {"ingressClassName": spec.ingress_class or "traefik", "rules": [rule]}
    if options.tls_enabled:
        tls: Manifest = {"secretName": options.tls_secret_name or object_name(ctx.server.name, "-tls")}
        if spec.ingress_host:
            tls = {"hosts": [spec.ingress_host], **tls}
        ingress_spec["tls"] = [tls]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": object_metadata(ctx, ctx.name, annotations=annotations),
        "spec": ingress_spec,
    }


def _rbac(ctx: RenderContext) -> list[Manifest]:
    """ServiceAccount + Role (get/list/watch on the one policy ConfigMap) + RoleBinding for the sidecar."""
    account = gateway_service_account_name(ctx.server.name)
    role = object_name(ctx.server.name, "-policy-reader")
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": object_metadata(ctx, account),
         "automountServiceAccountToken": False},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": object_metadata(ctx, role),
         "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                    "resourceNames": [policy_configmap_name(ctx.server.name)],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": object_metadata(ctx, role),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ctx.namespace}]},
    ]


def render_jwks_configmap(jwks: Mapping[str, Any], namespace: str, options: RenderOptions | None = None) -> Manifest:
    """The ConfigMap with the platform's public keys that every gateway in `namespace` mounts."""
    options = options or RenderOptions()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": options.jwks_configmap, "namespace": namespace,
                     "labels": {**options.labels, LABEL_MANAGED_BY: MANAGED_BY}},
        "data": {options.jwks_key: json.dumps(jwks, sort_keys=True, separators=(",", ":"))},
    }
