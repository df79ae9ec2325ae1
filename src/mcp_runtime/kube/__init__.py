"""Talking to a Kubernetes API server: the kinds the platform touches and a small dict-based client."""

from mcp_runtime.kube.client import (
    ANNOTATION_APPLIED_HASH,
    ConflictError,
    KubeClient,
    KubeConfigError,
    KubeError,
    NotFoundError,
    manifest_hash,
)
from mcp_runtime.kube.kinds import KINDS, Kind, kind_of

__all__ = [
    "ANNOTATION_APPLIED_HASH", "KINDS", "ConflictError", "Kind", "KubeClient", "KubeConfigError", "KubeError",
    "NotFoundError", "kind_of", "manifest_hash",
]
