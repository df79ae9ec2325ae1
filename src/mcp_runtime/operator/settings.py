"""The operator's cluster facts, read from its environment (the Helm chart sets them)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from mcp_runtime.manifests import RenderOptions, SecretKey
from mcp_runtime.manifests.options import DEFAULT_GATEWAY_IMAGE


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class OperatorSettings:
    """Environment variables (all optional):

    MCP_OPERATOR_GATEWAY_IMAGE      image of the `mcp-gateway` sidecar (the platform image)
    MCP_REGISTRY_HOST               prefixed to short app image names
    MCP_SENTINEL_INGEST_URL         analytics ingest endpoint for every gateway
    MCP_SENTINEL_INGEST_KEY_SECRET  `<secret>:<key>` with the ingest API key, in each server namespace
    MCP_PLATFORM_APPROVALS_URL      the platform API's `/api/v1/ingest/approvals`, where sidecars hold calls
                                    for a person's approval (default: next to the ingest URL)
    MCP_OPERATOR_WATCH_POLICY_VIA_API  `1` (default): sidecars watch their ConfigMap (revocation < 1 s)
    MCP_OPERATOR_TLS_CLUSTER_ISSUER cert-manager ClusterIssuer for Ingress TLS (turns TLS on)
    MCP_OPERATOR_INGRESS_ANNOTATIONS JSON object of extra Ingress annotations
    MCP_OPERATOR_JWKS_CONFIGMAP     `<namespace>/<name>` of the platform's JWKS ConfigMap to copy into
                                    every server namespace (default mcp-runtime/mcp-runtime-jwks)
    MCP_OPERATOR_NAMESPACES         comma-separated namespaces to watch (default: all)
    MCP_OPERATOR_PUBLIC_URL         base URL clients reach servers at (https://mcp.<domain>); with the
                                    issuer below, every sidecar is an OAuth protected resource
    MCP_OPERATOR_OAUTH_ISSUER       the platform's OAuth issuer (https://platform.<domain>/api/v1/oauth)
    MCP_OPERATOR_VIRTUAL_MEMBER_ADDRESS  `dns` (default): a virtual server's gateway reaches each member's
                                    direct Service by its DNS name; `cluster-ip`: by its ClusterIP, for
                                    clusters without DNS (the project's test cluster)
    """

    render: RenderOptions = field(default_factory=RenderOptions)
    jwks_source: tuple[str, str] | None = ("mcp-runtime", "mcp-runtime-jwks")
    namespaces: tuple[str, ...] = ()
    virtual_member_address: Literal["dns", "cluster-ip"] = "dns"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if env is None else env
        ingest_key = None
        if env.get("MCP_SENTINEL_INGEST_KEY_SECRET"):
            name, _, key = env["MCP_SENTINEL_INGEST_KEY_SECRET"].partition(":")
            ingest_key = SecretKey(name, key or "api-key")
        issuer = env.get("MCP_OPERATOR_TLS_CLUSTER_ISSUER") or None
        annotations = json.loads(env.get("MCP_OPERATOR_INGRESS_ANNOTATIONS") or "{}")
        render = RenderOptions(
            gateway_image=env.get("MCP_OPERATOR_GATEWAY_IMAGE") or DEFAULT_GATEWAY_IMAGE,
            registry_host=env.get("MCP_REGISTRY_HOST") or None,
            ingest_url=env.get("MCP_SENTINEL_INGEST_URL") or None,
            approvals_url=env.get("MCP_PLATFORM_APPROVALS_URL") or None,
            otlp_endpoint=env.get("MCP_RUNTIME_OTLP_ENDPOINT") or None,
            ingest_key_secret=ingest_key,
            watch_policy_via_api=_flag(env.get("MCP_OPERATOR_WATCH_POLICY_VIA_API"), True),
            tls_enabled=issuer is not None,
            tls_cluster_issuer=issuer,
            ingress_annotations={str(k): str(v) for k, v in annotations.items()},
            public_url=env.get("MCP_OPERATOR_PUBLIC_URL") or None,
            oauth_issuer=env.get("MCP_OPERATOR_OAUTH_ISSUER") or None,
        )
        jwks = env.get("MCP_OPERATOR_JWKS_CONFIGMAP", "mcp-runtime/mcp-runtime-jwks")
        source = None
        if jwks:
            ns, _, name = jwks.partition("/")
            source = (ns, name) if name else None
        namespaces = tuple(n.strip() for n in env.get("MCP_OPERATOR_NAMESPACES", "").split(",") if n.strip())
        address = (env.get("MCP_OPERATOR_VIRTUAL_MEMBER_ADDRESS") or "dns").strip().lower()
        if address not in ("dns", "cluster-ip"):
            raise ValueError(f"MCP_OPERATOR_VIRTUAL_MEMBER_ADDRESS must be dns or cluster-ip, got {address!r}")
        return cls(render=render, jwks_source=source, namespaces=namespaces,
                   virtual_member_address="cluster-ip" if address == "cluster-ip" else "dns")
