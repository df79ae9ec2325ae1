"""The real test cluster's fixtures for the tests in tests/kube (see fixtures.kube_cluster)."""

from fixtures.kube_cluster import kube_cluster, kube_namespace, kube_pods_cluster, platform_crds

__all__ = ["kube_cluster", "kube_namespace", "kube_pods_cluster", "platform_crds"]
