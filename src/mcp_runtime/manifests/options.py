"""What the caller (podman runtime or operator) decides that an MCPServer does not say.

Every field has a default that renders a working, locked-down server; the operator fills in its
cluster facts (registry host, ingest URL, owner reference), the podman runtime its local ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from mcp_runtime.resources import MCPServer

DEFAULT_GATEWAY_IMAGE = "localhost/mcp-runtime:latest"
DEFAULT_JWKS_CONFIGMAP = "mcp-runtime-jwks"
DEFAULT_POLICY_MOUNT_DIR = "/etc/mcp-runtime/policy"
DEFAULT_JWKS_MOUNT_DIR = "/etc/mcp-runtime/jwks"
DEFAULT_INGEST_KEY_MOUNT_DIR = "/etc/mcp-runtime/ingest"
DEFAULT_NONROOT_UID = 65532
OAUTH_ISSUER_PATH = "/api/v1/oauth"
"""Where the platform's OAuth authorization server lives under its public URL (its issuer)."""

ImagePullPolicy = Literal["Always", "IfNotPresent", "Never"]


def _frozen(data: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(data))


@dataclass(frozen=True)
class SecretKey:
    """One key of a Secret in the server's namespace."""

    name: str
    key: str


@dataclass(frozen=True)
class OwnerReference:
    """The owner of every rendered object, so deleting the MCPServer deletes them (operator only)."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool = True
    block_owner_deletion: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": self.controller,
            "blockOwnerDeletion": self.block_owner_deletion,
        }


def owner_reference_for(server: MCPServer) -> OwnerReference:
    """The owner reference of an MCPServer read from the API (it must carry its `metadata.uid`)."""
    if not server.metadata.uid:
        raise ValueError(f"MCPServer {server.name!r} has no metadata.uid: read it from the API server first")
    return OwnerReference(api_version=server.api_version, kind=server.kind, name=server.name,
                          uid=server.metadata.uid)


@dataclass(frozen=True)
class RenderOptions:
    """Options of `render_server`. Defaults render a locked-down server with its gateway sidecar.

    Attributes:
        gateway_image: the platform image whose entrypoint has `mcp-runtime`; runs the sidecar.
        gateway_command: the executable (and leading args) that starts the CLI in `gateway_image`.
        registry_host: prefixed to short app image names (`acme/payments:v1` ->
            `<registry_host>/acme/payments:v1`); references that name a host are kept.
        image_pull_policy: for both containers; None leaves the Kubernetes default. The podman runtime
            uses `IfNotPresent` so locally built images are used.
        default_namespace: namespace for a server whose metadata has none.
        ingest_url: the Sentinel ingest endpoint (the operator's `MCP_SENTINEL_INGEST_URL`);
            `spec.analytics.ingestURL` wins. Analytics is on when the gateway is on, the server did not
            opt out and an ingest URL is known.
        otlp_endpoint: where every gateway sidecar exports its traces (`gateway run --otlp-endpoint`; the
            operator's `MCP_RUNTIME_OTLP_ENDPOINT`, docs/observability.md); None: tracing off.
        ingest_key_secret: the namespace-local Secret key holding the ingest API key;
            `spec.analytics.apiKeySecretRef` wins. Without one the gateway sends events unauthenticated
            and ingest rejects them with 401, as the publish guide warns.
        ingest_key_mount_dir: where that Secret is mounted read-only in the sidecar.
        approvals_url: where a sidecar holds calls for a person's approval (the platform API's
            `/api/v1/ingest/approvals`, the operator's `MCP_PLATFORM_APPROVALS_URL`), passed as
            `--approvals-url` with the ingest key; unset, the gateway derives it from the ingest URL.
        public_url: the base URL clients reach servers at (`https://mcp.example.com`; `up`'s own URL for
            podman). With `oauth_issuer`, each sidecar is an OAuth protected resource: its resource URI
            is this URL plus the server's path (`https://<spec.ingressHost><path>` when the server has a
            host), passed as `--resource-url`, so it serves RFC 9728 metadata and names it in every 401.
        oauth_issuer: the platform's authorization server (`<platform URL>/api/v1/oauth`), passed as
            `--authorization-server`; None renders no OAuth flags.
        jwks_configmap: the ConfigMap (in the server's namespace) with `jwks.json`, the platform's public
            signing keys; the operator copies it into each team namespace.
        jwks_key: the key of that ConfigMap holding the JWKS.
        policy_mount_dir: where the policy ConfigMap is mounted (`<dir>/policy.json`).
        jwks_mount_dir: where the JWKS ConfigMap is mounted (`<dir>/jwks.json`). It is a separate
            directory because each ConfigMap volume owns its mount point, and both must stay live
            mounts (no subPath) so key rotation and policy changes reach the running sidecar.
        owner_reference: set by the operator so deletes cascade; None for podman.
        labels: extra labels on every object and pod; the standard labels win on conflicts.
        restart_on_policy_change: put the policy revision on the pod template, so a policy change rolls
            the pods. Off by default: the gateway hot-reloads the mounted (or watched) ConfigMap.
        watch_policy_via_api: the sidecar watches its policy ConfigMap through the Kubernetes API (a
            revocation then lands in well under a second, not after the kubelet's mount sync). Renders
            a ServiceAccount, a Role with get/list/watch on that one ConfigMap (list and watch are
            authorized per name when the request carries `fieldSelector=metadata.name=<name>`), and a
            RoleBinding (`.rbac`); projects that account's token into the sidecar only (the pod keeps
            `automountServiceAccountToken: false`, so the app never holds it) and passes
            `--policy-configmap <namespace>/<name>`. The file mount stays as the fallback.
        ingress_enabled: render an Ingress (the podman runtime has none).
        ingress_annotations: extra Ingress annotations (e.g. Traefik entrypoints or middlewares).
        tls_enabled: add a TLS block to the Ingress, secret `tls_secret_name` or `<server>-tls`.
        tls_cluster_issuer / tls_issuer: cert-manager annotation that issues that secret.
        run_as_user / run_as_group: pod-wide numeric user; `runAsNonRoot` cannot check an image whose
            USER is a name (distroless `nonroot`), so a numeric one is set by default. None keeps the
            image's USER (then it must be numeric and not 0).
        gateway_port_name / app_port_name: container port names (at most 15 characters).
        gateway_resources: requests and limits of the sidecar.
        app_default_resources: used when `spec.resources` is absent (None renders none; a team
            namespace's LimitRange then supplies defaults).
        revision_history_limit: old ReplicaSets kept per Deployment.
        canary_stable_image: with `rollout.strategy: Canary`, the image the stable Deployment keeps
            running while the canary runs the new one. The operator reads it from the live stable
            Deployment; None (first deploy, or promotion) runs the new image on both tracks.
        default_canary_replicas: canary size when `rollout.canaryReplicas` is not set (capped at
            `replicas`).
    """

    gateway_image: str = DEFAULT_GATEWAY_IMAGE
    gateway_command: tuple[str, ...] = ("mcp-runtime",)
    registry_host: str | None = None
    image_pull_policy: ImagePullPolicy | None = None
    default_namespace: str = "mcp-servers"
    ingest_url: str | None = None
    approvals_url: str | None = None
    otlp_endpoint: str | None = None
    ingest_key_secret: SecretKey | None = None
    ingest_key_mount_dir: str = DEFAULT_INGEST_KEY_MOUNT_DIR
    public_url: str | None = None
    oauth_issuer: str | None = None
    jwks_configmap: str = DEFAULT_JWKS_CONFIGMAP
    jwks_key: str = "jwks.json"
    policy_mount_dir: str = DEFAULT_POLICY_MOUNT_DIR
    jwks_mount_dir: str = DEFAULT_JWKS_MOUNT_DIR
    owner_reference: OwnerReference | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    restart_on_policy_change: bool = False
    watch_policy_via_api: bool = False
    ingress_enabled: bool = True
    ingress_annotations: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    tls_enabled: bool = False
    tls_secret_name: str | None = None
    tls_cluster_issuer: str | None = None
    tls_issuer: str | None = None
    run_as_user: int | None = DEFAULT_NONROOT_UID
    run_as_group: int | None = DEFAULT_NONROOT_UID
    gateway_port_name: str = "gateway"
    app_port_name: str = "mcp"
    gateway_resources: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({
        "requests": _frozen({"cpu": "50m", "memory": "64Mi"}),
        "limits": _frozen({"memory": "256Mi"}),
    }))
    app_default_resources: Mapping[str, Mapping[str, str]] | None = None
    revision_history_limit: int = 3
    canary_stable_image: str | None = None
    default_canary_replicas: int = 1


@dataclass(frozen=True)
class TeamNamespaceOptions:
    """Options of `render_team_namespace`.

    Attributes:
        ingress_controller_namespace: the only other namespace whose pods may connect to the team's pods
            (Traefik's; `kube-system` on k3s).
        allow_from_namespaces: further namespaces allowed in (e.g. the monitoring namespace that scrapes
            the gateways' `/metrics`).
        owner_group / member_group: the Kubernetes groups bound to the team ClusterRoles; default
            `mcp-runtime:team:<slug>:owner` and `...:member` (what the platform puts in user
            credentials / impersonation).
        resource_quota: the namespace's ResourceQuota `hard` limits.
        limit_range_default / limit_range_default_request: per-container defaults for containers that do
            not say (required for quota accounting of cpu and memory).
        pod_security: Pod Security Admission level enforced on the namespace; rendered servers comply
            with `restricted`.
        labels: extra labels on every object.
    """

    ingress_controller_namespace: str = "traefik"
    allow_from_namespaces: tuple[str, ...] = ()
    owner_group: str | None = None
    member_group: str | None = None
    resource_quota: Mapping[str, str] = field(default_factory=lambda: _frozen({
        "requests.cpu": "8",
        "requests.memory": "16Gi",
        "limits.cpu": "16",
        "limits.memory": "32Gi",
        "pods": "100",
        "services": "50",
        "configmaps": "200",
        "secrets": "200",
        "persistentvolumeclaims": "0",
    }))
    limit_range_default: Mapping[str, str] = field(default_factory=lambda: _frozen({"cpu": "500m",
                                                                                    "memory": "512Mi"}))
    limit_range_default_request: Mapping[str, str] = field(default_factory=lambda: _frozen({"cpu": "50m",
                                                                                            "memory": "64Mi"}))
    pod_security: Literal["restricted", "baseline", "privileged"] = "restricted"
    labels: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
