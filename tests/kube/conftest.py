"""The real test cluster's fixtures for the tests in tests/kube (see fixtures.kube_cluster, fixtures.kube_images)."""

from fixtures.kube_cluster import jwks_namespace, kube_cluster, kube_namespace, kube_pods_cluster, platform_crds
from fixtures.kube_images import kube_example_image, kube_platform_image, kube_registry

__all__ = ["jwks_namespace", "kube_cluster", "kube_example_image", "kube_namespace", "kube_platform_image",
           "kube_pods_cluster", "kube_registry", "platform_crds"]
