"""The platform's own objects in a cluster (what `setup` applies and the Helm chart templates).

Namespace `mcp-runtime`: the operator (ServiceAccount, ClusterRole, binding, Deployment), the platform
API + dashboard, Sentinel ingest (the same image, scaled on its own), the bundled registry (CNCF
distribution), the team ClusterRoles, and Ingresses for `platform.<domain>` and `registry.<domain>`.
PostgreSQL, ClickHouse and NATS are external: their URLs come from Secrets / values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mcp_runtime.manifests import render_cluster_roles
from mcp_runtime.manifests.options import OAUTH_ISSUER_PATH
from mcp_runtime.resources import API_GROUP, ORG_NAMESPACE, PUBLIC_NAMESPACE
from mcp_runtime.resources.crd import render_crds

Manifest = dict[str, Any]

SYSTEM_NAMESPACE = "mcp-runtime"
OPERATOR = "mcp-runtime-operator"
API = "mcp-runtime-api"
INGEST = "mcp-sentinel-ingest"
REGISTRY = "mcp-registry"
DATABASE_SECRET = "mcp-runtime-database"
INGEST_KEY_SECRET = "mcp-sentinel-ingest-key"
JWKS_CONFIGMAP = "mcp-runtime-jwks"
PART_OF = {"app.kubernetes.io/part-of": "mcp-runtime", "app.kubernetes.io/managed-by": "mcp-runtime"}

RegistryMode = Literal["bundled-http", "bundled-https", "external"]
IngressMode = Literal["traefik", "none"]
PlatformMode = Literal["tenant", "none"]


@dataclass(frozen=True)
class PlatformConfig:
    """What `setup` installs. Field names follow the `MCP_SETUP_*` env-file keys."""

    domain: str = "mcpruntime.local"
    namespace: str = SYSTEM_NAMESPACE
    image: str = "ghcr.io/mcp-runtime/mcp-runtime:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    registry_image: str = "docker.io/library/registry:2"
    with_tls: bool = False
    tls_cluster_issuer: str | None = None
    acme_email: str | None = None
    registry_mode: RegistryMode = "bundled-http"
    external_registry: str | None = None
    platform_mode: PlatformMode = "tenant"
    ingress: IngressMode = "traefik"
    ingress_class: str = "traefik"
    with_sentinel: bool = True
    test_mode: bool = False
    skip_cert_manager_install: bool = False
    clickhouse_url: str | None = None
    nats_url: str | None = None
    registry_storage: str = "10Gi"
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def platform_host(self) -> str:
        return f"platform.{self.domain}"

    def url_of(self, host: str) -> str:
        return f"{'https' if self.with_tls else 'http'}://{host}"

    @property
    def mcp_host(self) -> str:
        return f"mcp.{self.domain}"

    @property
    def registry_host(self) -> str | None:
        if self.registry_mode == "external":
            return self.external_registry
        if self.registry_mode == "bundled-https" and self.ingress != "none":
            return f"registry.{self.domain}"
        return f"{REGISTRY}.{self.namespace}.svc:5000"

    @property
    def issuer(self) -> str | None:
        """The ClusterIssuer Ingresses use: the given one, or `letsencrypt` created from --acme-email."""
        if not self.with_tls:
            return None
        return self.tls_cluster_issuer or ("letsencrypt" if self.acme_email else None)

    @property
    def ingest_url(self) -> str:
        return f"http://{INGEST}.{self.namespace}.svc/api/v1/ingest/events"


def _meta(name: str, config: PlatformConfig, component: str) -> Manifest:
    return {"name": name, "namespace": config.namespace,
            "labels": {**PART_OF, "app.kubernetes.io/name": name, "app.kubernetes.io/component": component}}


def _security() -> Manifest:
    return {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]}}


def _deployment(name: str, config: PlatformConfig, component: str, container: Manifest, *,
                service_account: str | None = None, replicas: int = 1,
                volumes: list[Manifest] | None = None) -> Manifest:
    selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "mcp-runtime"}
    pod_spec: Manifest = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"imagePullPolicy": config.image_pull_policy, "securityContext": _security(), **container}],
        "automountServiceAccountToken": service_account is not None,
    }
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    if volumes:
        pod_spec["volumes"] = volumes
    meta = _meta(name, config, component)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                     "template": {"metadata": {"labels": meta["labels"]}, "spec": pod_spec}}}


def _service(name: str, config: PlatformConfig, component: str, port: int, target: int) -> Manifest:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, config, component),
            "spec": {"selector": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "mcp-runtime"},
                     "ports": [{"name": "http", "port": port, "targetPort": target, "protocol": "TCP"}]}}


def _ingress(name: str, config: PlatformConfig, component: str, host: str, service: str, port: int) -> Manifest:
    meta = _meta(name, config, component)
    spec: Manifest = {"ingressClassName": config.ingress_class, "rules": [{"host": host, "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"number": port}}}}]}}]}
    if config.with_tls:
        spec["tls"] = [{"hosts": [host], "secretName": f"{name}-tls"}]
        if config.issuer:
            meta["annotations"] = {"cert-manager.io/cluster-issuer": config.issuer}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def _http_probe(port: int, path: str) -> Manifest:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": 10, "timeoutSeconds": 2}


def operator_cluster_role() -> Manifest:
    """What the operator may do: its CRDs, the objects it renders, and events."""
    rules = [
        {"apiGroups": [API_GROUP], "resources": ["mcpservers", "mcpaccessgrants", "mcpagentsessions",
                                                 "mcpvirtualservers"],
         "verbs": ["get", "list", "watch", "patch", "update"]},
        {"apiGroups": [API_GROUP], "resources": ["mcpservers/status", "mcpaccessgrants/status",
                                                 "mcpagentsessions/status", "mcpvirtualservers/status"],
         "verbs": ["get", "patch", "update"]},
        {"apiGroups": [""], "resources": ["configmaps", "services", "serviceaccounts"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["apps"], "resources": ["deployments"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        # NetworkPolicies: a virtual server's gateway is admitted to each member's app port (manifests/virtual.py).
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        # It grants each sidecar get/list/watch on its own ConfigMap, so it must hold those verbs itself.
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
         "verbs": ["get", "list", "watch"]},
    ]
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": OPERATOR, "labels": dict(PART_OF)}, "rules": rules}


def render_platform(config: PlatformConfig) -> list[Manifest]:
    """Every object `setup` applies, in apply order (CRDs and namespace first)."""
    objects: list[Manifest] = list(render_crds().values())
    objects.append({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": config.namespace, "labels": dict(PART_OF)}})
    for catalog in (ORG_NAMESPACE, PUBLIC_NAMESPACE):  # servers published with scope org / public
        objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": catalog, "labels": {
            **PART_OF, "pod-security.kubernetes.io/enforce": "restricted"}}})
    for part in (_operator_objects, _platform_objects, _registry_objects, _issuer_objects):
        objects.extend(part(config))
    return objects


def _operator_objects(config: PlatformConfig) -> list[Manifest]:
    """The operator: its cluster role, service account and Deployment, with the env that shapes every sidecar."""
    objects: list[Manifest] = []
    objects.extend(render_cluster_roles())
    objects.append(operator_cluster_role())
    objects.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(OPERATOR, config, "operator")})
    objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": OPERATOR, "labels": dict(PART_OF)},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": OPERATOR},
                    "subjects": [{"kind": "ServiceAccount", "name": OPERATOR, "namespace": config.namespace}]})
    operator_env = [
        {"name": "MCP_OPERATOR_GATEWAY_IMAGE", "value": config.image},
        {"name": "MCP_OPERATOR_JWKS_CONFIGMAP", "value": f"{config.namespace}/{JWKS_CONFIGMAP}"},
        {"name": "MCP_OPERATOR_WATCH_POLICY_VIA_API", "value": "1"},
    ]
    if config.registry_host:
        operator_env.append({"name": "MCP_REGISTRY_HOST", "value": config.registry_host})
    if config.with_sentinel and config.platform_mode != "none":  # no ingest runs without the platform
        operator_env += [{"name": "MCP_SENTINEL_INGEST_URL", "value": config.ingest_url},
                         {"name": "MCP_SENTINEL_INGEST_KEY_SECRET", "value": f"{INGEST_KEY_SECRET}:api-key"},
                         {"name": "MCP_PLATFORM_APPROVALS_URL",
                          "value": f"http://{API}.{config.namespace}.svc/api/v1/ingest/approvals"}]
    if config.issuer:
        operator_env.append({"name": "MCP_OPERATOR_TLS_CLUSTER_ISSUER", "value": config.issuer})
    if config.platform_mode != "none" and config.with_tls:
        # sidecars are OAuth resources of the platform's authorization server (on only with https, RFC 8414)
        operator_env += [{"name": "MCP_OPERATOR_PUBLIC_URL", "value": config.url_of(config.mcp_host)},
                         {"name": "MCP_OPERATOR_OAUTH_ISSUER",
                          "value": config.url_of(config.platform_host) + OAUTH_ISSUER_PATH}]
    objects.append(_deployment(OPERATOR, config, "operator", {
        "name": "operator", "image": config.image, "command": ["mcp-runtime"],
        "args": ["operator", "run", "--liveness", "http://0.0.0.0:8080/healthz"],
        "env": operator_env, "ports": [{"name": "health", "containerPort": 8080}],
        "livenessProbe": _http_probe(8080, "/healthz"),
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    }, service_account=OPERATOR))
    return objects


def _platform_objects(config: PlatformConfig) -> list[Manifest]:
    """The platform API (and the ingest, when analytics are on), unless --platform-mode none."""
    objects: list[Manifest] = []
    if config.platform_mode == "none":
        return objects
    api_env: list[Manifest] = [
        {"name": "MCP_RUNTIME_DATABASE_URL",
         "valueFrom": {"secretKeyRef": {"name": DATABASE_SECRET, "key": "url", "optional": config.test_mode}}},
        {"name": "MCP_RUNTIME_PLATFORM_DOMAIN", "value": config.domain},
        # MCP authorization: the platform is the OAuth authorization server of the servers at mcp.<domain>
        {"name": "MCP_RUNTIME_PUBLIC_URL", "value": config.url_of(config.platform_host)},
        {"name": "MCP_RUNTIME_SERVERS_URL", "value": config.url_of(config.mcp_host)},
        # the key gateways send to ingest: the same Secret the operator mounts into sidecars
        {"name": "MCP_RUNTIME_INGEST_API_KEY",
         "valueFrom": {"secretKeyRef": {"name": INGEST_KEY_SECRET, "key": "api-key", "optional": True}}},
    ]
    if config.clickhouse_url:
        api_env.append({"name": "MCP_SENTINEL_CLICKHOUSE_URL", "value": config.clickhouse_url})
    if config.nats_url:
        api_env.append({"name": "MCP_SENTINEL_NATS_URL", "value": config.nats_url})
    api_env += [{"name": k, "value": v} for k, v in sorted(config.extra_env.items())]
    serve = {"image": config.image, "command": ["mcp-runtime"],
             "args": ["platform", "serve", "--host", "0.0.0.0", "--port", "8080", "--data-dir", "/data"],
             "env": api_env, "ports": [{"name": "http", "containerPort": 8080}],
             "readinessProbe": _http_probe(8080, "/api/v1/healthz"),
             "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}],
             "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}}
    volumes = [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    objects.append(_deployment(API, config, "api", {"name": "api", **serve}, volumes=volumes))
    objects.append(_service(API, config, "api", 80, 8080))
    if config.ingress != "none":
        objects.append(_ingress(API, config, "api", config.platform_host, API, 80))
    if config.with_sentinel:
        objects.append(_deployment(INGEST, config, "ingest", {"name": "ingest", **serve}, volumes=volumes))
        objects.append(_service(INGEST, config, "ingest", 80, 8080))
    return objects


def _registry_objects(config: PlatformConfig) -> list[Manifest]:
    """The bundled image registry, unless the registry is external."""
    objects: list[Manifest] = []
    if config.registry_mode == "external":
        return objects
    storage: Manifest = {"name": "storage", "emptyDir": {}}
    if not config.test_mode:
        objects.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": _meta(REGISTRY, config, "registry"),
                        "spec": {"accessModes": ["ReadWriteOnce"],
                                 "resources": {"requests": {"storage": config.registry_storage}}}})
        storage = {"name": "storage", "persistentVolumeClaim": {"claimName": REGISTRY}}
    objects.append(_deployment(REGISTRY, config, "registry", {
        "name": "registry", "image": config.registry_image,
        "env": [{"name": "REGISTRY_HTTP_ADDR", "value": "0.0.0.0:5000"},
                {"name": "REGISTRY_STORAGE_DELETE_ENABLED", "value": "true"}],
        "ports": [{"name": "registry", "containerPort": 5000}],
        "readinessProbe": _http_probe(5000, "/v2/"),
        "volumeMounts": [{"name": "storage", "mountPath": "/var/lib/registry"}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
    }, volumes=[storage]))
    objects.append(_service(REGISTRY, config, "registry", 5000, 5000))
    if config.registry_mode == "bundled-https" and config.ingress != "none":
        objects.append(_ingress(REGISTRY, config, "registry", f"registry.{config.domain}", REGISTRY, 5000))
    return objects


def _issuer_objects(config: PlatformConfig) -> list[Manifest]:
    """A Let's Encrypt ClusterIssuer when TLS is on, an ACME email is given and no issuer is named."""
    objects: list[Manifest] = []
    if not config.with_tls or not config.acme_email or config.tls_cluster_issuer:
        return objects
    objects.append({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                    "metadata": {"name": "letsencrypt", "labels": dict(PART_OF)},
                    "spec": {"acme": {"email": config.acme_email,
                                      "server": "https://acme-v02.api.letsencrypt.org/directory",
                                      "privateKeySecretRef": {"name": "letsencrypt-account"},
                                      "solvers": [{"http01": {"ingress": {"ingressClassName":
                                                                          config.ingress_class}}}]}}})
    return objects


def render_foundation(config: PlatformConfig) -> list[Manifest]:
    """What `cluster init` applies: the CRDs and the platform's namespaces (the first objects `setup` applies),
    so resources can be created and RBAC granted before the platform itself is installed."""
    return [o for o in render_platform(config) if o["kind"] in ("CustomResourceDefinition", "Namespace")]
