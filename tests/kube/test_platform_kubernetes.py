"""The platform API on the kubernetes runtime (`platform serve --runtime kubernetes`, compose/kubernetes.py)
against the REAL API server, in process: the JWKS published at start, a created team's namespace applied,
a server deployed through the API stored as an MCPServer CRD in that namespace (and its audit in SQL).
The whole tutorial on this path, with pods, is tests/e2e/test_multi_team_tutorial_kube.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fixtures.cli import run_cli
from fixtures.kube_cluster import KubeCluster
from mcp_runtime.compose.kubernetes import open_kubernetes_platform
from mcp_runtime.kube import KubeClient
from mcp_runtime.platform import PlatformSettings, create_app

ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-kube-pass"


@pytest.fixture
def team_slug(kube_cluster: KubeCluster) -> Iterator[str]:
    slug = f"kt-{uuid.uuid4().hex[:8]}"
    yield slug
    kube_cluster.kubectl("delete", "namespace", f"mcp-team-{slug}", "--ignore-not-found", "--wait=false")


def test_the_api_on_the_kubernetes_runtime_keeps_servers_as_crds_and_applies_team_namespaces(
        kube_cluster: KubeCluster, platform_crds: list[str], kube_namespace: str, team_slug: str,
        tmp_path: Path) -> None:
    cluster = kube_cluster
    settings = PlatformSettings(data_dir=tmp_path, admin_email=ADMIN_EMAIL, admin_password=ADMIN_PASSWORD)
    client = KubeClient.from_environment(str(cluster.kubeconfig))
    platform = open_kubernetes_platform(settings, client, jwks_namespace=kube_namespace)
    try:
        jwks = json.loads((cluster.get("configmap", "mcp-runtime-jwks", kube_namespace) or {})["data"]["jwks.json"])
        assert [k["kid"] for k in jwks["keys"]] == [k["kid"] for k in platform.keyring.jwks()["keys"]]

        with TestClient(create_app(platform=platform)) as api:
            token = api.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
                             ).json()["accessToken"]
            auth = {"Authorization": f"Bearer {token}"}
            created = api.post("/api/v1/teams", json={"slug": team_slug, "name": "Kube Team"}, headers=auth)
            assert created.status_code == 201, created.text
            namespace = f"mcp-team-{team_slug}"
            labels = (cluster.get("namespace", namespace) or {})["metadata"]["labels"]
            assert labels["mcpruntime.org/team-slug"] == team_slug
            assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
            kinds = cluster.kubectl("-n", namespace, "get", "resourcequota,limitrange,networkpolicy,rolebinding",
                                    "-o", "jsonpath={.items[*].kind}").stdout.split()
            assert {"ResourceQuota", "LimitRange", "NetworkPolicy", "RoleBinding"} <= set(kinds), kinds

            # a name of its own: routes are cluster-wide, and other tests' servers may still be going away
            server = f"payments-{team_slug}"
            deployed = api.post("/api/v1/runtime/servers", headers=auth, json={
                "name": server, "team": team_slug, "image": "registry.example.com/acme/payments",
                "imageTag": "v1", "metadata": {"name": server, "tools": [{"name": "echo", "sideEffect": "read"}]}})
            assert deployed.status_code == 201, deployed.text
            crd = cluster.get("mcpserver", server, namespace) or {}
            assert crd["spec"]["image"] == "registry.example.com/acme/payments" and crd["spec"]["imageTag"] == "v1"
            assert crd["spec"]["teamID"] == created.json()["id"]
            listed = api.get("/api/v1/runtime/servers", headers=auth).json()
            assert server in json.dumps(listed)
            audit = api.get("/api/v1/audit", headers=auth).json()
            assert any(e.get("kind") == "MCPServer" and e.get("name") == server for e in audit["items"]), audit
            cluster.kubectl("-n", namespace, "delete", "mcpserver", server)
    finally:
        platform.close()


def test_platform_serve_names_the_runtimes_it_runs() -> None:
    done = run_cli(["platform", "serve", "--runtime", "podman"])
    assert done.returncode == 1
    assert "--runtime 'podman' is not a runtime `platform serve` runs" in done.stderr
    assert "--runtime kubernetes" in done.stderr
