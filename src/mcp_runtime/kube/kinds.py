"""Where each kind the platform touches lives in the Kubernetes REST API.

A fixed table instead of API discovery: the platform only ever touches these kinds, and a table makes
every request path obvious (and lets the test fake API server serve exactly the same paths).
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp_runtime.resources import GROUP_VERSION, RESOURCE_KINDS


@dataclass(frozen=True)
class Kind:
    kind: str
    api_version: str  # "v1" for core, else "<group>/<version>"
    plural: str
    namespaced: bool = True
    has_status: bool = False

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0] if "/" in self.api_version else ""

    @property
    def prefix(self) -> str:
        """`/api/v1` or `/apis/<group>/<version>`."""
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"

    def collection_path(self, namespace: str | None = None) -> str:
        if self.namespaced and namespace:
            return f"{self.prefix}/namespaces/{namespace}/{self.plural}"
        return f"{self.prefix}/{self.plural}"

    def item_path(self, name: str, namespace: str | None = None) -> str:
        return f"{self.collection_path(namespace)}/{name}"


KINDS: dict[str, Kind] = {k.kind: k for k in [
    Kind("Namespace", "v1", "namespaces", namespaced=False, has_status=True),
    Kind("ConfigMap", "v1", "configmaps"),
    Kind("Secret", "v1", "secrets"),
    Kind("Service", "v1", "services", has_status=True),
    Kind("ServiceAccount", "v1", "serviceaccounts"),
    Kind("Pod", "v1", "pods", has_status=True),
    Kind("Event", "v1", "events"),
    Kind("Node", "v1", "nodes", namespaced=False, has_status=True),
    Kind("ResourceQuota", "v1", "resourcequotas", has_status=True),
    Kind("LimitRange", "v1", "limitranges"),
    Kind("PersistentVolumeClaim", "v1", "persistentvolumeclaims", has_status=True),
    Kind("Deployment", "apps/v1", "deployments", has_status=True),
    Kind("StatefulSet", "apps/v1", "statefulsets", has_status=True),
    Kind("ReplicaSet", "apps/v1", "replicasets", has_status=True),
    Kind("Ingress", "networking.k8s.io/v1", "ingresses", has_status=True),
    Kind("IngressClass", "networking.k8s.io/v1", "ingressclasses", namespaced=False),
    Kind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies"),
    Kind("Role", "rbac.authorization.k8s.io/v1", "roles"),
    Kind("RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings"),
    Kind("ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", namespaced=False),
    Kind("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "clusterrolebindings", namespaced=False),
    Kind("StorageClass", "storage.k8s.io/v1", "storageclasses", namespaced=False),
    Kind("CustomResourceDefinition", "apiextensions.k8s.io/v1", "customresourcedefinitions", namespaced=False,
         has_status=True),
    Kind("ClusterIssuer", "cert-manager.io/v1", "clusterissuers", namespaced=False, has_status=True),
    Kind("Certificate", "cert-manager.io/v1", "certificates", has_status=True),
    *(Kind(k.kind, GROUP_VERSION, k.plural, has_status=True) for k in RESOURCE_KINDS),
]}


def kind_of(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"kind {kind!r} is not one the platform manages") from None
