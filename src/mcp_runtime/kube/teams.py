"""Applying team namespaces (`mcp-team-<slug>`) to a cluster (the team ClusterRoles come with `setup`).

The platform API calls `apply_team_namespace` when a team is created (kubernetes runtime); `setup`
re-applies every existing team namespace so quota, limits, NetworkPolicy and RoleBindings stay current.
"""

from __future__ import annotations

from mcp_runtime.kube.client import KubeClient
from mcp_runtime.manifests import TeamNamespaceOptions, render_team_namespace
from mcp_runtime.manifests.team import ANNOTATION_TEAM_ID, LABEL_TEAM_SLUG

Applied = list[tuple[str, str, str]]  # (action, kind, name)


def apply_team_namespace(client: KubeClient, slug: str, team_id: str,
                         options: TeamNamespaceOptions | None = None) -> Applied:
    """Create or update a team's namespace with its quota, limits, default-deny networking and RBAC."""
    applied: Applied = []
    for obj in render_team_namespace(slug, team_id, options).all():
        action, _ = client.apply(obj)
        applied.append((action, obj["kind"], obj["metadata"]["name"]))
    return applied


def reapply_team_namespaces(client: KubeClient, options: TeamNamespaceOptions | None = None) -> Applied:
    """Re-apply the objects of every namespace labelled as a team namespace by the platform."""
    applied: Applied = []
    for ns in client.list("Namespace", label_selector=LABEL_TEAM_SLUG):
        meta = ns["metadata"]
        slug = (meta.get("labels") or {}).get(LABEL_TEAM_SLUG)
        if slug:
            team_id = str((meta.get("annotations") or {}).get(ANNOTATION_TEAM_ID) or slug)
            applied += apply_team_namespace(client, str(slug), team_id, options)
    return applied
