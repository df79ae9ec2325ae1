"""The cluster's ingress controller (`cluster config --ingress traefik`).

Servers and the platform are reached through Ingresses of class `traefik` (the renderer's default, and what
team NetworkPolicies admit from namespace `traefik`). This module renders a minimal Traefik v3 install for
that class, Kubernetes Ingress provider only, and applies it, unless a Traefik the platform did not install
already runs (k3s ships one in `kube-system`): then it only makes sure the IngressClass exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp_runtime.kube.client import KubeClient
from mcp_runtime.kube.platform import PART_OF

Manifest = dict[str, Any]

TRAEFIK_IMAGE = "docker.io/library/traefik:v3.7.13"
TRAEFIK_CONTROLLER = "traefik.io/ingress-controller"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
SERVICE_TYPES = ("LoadBalancer", "NodePort", "ClusterIP")


@dataclass(frozen=True)
class TraefikOptions:
    namespace: str = "traefik"
    ingress_class: str = "traefik"
    image: str = TRAEFIK_IMAGE
    service_type: str = "LoadBalancer"
    default_class: bool = False

    @property
    def cluster_name(self) -> str:
        """Name of the cluster-scoped RBAC objects: one controller per IngressClass."""
        return f"mcp-runtime-ingress-{self.ingress_class}"


def _meta(name: str, opts: TraefikOptions, *, namespaced: bool = True) -> Manifest:
    meta: Manifest = {"name": name, "labels": {**PART_OF, "app.kubernetes.io/name": "traefik",
                                               "app.kubernetes.io/component": "ingress-controller"}}
    if namespaced:
        meta["namespace"] = opts.namespace
    return meta


def ingress_class(opts: TraefikOptions) -> Manifest:
    meta = _meta(opts.ingress_class, opts, namespaced=False)
    if opts.default_class:
        meta["annotations"] = {DEFAULT_CLASS_ANNOTATION: "true"}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": meta,
            "spec": {"controller": TRAEFIK_CONTROLLER}}


def render_traefik(opts: TraefikOptions) -> list[Manifest]:
    """Namespace, RBAC (read Services, EndpointSlices, Secrets, Ingresses; write Ingress status),
    Deployment (non-root, read-only root filesystem) and Service, plus the IngressClass, in apply order."""
    selector = {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": opts.ingress_class}
    rules = [
        {"apiGroups": [""], "resources": ["services", "secrets", "nodes"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        {"apiGroups": ["networking.k8s.io", "extensions"], "resources": ["ingresses", "ingressclasses"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["networking.k8s.io", "extensions"], "resources": ["ingresses/status"], "verbs": ["update"]},
    ]
    args = ["--entryPoints.web.address=:8000", "--entryPoints.websecure.address=:8443",
            "--entryPoints.websecure.http.tls=true", "--ping=true", "--providers.kubernetesingress=true",
            f"--providers.kubernetesingress.ingressClass={opts.ingress_class}",
            "--providers.kubernetesingress.ingressEndpoint.publishedService="
            f"{opts.namespace}/traefik", "--log.level=INFO"]
    probe = {"httpGet": {"path": "/ping", "port": 8080}, "periodSeconds": 10, "timeoutSeconds": 2}
    container = {
        "name": "traefik", "image": opts.image, "args": [*args, "--entryPoints.traefik.address=:8080"],
        "ports": [{"name": "web", "containerPort": 8000}, {"name": "websecure", "containerPort": 8443},
                  {"name": "traefik", "containerPort": 8080}],
        "readinessProbe": probe, "livenessProbe": probe,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    labels = {**_meta("traefik", opts)["labels"], **selector}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(opts.namespace, opts, namespaced=False)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("traefik", opts)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": _meta(opts.cluster_name, opts, namespaced=False), "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": _meta(opts.cluster_name, opts, namespaced=False),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": opts.cluster_name},
         "subjects": [{"kind": "ServiceAccount", "name": "traefik", "namespace": opts.namespace}]},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta("traefik", opts),
         "spec": {"replicas": 1, "selector": {"matchLabels": selector},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"serviceAccountName": "traefik", "containers": [container],
                                        "volumes": [{"name": "tmp", "emptyDir": {}}],
                                        "terminationGracePeriodSeconds": 30}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": _meta("traefik", opts),
         "spec": {"type": opts.service_type, "selector": selector,
                  "ports": [{"name": "web", "port": 80, "targetPort": "web", "protocol": "TCP"},
                            {"name": "websecure", "port": 443, "targetPort": "websecure", "protocol": "TCP"}]}},
        ingress_class(opts),
    ]


def foreign_traefik(client: KubeClient, opts: TraefikOptions) -> str | None:
    """`<namespace>/<deployment>` of a running Traefik the platform did not install (k3s's, a Helm
    release), or None."""
    for namespace in dict.fromkeys((opts.namespace, "traefik", "kube-system")):
        for deployment in client.list("Deployment", namespace):
            meta = deployment["metadata"]
            ours = (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") == PART_OF[
                "app.kubernetes.io/managed-by"]
            if "traefik" in meta["name"] and not ours:
                return f"{namespace}/{meta['name']}"
    return None


def configure_traefik(client: KubeClient, opts: TraefikOptions, *,
                      dry_run: bool = False) -> tuple[str | None, list[tuple[str, Manifest]]]:
    """Apply the Traefik install (or, next to a foreign Traefik, only a missing IngressClass); returns
    the foreign Traefik (or None) and (action, object) per object: created / updated / unchanged / kept /
    would apply."""
    existing = foreign_traefik(client, opts)
    objects = [ingress_class(opts)] if existing else render_traefik(opts)
    results = []
    for obj in objects:
        if obj["kind"] == "IngressClass":
            live = client.get("IngressClass", obj["metadata"]["name"])
            if live is not None and (live.get("spec") or {}).get("controller") != TRAEFIK_CONTROLLER:
                raise ValueError(f"IngressClass {obj['metadata']['name']} belongs to controller "
                                 f"{(live.get('spec') or {}).get('controller')}, not Traefik")
            if live is not None and existing:
                results.append(("kept", live))
                continue
        if dry_run:
            results.append(("would apply", obj))
            continue
        action, applied = client.apply(obj)
        results.append((action, applied))
    return existing, results
