"""An MCPServer running for real on the test cluster: its pod 2/2 Ready with the `mcp-gateway` sidecar, and
the official MCP SDK client calling through the Service.

Images, all built by the project: the data-utility example from its Containerfile on the mmdebstrap Python
base, pushed to a plain-HTTP distribution registry on loopback and PULLED by the node's containerd; the
platform image (`mcp-runtime image platform`) for the sidecar, copied into containerd. The operator
(`mcp-runtime operator run`, on the host) renders the Deployment, Service, policy ConfigMap and the sidecar's
RBAC; the sidecar watches its policy ConfigMap through the API server with its ServiceAccount's token.
The client reaches the sidecar at the Service's ClusterIP (kube-proxy on this node): tools/list shows only
the granted tools, an ungranted tool is denied with its reason, deleting the grant denies the next call
(the revocation path of bench/kube_revocation.py) and re-applying it restores access.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from fixtures.kube_cluster import KubeCluster
from fixtures.kube_servers import PodServer, call_tool, list_tools, operator_process


def test_server_pod_runs_with_its_gateway_sidecar_and_the_sdk_client_is_governed(
        kube_pods_cluster: KubeCluster, platform_crds: list[str], kube_namespace: str, jwks_namespace: str,
        kube_platform_image: str, kube_example_image: str, tmp_path: Path) -> None:
    cluster, ns = kube_pods_cluster, kube_namespace
    log = tmp_path / "operator.log"
    with operator_process(cluster, [ns, jwks_namespace], jwks_namespace, log, kube_platform_image):
        server = PodServer(cluster, ns, jwks_namespace, kube_example_image)
        started = time.monotonic()
        server.apply_all()
        server.wait_ready(log)
        print(f"\n[server pod] payments Ready 2/2 {time.monotonic() - started:.1f}s after apply")

        pod = server.pod()
        containers = {c["name"]: c for c in pod["spec"]["containers"]}
        assert containers["mcp-server"]["image"] == kube_example_image
        assert containers["mcp-gateway"]["image"] == kube_platform_image
        # containerd pulled the example from the registry (not preloaded).
        events = json.loads(cluster.kubectl("-n", ns, "get", "events", "--field-selector",
                                            f"involvedObject.name={pod['metadata']['name']}", "-o", "json").stdout)
        messages = [e["message"] for e in events["items"]]
        assert any(m.startswith(f'Successfully pulled image "{kube_example_image}"') for m in messages) or any(
            f'"{kube_example_image}" already present' in m for m in messages), messages
        status = (cluster.get("mcpserver", "payments", ns) or {})["status"]
        assert status["readyReplicas"] == 1
        assert {c["type"]: c["status"] for c in status["conditions"]}["GatewayReady"] == "True"

        url, token = server.url(), server.token()
        assert list_tools(url, token) == ["add", "echo"]  # only what the grant allows
        assert call_tool(url, token, "echo", {"text": "hello from globex"}) == ("ok", "hello from globex")
        assert call_tool(url, token, "add", {"a": 2, "b": 3}) == ("ok", "5")
        assert call_tool(url, token, "reverse", {"text": "abc"}) == ("denied", "tool_not_granted")
        # The sidecar enforces the policy it watches through the API server, not a mounted file.
        base = url.split("/payments/")[0]
        assert httpx.get(f"{base}/config/status", timeout=5).json()["source"] == f"configmap:{ns}/payments-policy"

        # grant delete -> operator -> ConfigMap -> the sidecar's watch -> denied
        cluster.kubectl("-n", ns, "delete", "mcpaccessgrant", "payments-to-globex")
        deleted = time.monotonic()
        cluster.wait_for("the deleted grant to deny the next call", lambda: call_tool(
            url, token, "echo", {"text": "again"}) == ("denied", "no_matching_grant"), timeout=30, interval=0.05)
        print(f"[server pod] grant delete -> denied through the sidecar in {time.monotonic() - deleted:.2f}s")
        cluster.apply(server.grant(), namespace=ns)
        cluster.wait_for("the re-applied grant to allow echo again", lambda: call_tool(
            url, token, "echo", {"text": "back"}) == ("ok", "back"), timeout=30, interval=0.05)
        cluster.kubectl("-n", ns, "delete", "mcpservers", "--all", "--timeout=60s", timeout=90)
