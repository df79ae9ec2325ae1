"""The real test cluster's fixtures for the Kubernetes end-to-end test (see fixtures.kube_cluster, kube_images)."""

from fixtures.kube_cluster import kube_cluster, kube_pods_cluster, platform_crds
from fixtures.kube_images import kube_example_image, kube_platform_image, kube_registry

__all__ = ["kube_cluster", "kube_example_image", "kube_platform_image", "kube_pods_cluster", "kube_registry",
           "platform_crds"]
