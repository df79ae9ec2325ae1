"""A team's namespace and the two ClusterRoles its people are bound to.

Isolation model of the multi-team tutorial: each team lives in `mcp-team-<slug>`; a default-deny
NetworkPolicy lets in only the ingress controller and the team's own pods (so another team reaches a
server only through its Ingress, i.e. through the gateway, where grants decide); team owners and members
get RBAC in their namespace only, through RoleBindings to shared ClusterRoles.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from mcp_runtime.manifests.common import LABEL_MANAGED_BY, LABEL_TEAM, MANAGED_BY, RenderError
from mcp_runtime.manifests.names import label_value
from mcp_runtime.manifests.options import TeamNamespaceOptions
from mcp_runtime.resources import API_GROUP, team_namespace

Manifest = dict[str, Any]

TEAM_OWNER_ROLE = "mcp-runtime-team-owner"
TEAM_MEMBER_ROLE = "mcp-runtime-team-member"
LABEL_TEAM_SLUG = "mcpruntime.org/team-slug"
ANNOTATION_TEAM_ID = "mcpruntime.org/team-id"

_SLUG = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MAX_SLUG = 63 - len(team_namespace(""))

_MCP_RESOURCES = ["mcpservers", "mcpaccessgrants", "mcpagentsessions", "mcpvirtualservers"]
_READ = ["get", "list", "watch"]
_WRITE = ["create", "update", "patch", "delete"]


@dataclass(frozen=True)
class TeamNamespace:
    """The objects of one team namespace."""

    namespace: Manifest
    resource_quota: Manifest
    limit_range: Manifest
    network_policy: Manifest
    role_bindings: list[Manifest]

    def all(self) -> list[Manifest]:
        """Every object in apply order (the Namespace first)."""
        return copy.deepcopy([self.namespace, self.resource_quota, self.limit_range, self.network_policy,
                              *self.role_bindings])


def check_team_slug(slug: str) -> str:
    """A slug must make a valid namespace name as it is: renaming it silently would split the team."""
    if len(slug) > _MAX_SLUG or not _SLUG.match(slug):
        raise RenderError(
            f"team slug {slug!r} cannot name a namespace: use lowercase letters, digits and '-', "
            f"start and end with a letter or digit, at most {_MAX_SLUG} characters"
        )
    return slug


def render_team_namespace(slug: str, team_id: str, options: TeamNamespaceOptions | None = None) -> TeamNamespace:
    """Namespace `mcp-team-<slug>` with quota, limits, default-deny networking and team RBAC."""
    options = options or TeamNamespaceOptions()
    check_team_slug(slug)
    namespace = team_namespace(slug)
    labels = {
        **options.labels,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_TEAM: label_value(team_id),
        LABEL_TEAM_SLUG: slug,
    }
    annotations = {ANNOTATION_TEAM_ID: team_id}

    def meta(name: str) -> Manifest:
        return {"name": name, "namespace": namespace, "labels": dict(labels), "annotations": dict(annotations)}

    ns_labels = {
        **labels,
        "pod-security.kubernetes.io/enforce": options.pod_security,
        "pod-security.kubernetes.io/warn": options.pod_security,
    }
    allowed_namespaces = [options.ingress_controller_namespace, *options.allow_from_namespaces]
    sources: list[Manifest] = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
        for ns in dict.fromkeys(allowed_namespaces)
    ]
    sources.append({"podSelector": {}})
    groups = {
        TEAM_OWNER_ROLE: options.owner_group or f"mcp-runtime:team:{slug}:owner",
        TEAM_MEMBER_ROLE: options.member_group or f"mcp-runtime:team:{slug}:member",
    }
    return TeamNamespace(
        namespace={"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": namespace, "labels": ns_labels, "annotations": dict(annotations)}},
        resource_quota={"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta("mcp-team-quota"),
                        "spec": {"hard": {k: options.resource_quota[k] for k in sorted(options.resource_quota)}}},
        limit_range={"apiVersion": "v1", "kind": "LimitRange", "metadata": meta("mcp-team-limits"),
                     "spec": {"limits": [{
                         "type": "Container",
                         "default": dict(sorted(options.limit_range_default.items())),
                         "defaultRequest": dict(sorted(options.limit_range_default_request.items())),
                     }]}},
        network_policy={"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                        "metadata": meta("mcp-team-default-deny-ingress"),
                        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": sources}]}},
        role_bindings=[
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": meta(role.removeprefix("mcp-runtime-") + "s"),
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]}
            for role, group in groups.items()
        ],
    )


def render_cluster_roles() -> list[Manifest]:
    """`mcp-runtime-team-owner` and `-member`, bound per namespace by `render_team_namespace`.

    Owners manage their servers and grants, the Secrets those reference, and read what runs. Sessions
    are read-only for both: creating one is an admin act (it carries trust), done by the platform.
    Members read everything of the team except Secrets.
    """
    labels = {LABEL_MANAGED_BY: MANAGED_BY}
    workloads: list[Manifest] = [
        {"apiGroups": [""], "resources": ["pods", "pods/log", "services", "configmaps", "events"], "verbs": _READ},
        {"apiGroups": ["apps"], "resources": ["deployments", "replicasets"], "verbs": _READ},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": _READ},
        {"apiGroups": [API_GROUP], "resources": [f"{r}/status" for r in _MCP_RESOURCES], "verbs": ["get"]},
    ]
    owner_rules: list[Manifest] = [
        {"apiGroups": [API_GROUP], "resources": ["mcpservers", "mcpaccessgrants", "mcpvirtualservers"],
         "verbs": _READ + _WRITE},
        {"apiGroups": [API_GROUP], "resources": ["mcpagentsessions"], "verbs": _READ},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": _READ + _WRITE},
        *workloads,
    ]
    member_rules: list[Manifest] = [
        {"apiGroups": [API_GROUP], "resources": list(_MCP_RESOURCES), "verbs": _READ},
        *workloads,
    ]
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": TEAM_OWNER_ROLE, "labels": dict(labels)}, "rules": copy.deepcopy(owner_rules)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": TEAM_MEMBER_ROLE, "labels": dict(labels)}, "rules": copy.deepcopy(member_rules)},
    ]
