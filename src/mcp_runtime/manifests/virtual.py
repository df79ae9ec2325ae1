"""Render one MCPVirtualServer into the Kubernetes objects that serve it (docs/virtual-servers.md).

A virtual server V in namespace N gets a gateway Deployment of its own (`<V>-virtual-gateway`, the
platform image running `mcp-runtime gateway virtual`) that governs every member call with that member's
own policy document, so it talks to each member's app directly, as the member's sidecar does:

- in N (owned by V, deletes cascade): ConfigMap `<V>-virtual` (V and, per member, its direct URL and
  policy ConfigMap), ServiceAccount, Deployment, Service and Ingress (`/v/<V>/mcp`) of the gateway;
- in each member namespace (labelled with V's name and namespace; the operator deletes them by label
  when V goes, since an owner reference cannot cross namespaces): a Role with get/list/watch on exactly
  the member policy ConfigMaps plus a RoleBinding to V's ServiceAccount; per member a Service to the
  member pods' app port and a NetworkPolicy admitting V's gateway pods (and nothing else) to that port.

Pure: a function of (V, the members as read, options); same input, same dicts, no I/O.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mcp_runtime.manifests.common import (
    INGEST_KEY_FILE,
    LABEL_COMPONENT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_TEAM,
    MANAGED_BY,
    Manifest,
    RenderError,
    policy_configmap_name,
    route_path,
    selector_labels,
)
from mcp_runtime.manifests.names import label_value, object_name
from mcp_runtime.manifests.options import OwnerReference, RenderOptions
from mcp_runtime.manifests.pod import (
    SERVICE_ACCOUNT_DIR,
    api_access_volume,
    container_security,
    pod_security_context,
    resource_requirements,
)
from mcp_runtime.resources import MCPServer, MCPVirtualServer, virtual_path
from mcp_runtime.resources.server import DEFAULT_GATEWAY_PORT

LABEL_VIRTUAL = "mcpruntime.org/virtual-server"
LABEL_VIRTUAL_NAMESPACE = "mcpruntime.org/virtual-server-namespace"
ANNOTATION_CONFIG = "mcpruntime.org/virtual-config"
CONFIG_KEY = "virtual.json"
CONFIG_MOUNT_DIR = "/etc/mcp-runtime/virtual"
VIRTUAL_COMPONENT = "mcp-virtual-gateway"
VIRTUAL_GATEWAY_PORT = DEFAULT_GATEWAY_PORT
VIRTUAL_SERVICE_PORT = 80


@dataclass(frozen=True)
class RenderedVirtual:
    """The objects of one virtual server: `owned` live in its namespace, `cross` in member namespaces."""

    config: Manifest
    deployment: Manifest
    service: Manifest
    ingress: Manifest | None
    owned: list[Manifest]
    cross: list[Manifest] = field(default_factory=list)

    def all(self) -> list[Manifest]:
        """Every object in apply order: member-side access first, then V's config, account and gateway."""
        return copy.deepcopy([*self.cross, *self.owned])


def gateway_name(virtual_name: str) -> str:
    return object_name(virtual_name, "-virtual-gateway")


def config_name(virtual_name: str) -> str:
    return object_name(virtual_name, "-virtual")


def _base(virtual: MCPVirtualServer) -> str:
    """Unique per (namespace, name): objects in a member namespace may come from Vs of several namespaces."""
    return f"{virtual.metadata.name}-{virtual.metadata.namespace}"


def virtual_labels(virtual: MCPVirtualServer) -> dict[str, str]:
    """What names V on every object rendered for it (and what cleanup selects on)."""
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_VIRTUAL: label_value(virtual.metadata.name),
            LABEL_VIRTUAL_NAMESPACE: label_value(virtual.metadata.namespace or "")}


def virtual_selector(virtual_namespace: str, virtual_name: str) -> str:
    """Label selector of every object rendered for the virtual server."""
    return (f"{LABEL_VIRTUAL}={label_value(virtual_name)},"
            f"{LABEL_VIRTUAL_NAMESPACE}={label_value(virtual_namespace)}")


def gateway_selector(virtual: MCPVirtualServer) -> dict[str, str]:
    """Labels of V's gateway pods (the Deployment's immutable selector and the NetworkPolicies' peer)."""
    return {LABEL_INSTANCE: label_value(gateway_name(virtual.metadata.name)),
            LABEL_VIRTUAL: label_value(virtual.metadata.name)}


def direct_service_name(virtual: MCPVirtualServer, member: MCPServer) -> str:
    return object_name(f"{_base(virtual)}-{member.name}", "-direct")


Hosts = Mapping[tuple[str, str], str]
"""Member key -> the address of its direct Service, where cluster DNS is missing (the test cluster)."""


def member_upstream(virtual: MCPVirtualServer, member: MCPServer, hosts: Hosts | None = None) -> str:
    """The member's app, reached through V's direct Service in the member's namespace (its DNS name,
    unless `hosts` gives the Service's ClusterIP)."""
    host = (hosts or {}).get((member.namespace or "", member.name)) or \
        f"{direct_service_name(virtual, member)}.{member.namespace}.svc"
    return f"http://{host}:{member.spec.port}{route_path(member)}"


def _meta(virtual: MCPVirtualServer, name: str, namespace: str, owner: OwnerReference | None,
          labels: dict[str, str] | None = None) -> Manifest:
    meta: Manifest = {"name": name, "namespace": namespace, "labels": {**(labels or {}), **virtual_labels(virtual)}}
    if owner is not None and namespace == virtual.metadata.namespace:
        meta["ownerReferences"] = [owner.to_dict()]
    return meta


def _check_member(virtual: MCPVirtualServer, member: MCPServer) -> None:
    if member.spec.remote is not None:
        raise RenderError(f"member {member.namespace}/{member.name} is a remote server: on Kubernetes a virtual "
                          "server reaches members' apps directly, and a remote's credential stays in its "
                          "own gateway; leave it out or use its own endpoint")
    if not member.spec.gateway.enabled:
        raise RenderError(f"member {member.namespace}/{member.name} runs without its gateway, so it has no "
                          "policy document to govern calls with; enable spec.gateway")


def render_virtual(virtual: MCPVirtualServer, members: Sequence[MCPServer],
                   options: RenderOptions | None = None, hosts: Hosts | None = None) -> RenderedVirtual:
    """Render V over the `members` the caller could read (missing members are left out by the caller);
    `hosts`: member direct-Service addresses to use instead of their DNS names."""
    options = options or RenderOptions()
    namespace = virtual.metadata.namespace
    if not namespace:
        raise RenderError(f"virtual server {virtual.metadata.name} has no namespace")
    for member in members:
        _check_member(virtual, member)
    owner = options.owner_reference
    config = _config(virtual, members, owner, hosts)
    deployment = _deployment(virtual, config, options, owner)
    service = _service(virtual, owner)
    ingress = _ingress(virtual, options, owner) if options.ingress_enabled else None
    account: Manifest = {"apiVersion": "v1", "kind": "ServiceAccount",
                         "metadata": _meta(virtual, gateway_name(virtual.metadata.name), namespace, owner),
                         "automountServiceAccountToken": False}
    owned = [account, config, deployment, service] + ([ingress] if ingress is not None else [])
    cross = _member_rbac(virtual, members, owner)
    for member in members:
        cross += [_direct_service(virtual, member, owner), _network_policy(virtual, member, owner)]
    return RenderedVirtual(config=config, deployment=deployment, service=service, ingress=ingress,
                           owned=owned, cross=cross)


def virtual_config(virtual: MCPVirtualServer, members: Sequence[MCPServer],
                   hosts: Hosts | None = None) -> dict[str, object]:
    """What `gateway virtual --config` reads: V itself and, per member, where it is and its policy."""
    body = virtual.model_dump(by_alias=True, mode="json", exclude_none=True, exclude={"status"})
    meta = body.get("metadata", {})
    body["metadata"] = {k: meta[k] for k in ("name", "namespace", "uid", "generation") if k in meta}
    timeouts = {m.name: m.spec.gateway.timeouts for m in members}
    return {"virtualServer": body, "members": [{
        "namespace": m.namespace, "name": m.name, "upstream": member_upstream(virtual, m, hosts),
        "policyConfigMap": f"{m.namespace}/{policy_configmap_name(m.name)}",
        "connectTimeout": timeouts[m.name].connect, "readTimeout": timeouts[m.name].read,
    } for m in members]}


def _config(virtual: MCPVirtualServer, members: Sequence[MCPServer], owner: OwnerReference | None,
            hosts: Hosts | None) -> Manifest:
    text = json.dumps(virtual_config(virtual, members, hosts), sort_keys=True, indent=1)
    namespace = virtual.metadata.namespace or ""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta(virtual, config_name(virtual.metadata.name), namespace, owner),
            "data": {CONFIG_KEY: text}}


def _gateway_labels(virtual: MCPVirtualServer) -> dict[str, str]:
    labels = {LABEL_NAME: label_value(gateway_name(virtual.metadata.name)), LABEL_COMPONENT: VIRTUAL_COMPONENT,
              **gateway_selector(virtual)}
    if virtual.spec.team_id:
        labels[LABEL_TEAM] = label_value(virtual.spec.team_id)
    return labels


def _deployment(virtual: MCPVirtualServer, config: Manifest, options: RenderOptions,
                owner: OwnerReference | None) -> Manifest:
    name = gateway_name(virtual.metadata.name)
    labels = {**options.labels, **_gateway_labels(virtual), **virtual_labels(virtual)}
    digest = hashlib.sha256(config["data"][CONFIG_KEY].encode()).hexdigest()[:16]
    security = pod_security_context(options)
    template: Manifest = {
        # The config is read once at start: a changed config rolls the pods.
        "metadata": {"labels": labels, "annotations": {ANNOTATION_CONFIG: digest,
                                                       "kubectl.kubernetes.io/default-container": "mcp-gateway"}},
        "spec": {"automountServiceAccountToken": False, "enableServiceLinks": False, "serviceAccountName": name,
                 "securityContext": security, "containers": [_container(virtual, options)],
                 "volumes": _volumes(virtual, options)},
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _meta(virtual, name, virtual.metadata.namespace or "", owner, dict(options.labels)),
            "spec": {"replicas": 1, "revisionHistoryLimit": options.revision_history_limit,
                     "selector": {"matchLabels": gateway_selector(virtual)}, "template": template}}


def _container(virtual: MCPVirtualServer, options: RenderOptions) -> Manifest:
    jwks_dir = options.jwks_mount_dir.rstrip("/")
    args = ["gateway", "virtual", "--config", f"{CONFIG_MOUNT_DIR}/{CONFIG_KEY}",
            "--jwks-file", f"{jwks_dir}/jwks.json", "--listen", f"0.0.0.0:{VIRTUAL_GATEWAY_PORT}"]
    if options.otlp_endpoint:
        args += ["--otlp-endpoint", options.otlp_endpoint]
    mounts: list[Manifest] = []
    if options.ingest_url:  # analytics and approvals, as the members' sidecars send them
        args += ["--ingest-url", options.ingest_url]
        if options.approvals_url:
            args += ["--approvals-url", options.approvals_url]
        if options.ingest_key_secret is not None:
            args += ["--ingest-key-file", f"{options.ingest_key_mount_dir.rstrip('/')}/{INGEST_KEY_FILE}"]
            mounts.append({"name": "ingest-key", "mountPath": options.ingest_key_mount_dir.rstrip("/"),
                           "readOnly": True})
    port = options.gateway_port_name
    container: Manifest = {
        "name": "mcp-gateway", "image": options.gateway_image, "command": list(options.gateway_command),
        "args": args, "ports": [{"name": port, "containerPort": VIRTUAL_GATEWAY_PORT, "protocol": "TCP"}],
        # Ready only once every member's policy is loaded (`/readyz` names the missing ones).
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": port}, "initialDelaySeconds": 1,
                           "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": port}, "initialDelaySeconds": 5,
                          "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3},
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_MOUNT_DIR, "readOnly": True},
            {"name": "jwks", "mountPath": jwks_dir, "readOnly": True},
            {"name": "gateway-tmp", "mountPath": "/tmp"},
            {"name": "kube-api-access", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True},
            *mounts,
        ],
    }
    if options.image_pull_policy:
        container["imagePullPolicy"] = options.image_pull_policy
    resources = resource_requirements(options.gateway_resources)
    if resources:
        container["resources"] = resources
    return container


def _volumes(virtual: MCPVirtualServer, options: RenderOptions) -> list[Manifest]:
    return [
        {"name": "config", "configMap": {"name": config_name(virtual.metadata.name),
                                         "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}]}},
        {"name": "jwks", "configMap": {"name": options.jwks_configmap,
                                       "items": [{"key": options.jwks_key, "path": "jwks.json"}]}},
        {"name": "gateway-tmp", "emptyDir": {}},
        api_access_volume(),
    ] + ([{"name": "ingest-key", "secret": {
        "secretName": options.ingest_key_secret.name,
        "defaultMode": 0o440 if options.run_as_group is not None else 0o444,
        "items": [{"key": options.ingest_key_secret.key, "path": INGEST_KEY_FILE}]}}]
        if options.ingest_url and options.ingest_key_secret is not None else [])


def _service(virtual: MCPVirtualServer, owner: OwnerReference | None) -> Manifest:
    name = gateway_name(virtual.metadata.name)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta(virtual, name, virtual.metadata.namespace or "", owner),
            "spec": {"type": "ClusterIP", "selector": gateway_selector(virtual),
                     "ports": [{"name": "http", "port": VIRTUAL_SERVICE_PORT, "targetPort": VIRTUAL_GATEWAY_PORT,
                                "protocol": "TCP"}]}}


def _ingress(virtual: MCPVirtualServer, options: RenderOptions, owner: OwnerReference | None) -> Manifest:
    name = gateway_name(virtual.metadata.name)
    annotations = dict(options.ingress_annotations)
    if options.tls_enabled and options.tls_cluster_issuer:
        annotations["cert-manager.io/cluster-issuer"] = options.tls_cluster_issuer
    meta = _meta(virtual, name, virtual.metadata.namespace or "", owner)
    if annotations:
        meta["annotations"] = annotations
    spec: Manifest = {"ingressClassName": "traefik", "rules": [{"http": {"paths": [{
        "path": virtual_path(virtual.metadata.name), "pathType": "Prefix",
        "backend": {"service": {"name": name, "port": {"number": VIRTUAL_SERVICE_PORT}}}}]}}]}
    if options.tls_enabled:
        spec["tls"] = [{"secretName": options.tls_secret_name or object_name(virtual.metadata.name, "-tls")}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def _member_rbac(virtual: MCPVirtualServer, members: Sequence[MCPServer],
                 owner: OwnerReference | None) -> list[Manifest]:
    """Per member namespace: read exactly the member policy ConfigMaps there, bound to V's account."""
    by_namespace: dict[str, list[str]] = {}
    for member in members:
        by_namespace.setdefault(member.namespace or "", []).append(policy_configmap_name(member.name))
    account = gateway_name(virtual.metadata.name)
    role = object_name(_base(virtual), "-virtual-reader")
    objects: list[Manifest] = []
    for namespace in sorted(by_namespace):
        objects += [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": _meta(virtual, role, namespace, owner),
             "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                        "resourceNames": sorted(by_namespace[namespace]), "verbs": ["get", "list", "watch"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": _meta(virtual, role, namespace, owner),
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
             "subjects": [{"kind": "ServiceAccount", "name": account,
                           "namespace": virtual.metadata.namespace}]},
        ]
    return objects


def _direct_service(virtual: MCPVirtualServer, member: MCPServer, owner: OwnerReference | None) -> Manifest:
    """The member pods' app port (never the sidecar's): V's gateway governs with the member's policy."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta(virtual, direct_service_name(virtual, member), member.namespace or "", owner),
            "spec": {"type": "ClusterIP", "selector": selector_labels(member),
                     "ports": [{"name": "mcp", "port": member.spec.port, "targetPort": member.spec.port,
                                "protocol": "TCP"}]}}


def _network_policy(virtual: MCPVirtualServer, member: MCPServer, owner: OwnerReference | None) -> Manifest:
    """Admit V's gateway pods, from V's namespace only, to the member's app port."""
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": virtual.metadata.namespace}},
            "podSelector": {"matchLabels": gateway_selector(virtual)}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta(virtual, object_name(f"{_base(virtual)}-{member.name}", "-virtual"),
                              member.namespace or "", owner),
            "spec": {"podSelector": {"matchLabels": selector_labels(member)}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [peer], "ports": [{"protocol": "TCP", "port": member.spec.port}]}]}}
