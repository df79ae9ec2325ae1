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

from mcp_runtime.policy import PolicyDocument
from mcp_runtime.resources import MCPServer, RolloutStrategy
from mcp_runtime.runtime.render.names import label_value, object_name, qualify_image
from mcp_runtime.runtime.render.options import RenderOptions, SecretKey

Manifest = dict[str, Any]

APP_CONTAINER = "mcp-server"
GATEWAY_CONTAINER = "mcp-gateway"
POLICY_KEY = "policy.json"
INGEST_KEY_FILE = "api-key"
MANAGED_BY = "mcp-runtime"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_SERVER = "mcpruntime.org/server"
LABEL_TEAM = "mcpruntime.org/team"
LABEL_TRACK = "mcpruntime.org/track"
ANNOTATION_TEAM_ID = "mcpruntime.org/team-id"
ANNOTATION_POLICY_REVISION = "mcpruntime.org/policy-revision"
ANNOTATION_IMAGE = "mcpruntime.org/image"

RESERVED_ENV = ("PORT", "MCP_PATH")
"""Set from `spec.port` and `spec.ingressPath`; the probes, the sidecar and the route depend on them."""

TRACK_STABLE = "stable"
TRACK_CANARY = "canary"


class RenderError(ValueError):
    """The server cannot be rendered as asked; the message says which field to change."""


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


@dataclass(frozen=True)
class _Ctx:
    """Values derived once per render and shared by the object builders."""

    server: MCPServer
    options: RenderOptions
    name: str
    namespace: str
    path: str
    labels: dict[str, str]
    annotations: dict[str, str]


def server_labels(server: MCPServer, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The standard labels of every object of a server (team label only when it has a team)."""
    labels = dict(extra or {})
    labels.update({
        LABEL_NAME: label_value(server.name),
        LABEL_INSTANCE: label_value(server.name),
        LABEL_COMPONENT: "mcp-server",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_SERVER: label_value(server.name),
    })
    if server.spec.team_id:
        labels[LABEL_TEAM] = label_value(server.spec.team_id)
    return labels


def selector_labels(server: MCPServer, track: str | None = None) -> dict[str, str]:
    """Labels the Service (all tracks) and each Deployment (its track) select on. Never change them:
    Deployment selectors are immutable."""
    selector = {LABEL_INSTANCE: label_value(server.name), LABEL_SERVER: label_value(server.name)}
    if track is not None:
        selector[LABEL_TRACK] = track
    return selector


def render_server(server: MCPServer, policy: PolicyDocument, options: RenderOptions | None = None) -> RenderedServer:
    """Render the Deployment(s), Service, Ingress, policy ConfigMap and optional RBAC of a server."""
    options = options or RenderOptions()
    spec = server.spec
    path = spec.ingress_path or f"/{spec.public_path_prefix or server.name}/mcp"
    env_names = {e.name for e in spec.env_vars} | {e.name for e in spec.secret_env_vars}
    clash = sorted(env_names.intersection(RESERVED_ENV))
    if clash:
        raise RenderError(
            f"envVars/secretEnvVars must not set {', '.join(clash)}: the platform sets PORT from spec.port "
            "and MCP_PATH from spec.ingressPath; change those fields instead"
        )
    annotations = {ANNOTATION_TEAM_ID: spec.team_id} if spec.team_id else {}
    ctx = _Ctx(server=server, options=options, name=object_name(server.name),
               namespace=server.namespace or options.default_namespace, path=path,
               labels=server_labels(server, dict(options.labels)), annotations=annotations)
    image = qualify_image(server.image_ref, options.registry_host)

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


def _replica_split(server: MCPServer, options: RenderOptions) -> tuple[int, int | None]:
    """(stable replicas, canary replicas or None when there is no canary Deployment)."""
    spec = server.spec
    if spec.rollout is None or spec.rollout.strategy != RolloutStrategy.canary:
        return spec.replicas, None
    wanted = spec.rollout.canary_replicas
    canary = min(options.default_canary_replicas if wanted is None else wanted, spec.replicas)
    return spec.replicas - canary, canary


def _metadata(ctx: _Ctx, name: str, *, labels: dict[str, str] | None = None,
              annotations: dict[str, str] | None = None) -> Manifest:
    meta: Manifest = {"name": name, "namespace": ctx.namespace, "labels": dict(labels or ctx.labels)}
    merged = {**ctx.annotations, **(annotations or {})}
    if merged:
        meta["annotations"] = merged
    if ctx.options.owner_reference is not None:
        meta["ownerReferences"] = [ctx.options.owner_reference.to_dict()]
    return meta


def policy_configmap_name(server_name: str) -> str:
    return object_name(server_name, "-policy")


def gateway_service_account_name(server_name: str) -> str:
    return object_name(server_name, "-gateway")


def _policy_configmap(ctx: _Ctx, policy: PolicyDocument) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(ctx, policy_configmap_name(ctx.server.name),
                              annotations={ANNOTATION_POLICY_REVISION: policy.revision}),
        "data": {POLICY_KEY: policy.to_json().decode("utf-8")},
    }


def _rollout_strategy(ctx: _Ctx) -> Manifest:
    rollout = ctx.server.spec.rollout
    if rollout is not None and rollout.strategy == RolloutStrategy.recreate:
        return {"type": "Recreate"}
    rolling: Manifest = {}
    if rollout is not None and rollout.max_surge is not None:
        rolling["maxSurge"] = rollout.max_surge
    if rollout is not None and rollout.max_unavailable is not None:
        rolling["maxUnavailable"] = rollout.max_unavailable
    return {"type": "RollingUpdate", "rollingUpdate": rolling} if rolling else {"type": "RollingUpdate"}


def _deployment(ctx: _Ctx, policy: PolicyDocument, track: str, replicas: int, image: str) -> Manifest:
    name = ctx.name if track == TRACK_STABLE else object_name(ctx.server.name, "-canary")
    labels = {**ctx.labels, LABEL_TRACK: track}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(ctx, name, labels=labels),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": ctx.options.revision_history_limit,
            "selector": {"matchLabels": selector_labels(ctx.server, track)},
            "strategy": _rollout_strategy(ctx),
            "template": _pod_template(ctx, policy, labels, image),
        },
    }


def _pod_template(ctx: _Ctx, policy: PolicyDocument, labels: dict[str, str], image: str) -> Manifest:
    spec = ctx.server.spec
    options = ctx.options
    gateway_on = spec.gateway.enabled
    annotations = {**ctx.annotations, "kubectl.kubernetes.io/default-container": APP_CONTAINER,
                   ANNOTATION_IMAGE: image}
    if options.restart_on_policy_change and gateway_on:
        annotations[ANNOTATION_POLICY_REVISION] = policy.revision
    containers = [_app_container(ctx, image)]
    volumes: list[Manifest] = [{"name": "app-tmp", "emptyDir": {}}]
    if gateway_on:
        gateway, gateway_volumes = _gateway_container(ctx)
        containers.append(gateway)
        volumes.extend(gateway_volumes)
    security: Manifest = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if options.run_as_user is not None:
        security["runAsUser"] = options.run_as_user
    if options.run_as_group is not None:
        # fsGroup makes the mounted Secret (mode 0440) readable by the sidecar's group.
        security["runAsGroup"] = options.run_as_group
        security["fsGroup"] = options.run_as_group
    pod_spec: Manifest = {
        "automountServiceAccountToken": bool(options.watch_policy_via_api and gateway_on),
        "enableServiceLinks": False,
        "securityContext": security,
        "containers": containers,
        "volumes": volumes,
    }
    if options.watch_policy_via_api and gateway_on:
        pod_spec["serviceAccountName"] = gateway_service_account_name(ctx.server.name)
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec}


def _container_security() -> Manifest:
    return {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }


def _resources(requirements: Mapping[str, Mapping[str, str]]) -> Manifest:
    """`{limits, requests}` with empty parts left out and keys sorted (stable output)."""
    out: Manifest = {}
    for part in ("limits", "requests"):
        values = requirements.get(part) or {}
        if values:
            out[part] = {k: values[k] for k in sorted(values)}
    return out


def _app_container(ctx: _Ctx, image: str) -> Manifest:
    spec = ctx.server.spec
    options = ctx.options
    env: list[Manifest] = [
        {"name": "PORT", "value": str(spec.port)},
        {"name": "MCP_PATH", "value": ctx.path},
    ]
    if not any(e.name == "HOST" for e in spec.env_vars):
        # The kubelet's TCP probes reach the pod IP, so the app must listen on every interface.
        env.append({"name": "HOST", "value": "0.0.0.0"})
    env.extend({"name": e.name, "value": e.value} for e in spec.env_vars)
    env.extend(
        {"name": e.name, "valueFrom": {"secretKeyRef": {"name": e.secret_key_ref.name, "key": e.secret_key_ref.key}}}
        for e in spec.secret_env_vars
    )
    port_name = options.app_port_name
    container: Manifest = {
        "name": APP_CONTAINER,
        "image": image,
        "ports": [{"name": port_name, "containerPort": spec.port, "protocol": "TCP"}],
        "env": env,
        "readinessProbe": {"tcpSocket": {"port": port_name}, "initialDelaySeconds": 1, "periodSeconds": 5,
                           "timeoutSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {"tcpSocket": {"port": port_name}, "initialDelaySeconds": 10, "periodSeconds": 10,
                          "timeoutSeconds": 2, "failureThreshold": 3},
        "securityContext": _container_security(),
        "volumeMounts": [{"name": "app-tmp", "mountPath": "/tmp"}],
    }
    if options.image_pull_policy:
        container["imagePullPolicy"] = options.image_pull_policy
    requirements: Mapping[str, Mapping[str, str]] | None = options.app_default_resources
    if spec.resources is not None:
        requirements = {"limits": spec.resources.limits, "requests": spec.resources.requests}
    resources = _resources(requirements) if requirements is not None else {}
    if resources:
        container["resources"] = resources
    return container


def _ingest(ctx: _Ctx) -> tuple[str | None, SecretKey | None]:
    """The ingest URL and key Secret when analytics is on for this server, else (None, None)."""
    analytics = ctx.server.spec.analytics
    if analytics is not None and analytics.disabled:
        return None, None
    url = (analytics.ingest_url if analytics else None) or ctx.options.ingest_url
    if not url:
        return None, None
    ref = analytics.api_key_secret_ref if analytics else None
    key = SecretKey(ref.name, ref.key) if ref is not None else ctx.options.ingest_key_secret
    return url, key


def gateway_upstream(server: MCPServer) -> str:
    """Where the sidecar forwards: `spec.gateway.upstreamURL`, else the app on loopback at the route."""
    spec = server.spec
    if spec.gateway.upstream_url:
        return spec.gateway.upstream_url
    path = spec.ingress_path or f"/{spec.public_path_prefix or server.name}/mcp"
    return f"http://127.0.0.1:{spec.port}{path}"


def _gateway_container(ctx: _Ctx) -> tuple[Manifest, list[Manifest]]:
    spec = ctx.server.spec
    options = ctx.options
    policy_dir = options.policy_mount_dir.rstrip("/")
    jwks_dir = options.jwks_mount_dir.rstrip("/")
    args = [
        "gateway", "run",
        "--upstream", gateway_upstream(ctx.server),
        "--policy-file", f"{policy_dir}/{POLICY_KEY}",
        "--jwks-file", f"{jwks_dir}/jwks.json",
        "--listen", f"0.0.0.0:{spec.gateway.port}",
    ]
    if options.watch_policy_via_api:
        args += ["--policy-configmap", f"{ctx.namespace}/{policy_configmap_name(ctx.server.name)}"]
    mounts: list[Manifest] = [
        {"name": "policy", "mountPath": policy_dir, "readOnly": True},
        {"name": "jwks", "mountPath": jwks_dir, "readOnly": True},
        {"name": "gateway-tmp", "mountPath": "/tmp"},
    ]
    volumes: list[Manifest] = [
        {"name": "policy", "configMap": {"name": policy_configmap_name(ctx.server.name),
                                         "items": [{"key": POLICY_KEY, "path": POLICY_KEY}]}},
        {"name": "jwks", "configMap": {"name": options.jwks_configmap,
                                       "items": [{"key": options.jwks_key, "path": "jwks.json"}]}},
        {"name": "gateway-tmp", "emptyDir": {}},
    ]
    ingest_url, ingest_key = _ingest(ctx)
    if ingest_url:
        args += ["--ingest-url", ingest_url]
        if ingest_key is not None:
            ingest_dir = options.ingest_key_mount_dir.rstrip("/")
            args += ["--ingest-key-file", f"{ingest_dir}/{INGEST_KEY_FILE}"]
            mounts.append({"name": "ingest-key", "mountPath": ingest_dir, "readOnly": True})
            volumes.append({"name": "ingest-key", "secret": {
                "secretName": ingest_key.name,
                "defaultMode": 0o440 if options.run_as_group is not None else 0o444,
                "items": [{"key": ingest_key.key, "path": INGEST_KEY_FILE}]}})
    port_name = options.gateway_port_name
    container: Manifest = {
        "name": GATEWAY_CONTAINER,
        "image": options.gateway_image,
        "command": list(options.gateway_command),
        "args": args,
        "ports": [{"name": port_name, "containerPort": spec.gateway.port, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": port_name}, "initialDelaySeconds": 1,
                           "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": port_name}, "initialDelaySeconds": 5,
                          "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3},
        "securityContext": _container_security(),
        "volumeMounts": mounts,
    }
    if options.image_pull_policy:
        container["imagePullPolicy"] = options.image_pull_policy
    resources = _resources(options.gateway_resources)
    if resources:
        container["resources"] = resources
    return container, volumes


def _service(ctx: _Ctx) -> Manifest:
    spec = ctx.server.spec
    target = spec.gateway.port if spec.gateway.enabled else spec.port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(ctx, ctx.name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(ctx.server),
            "ports": [{"name": "http", "port": spec.service_port, "targetPort": target, "protocol": "TCP"}],
        },
    }


def _ingress(ctx: _Ctx) -> Manifest:
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
        "metadata": _metadata(ctx, ctx.name, annotations=annotations),
        "spec": ingress_spec,
    }


def _rbac(ctx: _Ctx) -> list[Manifest]:
    """ServiceAccount + Role (get/list/watch on the one policy ConfigMap) + RoleBinding for the sidecar."""
    account = gateway_service_account_name(ctx.server.name)
    role = object_name(ctx.server.name, "-policy-reader")
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(ctx, account),
         "automountServiceAccountToken": False},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _metadata(ctx, role),
         "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                    "resourceNames": [policy_configmap_name(ctx.server.name)],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _metadata(ctx, role),
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
