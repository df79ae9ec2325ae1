"""`cluster init`, `cluster config --ingress traefik`, `sentinel events` and `server status --use-kube` on the
REAL test cluster, as an operator runs them (the CLI as a subprocess with KUBECONFIG).

Each test works in namespaces (and cluster-scoped names) of its own, made unique by a random suffix, and
deletes them after. The events come from the real controller-manager (the Deployment controller's
ScalingReplicaSet, the ReplicaSet controller's SuccessfulCreate); the pod detail from pods the kubelet runs
(tier 2) with the cluster's own test image.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from fixtures.cli import run_cli
from fixtures.kube_cluster import KubeCluster


def cli(cluster: KubeCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(list(args), env={"KUBECONFIG": str(cluster.kubeconfig)}, timeout=120)


@pytest.fixture
def unique() -> str:
    return f"kc-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cleanup(kube_cluster: KubeCluster) -> Iterator[list[tuple[str, str]]]:
    """(kind, name) of cluster-scoped objects and namespaces the test created, deleted after it."""
    created: list[tuple[str, str]] = []
    yield created
    for kind, name in reversed(created):
        kube_cluster.kubectl("delete", kind, name, "--ignore-not-found", "--wait=false", check=False)


def test_cluster_init_applies_the_crds_and_namespaces(kube_cluster: KubeCluster, platform_crds: list[str],
                                                      unique: str, cleanup: list[tuple[str, str]]) -> None:
    cluster = kube_cluster
    cleanup.append(("namespace", unique))
    plan = cli(cluster, "cluster", "init", "--namespace", unique, "--dry-run", "-o", "yaml")
    assert plan.returncode == 0, plan.stderr
    planned = {(o["kind"], o["metadata"]["name"]) for o in yaml.safe_load(plan.stdout)}
    assert planned == {("CustomResourceDefinition", n) for n in platform_crds} | {
        ("Namespace", unique), ("Namespace", "mcp-servers-org"), ("Namespace", "mcp-servers-public")}
    assert cluster.get("namespace", unique) is None  # a dry run changes nothing

    done = cli(cluster, "cluster", "init", "--namespace", unique)
    assert done.returncode == 0, done.stderr
    assert f"namespace/{unique} created" in done.stdout.splitlines()
    labels = (cluster.get("namespace", unique) or {})["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "mcp-runtime"
    assert (cluster.get("namespace", "mcp-servers-org") or {})["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "restricted"
    again = cli(cluster, "cluster", "init", "--namespace", unique, "-o", "json")
    assert again.returncode == 0, again.stderr
    assert {r["action"] for r in json.loads(again.stdout)} == {"unchanged"}


def test_cluster_config_installs_traefik_for_an_ingress_class(kube_cluster: KubeCluster, unique: str,
                                                                cleanup: list[tuple[str, str]]) -> None:
    cluster, ns = kube_cluster, f"{unique}-traefik"
    cleanup += [("namespace", ns), ("ingressclass", unique), ("clusterrole", f"mcp-runtime-ingress-{unique}"),
                ("clusterrolebinding", f"mcp-runtime-ingress-{unique}")]
    args = ["cluster", "config", "--ingress", "traefik", "--ingress-class", unique, "--ingress-namespace", ns,
            "--service-type", "NodePort"]
    done = cli(cluster, *args)
    assert done.returncode == 0, done.stderr
    for ref in (f"namespace/{ns}", f"serviceaccount/traefik -n {ns}", f"deployment/traefik -n {ns}",
                f"service/traefik -n {ns}", f"ingressclass/{unique}",
                f"clusterrolebinding/mcp-runtime-ingress-{unique}"):
        assert f"{ref} created" in done.stdout.splitlines(), (ref, done.stdout)
    assert (cluster.get("ingressclass", unique) or {})["spec"]["controller"] == "traefik.io/ingress-controller"
    deployment = cluster.get("deployment", "traefik", ns) or {}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert f"--providers.kubernetesingress.ingressClass={unique}" in container["args"]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert (cluster.get("service", "traefik", ns) or {})["spec"]["type"] == "NodePort"
    # Traefik's ServiceAccount may read what it routes, as bound on the real server.
    sa = f"system:serviceaccount:{ns}:traefik"
    for verb, resource, *extra in [("watch", "ingresses.networking.k8s.io"),
                                   ("list", "endpointslices.discovery.k8s.io"),
                                   ("update", "ingresses.networking.k8s.io", "--subresource=status")]:
        can = cluster.kubectl("auth", "can-i", "--as", sa, verb, resource, *extra, check=False)
        assert can.stdout.strip() == "yes", (verb, resource, can.stderr)
    cannot = cluster.kubectl("auth", "can-i", "--as", sa, "update", "secrets", check=False)
    assert cannot.stdout.strip() == "no"

    again = cli(cluster, *args, "-o", "json")
    assert {r["action"] for r in json.loads(again.stdout)} == {"unchanged"}

    wrong = cli(cluster, "cluster", "config", "--ingress", "nginx")
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == "error: --ingress 'nginx' is not supported (traefik or none)"


def test_cluster_config_keeps_a_traefik_it_did_not_install(kube_cluster: KubeCluster, unique: str,
                                                           cleanup: list[tuple[str, str]]) -> None:
    cluster, ns = kube_cluster, f"{unique}-k3s"
    cleanup += [("namespace", ns), ("ingressclass", unique)]
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("-n", ns, "create", "deployment", "traefik", "--image=docker.io/library/traefik:v3.7.13",
                    "--replicas=0")
    done = cli(cluster, "cluster", "config", "--ingress-class", unique, "--ingress-namespace", ns)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == f"ingressclass/{unique} created"
    assert f"Traefik {ns}/traefik was not installed by mcp-runtime: kept as it is" in done.stdout
    assert cluster.get("serviceaccount", "traefik", ns) is None


def wait_for_events(cluster: KubeCluster, ns: str, reason: str) -> None:
    cluster.wait_for(f"a {reason} event in {ns}", lambda: reason in cluster.kubectl(
        "-n", ns, "get", "events", "-o", "jsonpath={.items[*].reason}").stdout, timeout=60)


def test_sentinel_events_shows_the_components_events(kube_cluster: KubeCluster, kube_namespace: str) -> None:
    cluster, ns = kube_cluster, kube_namespace
    for name in ("mcp-sentinel-ingest", "other"):
        cluster.kubectl("-n", ns, "create", "deployment", name, "--image=registry.invalid/none:0", "--replicas=0")
        cluster.kubectl("-n", ns, "scale", "deployment", name, "--replicas=1")
    wait_for_events(cluster, ns, "ScalingReplicaSet")
    wait_for_events(cluster, ns, "SuccessfulCreate")
    cluster.apply({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ingest-warning", "namespace": ns},
                   "involvedObject": {"kind": "Deployment", "name": "mcp-sentinel-ingest", "namespace": ns},
                   "type": "Warning", "reason": "IngestBacklog", "message": "spool has 120 events",
                   "lastTimestamp": "2026-12-06T08:00:00Z", "source": {"component": "test"}})

    table = cli(cluster, "sentinel", "events", "--namespace", ns)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE"]
    assert "deployment/other" in table.stdout and "ScalingReplicaSet" in table.stdout

    ingest: list[dict[str, Any]] = json.loads(cli(cluster, "sentinel", "events", "ingest", "--namespace", ns,
                                                  "-o", "json").stdout)
    assert {r["reason"] for r in ingest} >= {"ScalingReplicaSet", "SuccessfulCreate", "IngestBacklog"}
    assert all(r["object"].split("/")[1].startswith("mcp-sentinel-ingest") for r in ingest)
    assert [r["lastSeen"] for r in ingest] == sorted((r["lastSeen"] for r in ingest), reverse=True)

    warnings = json.loads(cli(cluster, "sentinel", "events", "ingest", "--warnings", "--namespace", ns,
                              "-o", "json").stdout)
    assert warnings and {r["type"] for r in warnings} == {"Warning"}
    assert "IngestBacklog" in {r["reason"] for r in warnings}
    limited = json.loads(cli(cluster, "sentinel", "events", "--limit", "1", "--namespace", ns, "-o", "json").stdout)
    assert len(limited) == 1

    gateway = cli(cluster, "sentinel", "events", "gateway", "--namespace", ns)
    assert gateway.returncode == 1 and "server status NAME --namespace NS --use-kube" in gateway.stderr
    external = cli(cluster, "sentinel", "events", "clickhouse", "--namespace", ns)
    assert external.returncode == 1 and "external service" in external.stderr


SERVER = {"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPServer", "metadata": {"name": "workspace-demo"},
          "spec": {"image": "registry.example.com/acme/workspace-demo", "imageTag": "v1",
                   "tools": [{"name": "echo", "sideEffect": "read"}]}}


def _container(name: str, image: str, port: int) -> dict[str, Any]:
    return {"name": name, "image": image, "imagePullPolicy": "Never", "env": [{"name": "PORT", "value": str(port)}],
            "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                "capabilities": {"drop": ["ALL"]}}}


def _pod(name: str, app_image: str, gateway_image: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"mcpruntime.org/server": "workspace-demo"}},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [_container("mcp-server", app_image, 8088),
                                    _container("mcp-gateway", gateway_image, 8089)]}}


def test_server_status_use_kube_shows_pod_detail(kube_pods_cluster: KubeCluster, platform_crds: list[str],
                                                 kube_namespace: str) -> None:
    cluster, ns = kube_pods_cluster, kube_namespace
    cluster.apply(SERVER, namespace=ns)
    no_pods = cli(cluster, "server", "status", "workspace-demo", "--namespace", ns, "--use-kube")
    assert no_pods.returncode == 0, no_pods.stderr
    assert "No pods yet" in no_pods.stdout and "Pending" in no_pods.stdout

    image = cluster.tools["KUBE_TESTSERVER_IMAGE"]
    cluster.apply(_pod("workspace-demo-good", image, image), _pod("workspace-demo-bad", image,
                                                                  "registry.invalid/no-such-gateway:0"),
                  namespace=ns)
    cluster.kubectl("-n", ns, "wait", "--for=condition=Ready", "pod/workspace-demo-good", "--timeout=120s",
                    timeout=150)

    def bad_waiting() -> bool:
        pod = cluster.get("pod", "workspace-demo-bad", ns) or {}
        return any((s.get("state") or {}).get("waiting", {}).get("reason") == "ErrImageNeverPull"
                   for s in (pod.get("status") or {}).get("containerStatuses") or [])
    cluster.wait_for("ErrImageNeverPull on the bad pod's gateway", bad_waiting, timeout=120)

    detail = json.loads(cli(cluster, "server", "status", "workspace-demo", "--namespace", ns, "--use-kube",
                            "-o", "json").stdout)
    pods = {p["pod"]: p for p in detail["pods"]}
    assert pods["workspace-demo-good"]["ready"] == "2/2" and pods["workspace-demo-good"]["status"] == "Running"
    assert pods["workspace-demo-good"]["node"]
    assert pods["workspace-demo-bad"]["ready"] == "1/2" and pods["workspace-demo-bad"]["status"] == "ErrImageNeverPull"
    gateway = next(c for c in pods["workspace-demo-bad"]["containers"] if c["container"] == "mcp-gateway")
    assert gateway["state"] == "waiting" and gateway["reason"].startswith("ErrImageNeverPull")
    assert gateway["image"] == "registry.invalid/no-such-gateway:0"
    assert any(e["object"] == "pod/workspace-demo-bad" for e in detail["events"])

    table = cli(cluster, "server", "status", "workspace-demo", "--namespace", ns, "--use-kube")
    assert table.returncode == 0, table.stderr
    good = next(line.split() for line in table.stdout.splitlines()
                if line.split()[:2] == ["workspace-demo", "workspace-demo-good"])
    assert good[2:4] == ["2/2", "Running"]
    assert any(line.split()[:2] == ["workspace-demo-bad", "mcp-gateway"] for line in table.stdout.splitlines())

    listed = cli(cluster, "server", "status", "--namespace", ns, "--use-kube")
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:2] == ["workspace-demo", ns] for line in listed.stdout.splitlines())
    assert "workspace-demo-bad" in listed.stdout and "ErrImageNeverPull" in listed.stdout

    needs_ns = cli(cluster, "server", "status", "workspace-demo", "--use-kube")
    assert needs_ns.returncode == 1 and "needs --namespace" in needs_ns.stderr
    missing = cli(cluster, "server", "status", "nope", "--namespace", ns, "--use-kube")
    assert missing.returncode == 1 and "MCPServer nope not found" in missing.stderr
