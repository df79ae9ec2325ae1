"""A real Traefik routes MCP requests to a governed server pod on the test cluster.

Traefik v3.7.13 is built by the project from the Go module proxy (tests/kube/traefik.sh: a static binary in
a one-layer image running as uid 65532; docs/kubernetes.md, "Traefik") and pushed to the loopback registry
the node's containerd pulls from. `mcp-runtime cluster config --ingress traefik --image ...` installs it
for an IngressClass of this test's own (its RBAC, Deployment non-root with a read-only root filesystem,
ClusterIP Service); the operator renders the MCPServer's Ingress for that class and host; the official MCP
SDK client calls Traefik's Service (kube-proxy) with the Ingress host, Traefik forwards to the server's
Service and the `mcp-gateway` sidecar governs the call. `cluster doctor` then passes its ingress checks.
Everything the test creates (namespaces, IngressClass, ClusterRole/Binding) is deleted after it.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fixtures.cli import REPO_ROOT, run_cli
from fixtures.kube_cluster import KubeCluster
from fixtures.kube_images import LocalRegistry
from fixtures.kube_servers import PodServer, call_latencies, call_tool, list_tools, operator_process

TRAEFIK_SH = REPO_ROOT / "tests" / "kube" / "traefik.sh"
HOST = "payments.mcp.test"


def cli(cluster: KubeCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(list(args), env={"KUBECONFIG": str(cluster.kubeconfig)}, timeout=120)


@pytest.fixture(scope="module")
def traefik_image(kube_registry: LocalRegistry) -> str:
    """Traefik's image pushed to the registry. `traefik.sh build` waits for a build CI started in the
    background (the cache lock) or builds; a failed build fails this test with its output."""
    started = time.monotonic()
    built = subprocess.run(["bash", str(TRAEFIK_SH), "build"], capture_output=True, text=True, timeout=3600,
                           stdin=subprocess.DEVNULL)
    if built.returncode != 0:
        pytest.fail(f"tests/kube/traefik.sh build failed ({built.returncode}):\n{built.stderr[-4000:]}",
                    pytrace=False)
    progress = "".join(f"\n{line}" for line in built.stderr.strip().splitlines())  # the build's figures
    print(f"{progress}\n[traefik] traefik.sh build: {time.monotonic() - started:.1f}s", file=sys.stderr)
    archive = built.stdout.strip().splitlines()[-1]
    pushed = time.monotonic()
    ref = kube_registry.push(f"oci-archive:{archive}", "mcp-runtime/traefik:v3.7.13")
    print(f"[traefik] {ref} pushed in {time.monotonic() - pushed:.1f}s", file=sys.stderr)
    return ref


@pytest.fixture
def ingress_names(kube_cluster: KubeCluster) -> Iterator[tuple[str, str]]:
    """(Traefik's namespace, the IngressClass) of this test; they and Traefik's cluster RBAC are deleted after."""
    name = f"tr-{uuid.uuid4().hex[:8]}"
    yield name, name
    for kind in ("ingressclass", "clusterrolebinding", "clusterrole"):
        ref = name if kind == "ingressclass" else f"mcp-runtime-ingress-{name}"
        kube_cluster.kubectl("delete", kind, ref, "--ignore-not-found", "--wait=false", check=False)
    kube_cluster.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=false", check=False)


def install_traefik(cluster: KubeCluster, namespace: str, ingress_class: str, image: str) -> str:
    """`cluster config --ingress traefik` through the CLI; waits for Traefik's pod Ready; its Service's URL."""
    started = time.monotonic()
    done = cli(cluster, "cluster", "config", "--ingress", "traefik", "--ingress-class", ingress_class,
               "--ingress-namespace", namespace, "--image", image, "--service-type", "ClusterIP")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"deployment/traefik -n {namespace} created" in done.stdout.splitlines()
    waited = cluster.kubectl("-n", namespace, "rollout", "status", "deployment/traefik", "--timeout=180s",
                             check=False, timeout=200)
    if waited.returncode != 0:
        pods = cluster.kubectl("-n", namespace, "describe", "pods", check=False).stdout
        logs = cluster.kubectl("-n", namespace, "logs", "deployment/traefik", "--tail=40", check=False)
        pytest.fail(f"Traefik not Ready: {waited.stderr}\n{pods[-3000:]}\nlogs:\n{logs.stdout}{logs.stderr}")
    print(f"[traefik] pod Ready {time.monotonic() - started:.1f}s after `cluster config`", file=sys.stderr)
    pod = json.loads(cluster.kubectl("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/name=traefik",
                                     "-o", "json").stdout)["items"][0]
    container = pod["spec"]["containers"][0]
    assert container["image"] == image
    assert container["securityContext"]["runAsUser"] == 65532
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    service = cluster.get("service", "traefik", namespace) or {}
    return f"http://{service['spec']['clusterIP']}:80"


def test_traefik_routes_the_sdk_client_to_a_governed_server_pod(
        kube_pods_cluster: KubeCluster, platform_crds: list[str], kube_namespace: str, jwks_namespace: str,
        kube_platform_image: str, kube_example_image: str, traefik_image: str,
        ingress_names: tuple[str, str], tmp_path: Path) -> None:
    cluster, ns = kube_pods_cluster, kube_namespace
    traefik_ns, ingress_class = ingress_names
    traefik = install_traefik(cluster, traefik_ns, ingress_class, traefik_image)

    log = tmp_path / "operator.log"
    with operator_process(cluster, [ns, jwks_namespace], jwks_namespace, log, kube_platform_image):
        server = PodServer(cluster, ns, jwks_namespace, kube_example_image,
                           ingress={"ingressHost": HOST, "ingressClass": ingress_class})
        server.apply_all()
        server.wait_ready(log)
        ingress = cluster.get("ingress", "payments", ns) or {}
        assert ingress["spec"]["ingressClassName"] == ingress_class
        rule = ingress["spec"]["rules"][0]
        assert rule["host"] == HOST and rule["http"]["paths"][0]["path"] == "/payments/mcp"

        url, token, via = f"{traefik}/payments/mcp", server.token(), {"Host": HOST}
        # Traefik picks the Ingress up from its watch: until then (and for any other host) it answers 404.
        cluster.wait_for("Traefik to route the Ingress", lambda: httpx.post(
            url, headers=via, json={}, timeout=5).status_code != 404, timeout=60)
        assert httpx.post(url, headers={"Host": "other.mcp.test"}, json={}, timeout=5).status_code == 404

        assert list_tools(url, token, via) == ["add", "echo"]  # the sidecar's filtered tools/list
        assert call_tool(url, token, "echo", {"text": "through traefik"}, via) == ("ok", "through traefik")
        assert call_tool(url, token, "reverse", {"text": "abc"}, via) == ("denied", "tool_not_granted")
        # Without a token the sidecar refuses, through Traefik as through the Service.
        assert httpx.post(url, headers=via, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                          timeout=5).status_code == 401

        doctor = cli(cluster, "cluster", "doctor", "--ingress-class", ingress_class, "-o", "json")
        checks = {r["id"]: r for r in json.loads(doctor.stdout)}
        assert checks["ingress-class"]["result"] == "pass", checks["ingress-class"]
        assert checks["ingress-controller"]["result"] == "pass", checks["ingress-controller"]
        assert checks["ingress-controller"]["detail"] == f"Traefik {traefik_ns}/traefik runs (1/1 ready)"

        # A figure for docs/kubernetes.md, not an assertion (the machine is shared).
        direct = call_latencies(server.url(), token, "echo", {"text": "x"}, 50)
        routed = call_latencies(url, token, "echo", {"text": "x"}, 50, via)
        print(f"[traefik] tools/call p50 over 50 calls in one session: through the Service "
              f"{statistics.median(direct) * 1000:.1f} ms, through Traefik {statistics.median(routed) * 1000:.1f} ms",
              file=sys.stderr)
        cluster.kubectl("-n", ns, "delete", "mcpservers", "--all", "--timeout=60s", timeout=90)
