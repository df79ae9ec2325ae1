"""`mcp-runtime setup`, `cluster doctor` and the Helm chart installed on the REAL test cluster, as a platform
team runs them (the CLI as a subprocess with KUBECONFIG).

`setup` installs the default image (ghcr.io/mcp-runtime/mcp-runtime), which no registry serves here, so
its Deployments never get ready: `cluster doctor` fails those readiness checks, and the test asserts exactly
which checks pass and which fail, and why. The last test builds the platform image from this checkout
(podman), pushes it to a loopback registry (tests/fixtures/kube_images.py) and installs the chart with it:
containerd pulls it, the operator, API and ingest pods get Ready and the in-cluster operator reconciles an
MCPServer.
Each test starts and ends without the platform installed (the CRDs stay: other tests share them).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.cli import run_cli
from fixtures.kube_cluster import KubeCluster

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_NAMESPACES = ("mcp-runtime", "mcp-servers-org", "mcp-servers-public")
CLUSTER_ROLES = ("mcp-runtime-team-owner", "mcp-runtime-team-member", "mcp-runtime-operator")


def remove_platform(cluster: KubeCluster) -> None:
    """Everything setup or the chart installs except the CRDs (shared by the other tests), gone for good."""
    cluster.helm("uninstall", "mcp-runtime", "-n", "mcp-runtime", "--wait", check=False)
    cluster.kubectl("delete", "namespace", *PLATFORM_NAMESPACES, "--ignore-not-found", "--timeout=120s", timeout=150)
    cluster.kubectl("delete", "clusterrole", *CLUSTER_ROLES, "--ignore-not-found")
    cluster.kubectl("delete", "clusterrolebinding", "mcp-runtime-operator", "--ignore-not-found")


@pytest.fixture
def no_platform(kube_pods_cluster: KubeCluster, platform_crds: list[str]) -> Iterator[KubeCluster]:
    """The cluster without the platform; a Ready node (tier 2), as setup's pre-flight refuses a cluster
    without one (tier 1 has none: the test fails saying so)."""
    remove_platform(kube_pods_cluster)
    yield kube_pods_cluster
    remove_platform(kube_pods_cluster)


def cli(cluster: KubeCluster, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    # helm and kubectl of the cluster's release first on PATH (setup --helm runs `helm`).
    path = f"{cluster.helm_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return run_cli(list(args), env={"KUBECONFIG": str(cluster.kubeconfig), "PATH": path}, timeout=timeout)


def dry_run_objects(cluster: KubeCluster, *args: str) -> list[dict[str, Any]]:
    done = cli(cluster, "setup", *args, "--dry-run", "-o", "yaml")
    assert done.returncode == 0, done.stderr
    objects: list[dict[str, Any]] = yaml.safe_load(done.stdout)
    return objects


def missing_on_server(cluster: KubeCluster, objects: list[dict[str, Any]]) -> list[str]:
    missing = []
    for obj in objects:
        ns = obj["metadata"].get("namespace")
        if cluster.get(obj["kind"].lower(), obj["metadata"]["name"], ns) is None:
            missing.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return missing


def doctor_results(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in ("PASS", "WARN", "FAIL"):
            out[parts[1]] = parts[0]
    return out


def test_setup_refuses_a_cluster_without_an_ingress_class_and_changes_nothing(no_platform: KubeCluster) -> None:
    cluster = no_platform
    assert cluster.kubectl("get", "ingressclass", "-o", "name").stdout == ""  # no ingress controller here
    done = cli(cluster, "setup", "--test-mode")
    assert done.returncode == 1
    assert "pre-flight pass nodes-ready: 1 node(s) Ready" in done.stdout
    assert done.stderr.startswith("error: pre-flight check ingress-class failed: no IngressClass at all")
    assert "cluster config --ingress traefik" in done.stderr  # the fix it names (setup installs no Traefik)
    assert cluster.get("namespace", "mcp-runtime") is None


def test_setup_applies_what_its_dry_run_prints_is_idempotent_and_doctor_says_what_is_missing(
        no_platform: KubeCluster) -> None:
    cluster = no_platform
    planned = dry_run_objects(cluster, "--test-mode", "--ingress", "none")
    done = cli(cluster, "setup", "--test-mode", "--ingress", "none")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pre-flight pass api-version: Kubernetes v1.37.2" in done.stdout
    assert "deployment/mcp-runtime-operator -n mcp-runtime created" in done.stdout
    assert "MCP Runtime is installed in namespace mcp-runtime." in done.stdout
    assert missing_on_server(cluster, planned) == []
    operator = cluster.get("deployment", "mcp-runtime-operator", "mcp-runtime") or {}
    assert operator["spec"]["template"]["spec"]["serviceAccountName"] == "mcp-runtime-operator"
    # The operator's ServiceAccount may do what the operator does (RBAC as applied, checked by the server).
    sa = "system:serviceaccount:mcp-runtime:mcp-runtime-operator"
    for verb, resource in [("watch", "mcpservers.mcpruntime.org"), ("patch", "mcpservers.mcpruntime.org/status"),
                           ("create", "deployments.apps"), ("create", "configmaps")]:
        can = cluster.kubectl("auth", "can-i", "--as", sa, "-n", "mcp-team-x", verb, resource, check=False)
        assert can.stdout.strip() == "yes", (verb, resource, can.stdout, can.stderr)

    again = cli(cluster, "setup", "--test-mode", "--ingress", "none")
    assert again.returncode == 0, again.stderr
    assert " created" not in again.stdout and " updated" not in again.stdout

    # sentinel: status of the platform's components, and a restart the real deployment controller rolls out.
    status = {r["component"]: r for r in json.loads(cli(cluster, "sentinel", "status", "-o", "json").stdout)}
    assert status["ingest"]["status"] == "NotReady" and status["api"]["status"] == "NotReady"
    restarted = cli(cluster, "sentinel", "restart", "ingest")
    assert restarted.returncode == 0, restarted.stderr
    template = (cluster.get("deployment", "mcp-sentinel-ingest", "mcp-runtime") or {})["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]
    cluster.wait_for("a second ReplicaSet for the restarted ingest", lambda: len(cluster.kubectl(
        "-n", "mcp-runtime", "get", "replicasets", "-l", "app.kubernetes.io/name=mcp-sentinel-ingest",
        "-o", "name").stdout.split()) == 2, timeout=60)
    external = cli(cluster, "sentinel", "logs", "clickhouse")
    assert external.returncode == 1 and "external service" in external.stderr

    doctor = cli(cluster, "cluster", "doctor")
    assert doctor.returncode == 1, doctor.stdout  # the platform's pods cannot run here (see the docstring)
    found = doctor_results(doctor.stdout)
    assert len(found) == 39  # 2 checks per CRD: mcpvirtualservers added 2
    print("\n".join(line for line in doctor.stdout.splitlines() if line.startswith(("WARN", "FAIL", "39 checks"))))
    for check in ("api-reachable", "api-version", "nodes-present", "nodes-ready", "crd-mcpservers",
                  "crd-mcpservers-current", "crd-mcpaccessgrants-current", "crd-mcpagentsessions-current",
                  "crd-mcpvirtualservers-current",
                  "system-namespace", "operator-rbac", "team-cluster-roles", "grants-dangling"):
        assert found[check] == "PASS", check
    # Exactly these fail here, and why: the platform's pods need its image (not built for containerd here),
    # so nothing is ready and the API never published its JWKS; no database Secret; no ingress controller.
    assert sorted(c for c, r in found.items() if r == "FAIL") == sorted([
        "operator-ready", "platform-api-ready", "ingest-ready", "registry-ready", "database-secret",
        "jwks-configmap", "ingress-class"])
    assert sorted(c for c, r in found.items() if r == "WARN") == sorted([
        "default-storage-class", "ingest-key-secret", "ingress-controller", "cert-manager"])
    as_json = json.loads(cli(cluster, "cluster", "doctor", "-o", "json").stdout)
    assert {r["id"]: r["result"] for r in as_json}["operator-rbac"] == "pass"


@pytest.mark.parametrize("mode", [
    ["--registry-mode", "bundled-https", "--without-sentinel"],
    ["--platform-mode", "none", "--registry-mode", "external"],
], ids=["bundled-https-without-sentinel", "operator-only-external-registry"])
def test_setup_modes_apply_on_the_real_cluster(no_platform: KubeCluster, tmp_path: Path, mode: list[str]) -> None:
    cluster = no_platform
    env_file = tmp_path / "mcpruntime.env"
    env_file.write_text("MCP_PLATFORM_DOMAIN=dev.example.com\nMCP_SETUP_EXTERNAL_REGISTRY=registry.example.com\n")
    args = ["--env-file", str(env_file), "--test-mode", "--ingress", "none", *mode]
    planned = dry_run_objects(cluster, *args)
    done = cli(cluster, "setup", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert missing_on_server(cluster, planned) == []
    names = {(o["kind"], o["metadata"]["name"]) for o in planned}
    if "--without-sentinel" in mode:
        assert ("Deployment", "mcp-sentinel-ingest") not in names
        assert cluster.get("deployment", "mcp-sentinel-ingest", "mcp-runtime") is None
    if "none" in mode:
        assert ("Deployment", "mcp-runtime-api") not in names
        assert cluster.get("deployment", "mcp-runtime-api", "mcp-runtime") is None
        assert cluster.get("deployment", "mcp-runtime-operator", "mcp-runtime") is not None


def test_setup_with_helm_installs_the_chart_and_helm_uninstalls_it(no_platform: KubeCluster) -> None:
    cluster = no_platform
    planned = [o for o in dry_run_objects(cluster, "--test-mode", "--ingress", "none")
               if o["kind"] != "CustomResourceDefinition"]
    done = cli(cluster, "setup", "--helm", "--test-mode", "--ingress", "none")
    assert done.returncode == 0, done.stdout + done.stderr
    releases = json.loads(cluster.helm("list", "-n", "mcp-runtime", "-o", "json").stdout)
    assert [(r["name"], r["status"], r["chart"]) for r in releases] == [
        ("mcp-runtime", "deployed", "mcp-runtime-0.1.0")]
    # The chart gives the same objects setup applies through the API, and the CRDs from its crds/ directory.
    assert missing_on_server(cluster, planned) == []
    operator = cluster.get("deployment", "mcp-runtime-operator", "mcp-runtime") or {}
    assert operator["metadata"]["annotations"]["meta.helm.sh/release-name"] == "mcp-runtime"
    for crd in ("mcpservers", "mcpaccessgrants", "mcpagentsessions"):
        assert cluster.get("crd", f"{crd}.mcpruntime.org") is not None

    cluster.helm("uninstall", "mcp-runtime", "-n", "mcp-runtime", "--wait")
    assert cluster.get("deployment", "mcp-runtime-operator", "mcp-runtime") is None
    assert cluster.get("clusterrole", "mcp-runtime-operator") is None
    assert cluster.get("crd", "mcpservers.mcpruntime.org") is not None  # helm never deletes CRDs


def test_helm_install_runs_the_platform_and_its_operator_reconciles_in_the_cluster(
        no_platform: KubeCluster, kube_namespace: str, kube_platform_image: str) -> None:
    cluster = no_platform
    # The platform image built from this checkout, pulled by containerd from the loopback registry.
    repository, tag = kube_platform_image.rsplit(":", 1)
    # The bundled registry's image (docker.io/library/registry) is not available here: an external registry.
    cluster.helm("install", "mcp-runtime", str(ROOT / "deploy" / "helm" / "mcp-runtime"), "-n", "mcp-runtime",
                 "--set", "testMode=true", "--set", "ingress.enabled=false", "--set", "registry.mode=external",
                 "--set", "registry.external=registry.example.com", "--set", f"image.repository={repository}",
                 "--set", f"image.tag={tag}", "--set", "image.pullPolicy=IfNotPresent",
                 "--create-namespace", "--wait", "--timeout=240s", timeout=300)
    for name in ("mcp-runtime-operator", "mcp-runtime-api", "mcp-sentinel-ingest"):
        status = (cluster.get("deployment", name, "mcp-runtime") or {}).get("status", {})
        assert status.get("readyReplicas") == 1, (name, status)

    # The operator in its pod, with its ServiceAccount's RBAC, reconciles a server in any namespace.
    cluster.apply({"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPServer", "metadata": {"name": "payments"},
                   "spec": {"image": "registry.example.com/acme/payments", "imageTag": "v1",
                            "tools": [{"name": "echo", "sideEffect": "read"}]}}, namespace=kube_namespace)

    def reconciled() -> bool:
        server = cluster.get("mcpserver", "payments", kube_namespace) or {}
        return (server.get("status") or {}).get("phase") == "Pending" and cluster.get(
            "deployment", "payments", kube_namespace) is not None
    try:
        cluster.wait_for("the in-cluster operator to reconcile the MCPServer", reconciled, timeout=90)
    except BaseException:
        print(cluster.kubectl("-n", "mcp-runtime", "logs", "deployment/mcp-runtime-operator", "--tail=40",
                              check=False).stdout)
        raise
    cluster.kubectl("-n", kube_namespace, "delete", "mcpserver", "payments", "--timeout=60s", timeout=90)
