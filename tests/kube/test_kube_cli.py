"""`mcp-runtime server apply|export|patch|logs --use-kube` on the REAL test cluster, as an admin runs them (the
CLI as a subprocess with KUBECONFIG): the API server stores, validates and returns the MCPServer, and the
logs come from a running pod through the kubelet (tier 2).

The pod of `server logs` is not the operator's Deployment (a running server pod with its `mcp-gateway`
sidecar is not yet set up on the test cluster, see docs/kubernetes.md): it is a pod with the server's label
and the two container names the CLI reads, running the cluster's own test image.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from fixtures.cli import run_cli
from fixtures.kube_cluster import KubeCluster

SERVER_YAML = """\
apiVersion: mcpruntime.org/v1alpha1
kind: MCPServer
metadata:
  name: workspace-demo
  namespace: {namespace}
spec:
  image: registry.example.com/acme/workspace-demo
  imageTag: v1
  tools:
    - name: echo
      sideEffect: read
"""


def cli(cluster: KubeCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(list(args), env={"KUBECONFIG": str(cluster.kubeconfig)}, timeout=120)


def test_server_apply_export_patch_round_trip(kube_cluster: KubeCluster, platform_crds: list[str],
                                              kube_namespace: str, tmp_path: Path) -> None:
    cluster, ns = kube_cluster, kube_namespace
    manifest = tmp_path / "server.yaml"
    manifest.write_text(SERVER_YAML.format(namespace=ns))

    refused = cli(cluster, "server", "apply", "--file", str(manifest))
    assert refused.returncode == 1 and "--use-kube" in refused.stderr

    applied = cli(cluster, "server", "apply", "--file", str(manifest), "--use-kube")
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == f"mcpserver/workspace-demo created (namespace {ns})"
    assert (cluster.get("mcpserver", "workspace-demo", ns) or {})["spec"]["imageTag"] == "v1"
    again = cli(cluster, "server", "apply", "--file", str(manifest), "--use-kube")
    assert again.returncode == 0 and "unchanged" in again.stdout
    generation = (cluster.get("mcpserver", "workspace-demo", ns) or {})["metadata"]["generation"]

    patched = cli(cluster, "server", "patch", "workspace-demo", "--namespace", ns,
                  "--patch", '{"spec":{"imageTag":"v2"}}', "--use-kube")
    assert patched.returncode == 0, patched.stderr
    stored = cluster.get("mcpserver", "workspace-demo", ns) or {}
    assert stored["spec"]["imageTag"] == "v2"
    assert stored["metadata"]["generation"] == generation + 1

    invalid = cli(cluster, "server", "patch", "workspace-demo", "--namespace", ns,
                  "--patch", '{"spec":{"replicas":-1}}', "--use-kube")
    assert invalid.returncode == 1 and "replicas" in invalid.stderr and "nothing was changed" in invalid.stderr
    assert (cluster.get("mcpserver", "workspace-demo", ns) or {})["metadata"]["generation"] == generation + 1

    exported = cli(cluster, "server", "export", "workspace-demo", "--namespace", ns, "--use-kube")
    assert exported.returncode == 0, exported.stderr
    doc = yaml.safe_load(exported.stdout)
    assert doc["spec"]["imageTag"] == "v2"
    assert "status" not in doc and "uid" not in doc["metadata"] and "resourceVersion" not in doc["metadata"]
    assert "managedFields" not in doc["metadata"]

    # The export applies back with the same spec (round trip through the real server's defaulting and
    # pruning): the generation does not move.
    manifest.write_text(exported.stdout)
    reapplied = cli(cluster, "server", "apply", "--file", str(manifest), "--use-kube")
    assert reapplied.returncode == 0, reapplied.stderr
    stored = cluster.get("mcpserver", "workspace-demo", ns) or {}
    assert stored["spec"] == doc["spec"]
    assert stored["metadata"]["generation"] == generation + 1

    missing = cli(cluster, "server", "export", "nope", "--namespace", ns, "--use-kube")
    assert missing.returncode == 1 and missing.stderr.startswith("error: MCPServer nope not found")


def _container(name: str, image: str, port: int) -> dict[str, Any]:
    return {"name": name, "image": image, "imagePullPolicy": "Never", "env": [{"name": "PORT", "value": str(port)}],
            "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                "capabilities": {"drop": ["ALL"]}}}


def test_server_logs_reads_the_pods_containers_through_the_kubelet(
        kube_pods_cluster: KubeCluster, platform_crds: list[str], kube_namespace: str, tmp_path: Path) -> None:
    cluster, ns = kube_pods_cluster, kube_namespace
    no_server = cli(cluster, "server", "logs", "workspace-demo", "--namespace", ns, "--use-kube")
    assert no_server.returncode == 1 and "MCPServer workspace-demo not found" in no_server.stderr

    cluster.kubectl("apply", "-f", "-", input=SERVER_YAML.format(namespace=ns))
    no_pods = cli(cluster, "server", "logs", "workspace-demo", "--namespace", ns, "--use-kube")
    assert no_pods.returncode == 1 and "has no pods yet" in no_pods.stderr

    image = cluster.tools["KUBE_TESTSERVER_IMAGE"]
    cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "workspace-demo-abc", "labels": {"mcpruntime.org/server": "workspace-demo"}},
        "spec": {"terminationGracePeriodSeconds": 1,
                 "containers": [_container("mcp-server", image, 8088), _container("mcp-gateway", image, 8089)]}},
        namespace=ns)
    cluster.kubectl("-n", ns, "wait", "--for=condition=Ready", "pod/workspace-demo-abc", "--timeout=120s",
                    timeout=150)

    logs = cli(cluster, "server", "logs", "workspace-demo", "--namespace", ns, "--use-kube")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.strip().endswith("kube-testserver listening on :8088")
    gateway = cli(cluster, "server", "logs", "workspace-demo", "--namespace", ns, "--gateway", "--use-kube")
    assert gateway.returncode == 0, gateway.stderr
    assert gateway.stdout.strip().endswith("kube-testserver listening on :8089")
