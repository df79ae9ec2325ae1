"""Publishing the platform's public signing keys (JWKS) where the operator copies them from.

The platform API calls `publish_jwks` at start and after each key rotation (kubernetes runtime); the
operator watches that ConfigMap and re-copies it into every namespace with servers, where the gateway
sidecars mount it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp_runtime.kube.client import KubeClient
from mcp_runtime.kube.platform import SYSTEM_NAMESPACE
from mcp_runtime.manifests import render_jwks_configmap


def publish_jwks(client: KubeClient, jwks: Mapping[str, Any], namespace: str = SYSTEM_NAMESPACE) -> str:
    """Create or update `<namespace>/mcp-runtime-jwks`; returns created / updated / unchanged."""
    action, _ = client.apply(render_jwks_configmap(jwks, namespace))
    return action
