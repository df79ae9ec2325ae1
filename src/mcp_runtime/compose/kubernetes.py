"""The platform API on the kubernetes runtime (`platform serve --runtime kubernetes`).

What changes against the default (`--runtime none`):
- servers, grants and sessions live as CRDs (`store.kubernetes.KubernetesBackedStore`); users, teams, keys,
  settings and audit stay in SQL. The operator reconciles the CRDs into pods, so the runtime hooks have
  nothing to start or stop themselves;
- a created team gets its namespace `mcp-team-<slug>` (quota, limits, NetworkPolicy, RoleBindings);
- the platform's public signing keys are published to `mcp-runtime/mcp-runtime-jwks` at start, where the
  operator copies them from for the gateway sidecars (docs/kubernetes.md).
"""

from __future__ import annotations

import logging

from mcp_runtime.kube import KubeClient
from mcp_runtime.kube.jwks import publish_jwks
from mcp_runtime.kube.platform import SYSTEM_NAMESPACE
from mcp_runtime.kube.teams import apply_team_namespace
from mcp_runtime.platform import Platform, PlatformSettings
from mcp_runtime.resources import MCPServer
from mcp_runtime.store import Team
from mcp_runtime.store.kubernetes import KubernetesBackedStore
from mcp_runtime.store.sql import SqlStore, sqlite_url

log = logging.getLogger("mcp_runtime.platform")


class KubernetesRuntime:
    """RuntimeHooks for servers the operator runs: the store already wrote the CRD, so there is nothing
    to do per server; teams get their namespace."""

    runtime_name = "kubernetes"

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def server_created(self, server: MCPServer) -> None:
        return None

    def server_updated(self, server: MCPServer) -> None:
        return None

    def server_deleted(self, server: MCPServer) -> None:
        return None

    def team_created(self, team: Team) -> None:
        for action, kind, name in apply_team_namespace(self.client, team.slug, team.id):
            log.info("team %s: %s %s %s", team.slug, kind, name, action)


def open_kubernetes_platform(settings: PlatformSettings, client: KubeClient,
                             jwks_namespace: str = SYSTEM_NAMESPACE) -> Platform:
    """A Platform whose resources are CRDs on `client`'s cluster, with teams' namespaces and the JWKS."""
    url = settings.database_url
    if url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = sqlite_url(settings.data_dir)
    store = KubernetesBackedStore(SqlStore.open(url, run_migrations=settings.run_migrations), client)
    runtime = KubernetesRuntime(client)
    platform = Platform(settings, store=store, hooks=runtime)
    platform.identity.team_listeners.append(runtime.team_created)
    action = publish_jwks(client, platform.keyring.jwks(), namespace=jwks_namespace)
    log.info("JWKS %s/mcp-runtime-jwks %s", jwks_namespace, action)
    return platform
