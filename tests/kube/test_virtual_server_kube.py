"""Virtual servers on the REAL test cluster (docs/virtual-servers.md, "On Kubernetes").

(a) `mcp-runtime operator run` reconciles an MCPVirtualServer over two members in two namespaces into its
gateway objects (owned by V in its namespace; labelled, with a Role on exactly the member's policy
ConfigMap, a direct Service and a NetworkPolicy, in the other), writes V's status (Pending with why,
then naming a missing member), compiles V's session into both members' policies, and deleting V
removes what it rendered in the other namespace (by label; no finalizer) while the garbage collector
takes the rest.

(b) With pods: both members run the data-utility example (the official Python SDK) with their sidecars,
V's gateway pod runs the platform image this checkout builds; the official SDK client through V's Service
lists the tools each member's grant allows, prefixed, calls one on each member, and an ungranted tool is
denied with the member's reason. The test cluster's CNI (bridge) does not enforce NetworkPolicy, so the
policies are checked as objects, not as blocked traffic.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from fixtures.kube_cluster import KubeCluster, fresh_namespace
from fixtures.kube_servers import CALLER_TEAM, GROUP_VERSION, PodServer, call_tool, list_tools, operator_process
from mcp_runtime.kube import KubeClient
from mcp_runtime.operator.reconcile import Reconciler
from mcp_runtime.operator.reconcile_virtual import sweep_virtual_orphans
from mcp_runtime.operator.settings import OperatorSettings
from mcp_runtime.security import KeyRing, SessionClaims, issue_session_token

LABELS = "mcpruntime.org/virtual-server=toolbox"


@pytest.fixture
def other_namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    """A second team's namespace (the cross-namespace member lives here)."""
    with fresh_namespace(kube_cluster) as name:
        yield name


def member(name: str, ns: str, image: str = "registry.example.com/acme/app:v1") -> dict[str, Any]:
    repository, _, tag = image.rpartition(":")
    return {"apiVersion": GROUP_VERSION, "kind": "MCPServer", "metadata": {"name": name, "namespace": ns},
            "spec": {"teamID": "acme-uuid", "image": repository, "imageTag": tag, "port": 8088,
                     "tools": [{"name": "echo", "sideEffect": "read"}]}}


def virtual(ns: str, other: str, *extra: str) -> dict[str, Any]:
    members = [{"serverRef": {"name": "payments"}}, {"serverRef": {"name": "helper", "namespace": other},
                                                     "prefix": "h_"}]
    members += [{"serverRef": {"name": name}} for name in extra]
    return {"apiVersion": GROUP_VERSION, "kind": "MCPVirtualServer", "metadata": {"name": "toolbox", "namespace": ns},
            "spec": {"members": members}}


def virtual_session(ns: str) -> dict[str, Any]:
    expires = (datetime.now(UTC) + timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": GROUP_VERSION, "kind": "MCPAgentSession",
            "metadata": {"name": "toolbox-cursor", "namespace": ns},
            "spec": {"serverRef": {"name": "toolbox"},
                     "subject": {"agentID": "cursor", "teamID": CALLER_TEAM, "humanID": "bob@globex.com"},
                     "consentedTrust": "low", "expiresAt": expires}}


def labelled(cluster: KubeCluster, ns: str) -> list[tuple[str, str]]:
    items = json.loads(cluster.kubectl("-n", ns, "get", "roles,rolebindings,services,networkpolicies,deployments,"
                                       "configmaps,ingresses,serviceaccounts", "-l", LABELS, "-o", "json").stdout)
    return sorted((o["kind"], o["metadata"]["name"]) for o in items["items"])


def status(cluster: KubeCluster, ns: str) -> dict[str, Any]:
    return dict(((cluster.get("mcpvirtualserver", "toolbox", ns) or {}).get("status")) or {})


def policy_sessions(cluster: KubeCluster, name: str, ns: str) -> list[str]:
    cm = cluster.get("configmap", f"{name}-policy", ns) or {}
    return [s["name"] for s in json.loads((cm.get("data") or {}).get("policy.json", "{}")).get("sessions", [])]


def test_the_operator_renders_a_virtual_server_over_two_namespaces_and_cleans_up_after_it(
        kube_cluster: KubeCluster, platform_crds: list[str], kube_namespace: str, other_namespace: str,
        jwks_namespace: str, tmp_path: Path) -> None:
    cluster, ns, other = kube_cluster, kube_namespace, other_namespace
    log = tmp_path / "operator.log"
    with operator_process(cluster, [ns, other, jwks_namespace], jwks_namespace, log):
        try:
            _reconcile_and_delete(cluster, ns, other)
        except BaseException:
            print(f"--- the operator's log (tail) ---\n{log.read_text()[-8000:]}")
            raise

    # With the operator down, V's delete event is missed: the sweep deletes what V left in other namespaces,
    # and nothing of a virtual server that still exists.
    cluster.apply(virtual(ns, other), namespace=ns)
    def role(owner: str) -> dict[str, Any]:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": f"{owner}-left", "labels": {
                    "app.kubernetes.io/managed-by": "mcp-runtime", "mcpruntime.org/virtual-server": owner,
                    "mcpruntime.org/virtual-server-namespace": ns}}, "rules": []}
    cluster.apply(role("gone"), role("toolbox"), namespace=other)
    client = KubeClient.from_environment(str(cluster.kubeconfig))
    try:
        assert sweep_virtual_orphans(Reconciler(client, OperatorSettings(namespaces=(ns, other)))) == 1
    finally:
        client.close()
    assert cluster.get("role", "gone-left", other) is None
    assert cluster.get("role", "toolbox-left", other) is not None


def _reconcile_and_delete(cluster: KubeCluster, ns: str, other: str) -> None:
    cluster.apply(member("payments", ns), virtual_session(ns), namespace=ns)
    cluster.apply(member("helper", other), namespace=other)
    cluster.apply(virtual(ns, other), namespace=ns)
    uid = (cluster.get("mcpvirtualserver", "toolbox", ns) or {})["metadata"]["uid"]

    mine = [("ConfigMap", "toolbox-virtual"), ("Deployment", "toolbox-virtual-gateway"),
            ("Ingress", "toolbox-virtual-gateway"), ("Service", "toolbox-virtual-gateway"),
            ("ServiceAccount", "toolbox-virtual-gateway")]
    cluster.wait_for("V's objects in its namespace", lambda: set(mine) <= set(labelled(cluster, ns)), timeout=60)
    for kind, name in mine:
        refs = (cluster.get(kind.lower(), name, ns) or {})["metadata"].get("ownerReferences", [])
        assert [(r["kind"], r["uid"], r["controller"]) for r in refs] == [("MCPVirtualServer", uid, True)], kind
    cluster.wait_for("V's objects in the member's namespace", lambda: len(labelled(cluster, other)) == 4, timeout=60)
    base = f"toolbox-{ns}"
    assert labelled(cluster, other) == sorted([
        ("NetworkPolicy", f"{base}-helper-virtual"), ("Role", f"{base}-virtual-reader"),
        ("RoleBinding", f"{base}-virtual-reader"), ("Service", f"{base}-helper-direct")])
    role = cluster.get("role", f"{base}-virtual-reader", other) or {}
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["helper-policy"],
                              "verbs": ["get", "list", "watch"]}]
    assert not role["metadata"].get("ownerReferences")  # an owner cannot live in another namespace
    netpol = cluster.get("networkpolicy", f"{base}-helper-virtual", other) or {}
    assert netpol["spec"]["ingress"][0]["from"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": ns}}
    # The API server accepted V's account as a subject of the member namespace's RoleBinding: it may read
    # that one ConfigMap and nothing else there.
    account = f"system:serviceaccount:{ns}:toolbox-virtual-gateway"
    can = cluster.kubectl("auth", "can-i", "watch", "configmaps/helper-policy", "-n", other, "--as", account,
                          check=False).stdout.strip()
    cannot = cluster.kubectl("auth", "can-i", "get", "configmaps/other", "-n", other, "--as", account,
                             check=False).stdout.strip()
    assert (can, cannot) == ("yes", "no")

    # No gateway pod gets ready here (the default image is not on the node): Pending, with why.
    cluster.wait_for("V Pending with a message", lambda: status(cluster, ns).get("phase") == "Pending", timeout=60)
    assert "Deployment toolbox-virtual-gateway" in status(cluster, ns)["message"], status(cluster, ns)
    assert status(cluster, ns)["url"] == "/v/toolbox/mcp"
    # V's session is compiled into both members' policies under its qualified name.
    for name, where in (("payments", ns), ("helper", other)):
        cluster.wait_for(f"V's session in {name}'s policy",
                         lambda name=name, where=where: f"{ns}/toolbox-cursor" in policy_sessions(cluster, name, where))

    # A member that moves its app port: V's config (and direct Service) follow it.
    def helper_upstream() -> str:
        data = (cluster.get("configmap", "toolbox-virtual", ns) or {}).get("data") or {}
        return next(m["upstream"] for m in json.loads(data["virtual.json"])["members"] if m["name"] == "helper")
    assert helper_upstream() == f"http://{base}-helper-direct.{other}.svc:8088/helper/mcp"
    cluster.kubectl("-n", other, "patch", "mcpserver", "helper", "--type=merge", "-p", '{"spec": {"port": 9000}}')
    cluster.wait_for("V's config following the member's port", lambda: ":9000/" in helper_upstream(), timeout=60)
    cluster.wait_for("the direct Service too", lambda: (cluster.get("service", f"{base}-helper-direct", other) or {})[
        "spec"]["ports"][0]["targetPort"] == 9000, timeout=30)

    # A member that does not exist: named in the status.
    cluster.apply(virtual(ns, other, "ghost"), namespace=ns)
    cluster.wait_for("the missing member in V's status", lambda: f"{ns}/ghost not found" in status(
        cluster, ns).get("message", ""), timeout=60)
    conditions = {c["type"]: c["status"] for c in status(cluster, ns)["conditions"]}
    assert conditions["MembersFound"] == "False" and conditions["Ready"] == "False"

    # Deleting V: the member namespace's objects go by label, the rest by garbage collection, and its
    # session leaves the members' policies. No finalizer on V (its delete never waits on the operator).
    assert not (cluster.get("mcpvirtualserver", "toolbox", ns) or {})["metadata"].get("finalizers")
    cluster.kubectl("-n", ns, "delete", "mcpvirtualserver", "toolbox", "--timeout=30s", timeout=60)
    cluster.wait_for("V's objects gone from the member's namespace", lambda: labelled(cluster, other) == [], timeout=60)
    cluster.wait_for("V's objects collected in its namespace", lambda: labelled(cluster, ns) == [], timeout=90)
    cluster.wait_for("V's session gone from the member's policy",
                     lambda: policy_sessions(cluster, "helper", other) == [], timeout=60)


# --- (b) pods -----------------------------------------------------------------------------------------

def test_a_virtual_servers_gateway_pod_serves_the_members_tools_governed_by_each_members_policy(
        kube_pods_cluster: KubeCluster, platform_crds: list[str], kube_namespace: str, other_namespace: str,
        jwks_namespace: str, kube_platform_image: str, kube_example_image: str, tmp_path: Path) -> None:
    cluster, ns, other = kube_pods_cluster, kube_namespace, other_namespace
    log = tmp_path / "operator.log"
    keyring = KeyRing.generate()
    payments = PodServer(cluster, ns, jwks_namespace, kube_example_image, keyring=keyring, granted=("echo", "add"))
    helper = PodServer(cluster, other, jwks_namespace, kube_example_image, keyring=keyring, name="helper",
                       granted=("upper",))
    # the test cluster runs no DNS: V's gateway reaches the members' direct Services by ClusterIP
    with operator_process(cluster, [ns, other, jwks_namespace], jwks_namespace, log, kube_platform_image,
                          env={"MCP_OPERATOR_VIRTUAL_MEMBER_ADDRESS": "cluster-ip"}):
        payments.apply_all()
        helper.apply_all()
        cluster.apply(virtual_session(ns), virtual(ns, other), namespace=ns)
        applied = time.monotonic()
        payments.wait_ready(log)
        helper.wait_ready(log)
        try:
            cluster.wait_for("V Ready (its gateway loaded both members' policies)",
                             lambda: status(cluster, ns).get("phase") == "Ready", timeout=180)
            print(f"\n[virtual pod] V Ready {time.monotonic() - applied:.1f}s after apply (members' pods included)",
                  file=sys.stderr)
        except BaseException:
            pods = cluster.kubectl("-n", ns, "get", "pods", "-l", LABELS, "-o", "wide", check=False).stdout
            logs = cluster.kubectl("-n", ns, "logs", "-l", LABELS, "--tail=50", check=False).stdout
            print(f"V status: {status(cluster, ns)}\n{pods}\n{logs}\noperator:\n{log.read_text()[-4000:]}")
            raise
        service = cluster.get("service", "toolbox-virtual-gateway", ns) or {}
        url = f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}/v/toolbox/mcp"
        now = datetime.now(UTC)
        token = issue_session_token(keyring, SessionClaims(
            session_id="toolbox-cursor", namespace=ns, server="toolbox", human_id="bob@globex.com",
            agent_id="cursor", team_id=CALLER_TEAM, trust="low", expires_at=now + timedelta(hours=1),
            issued_at=now - timedelta(seconds=5)))

        started = time.monotonic()
        assert list_tools(url, token) == ["h_upper", "payments_add", "payments_echo"]
        print(f"[virtual pod] first session + tools/list through V: {(time.monotonic() - started) * 1000:.0f} ms",
              file=sys.stderr)
        assert call_tool(url, token, "payments_add", {"a": 2, "b": 3})[0] == "ok"
        assert call_tool(url, token, "h_upper", {"text": "virtual"}) == ("ok", "VIRTUAL")
        assert call_tool(url, token, "payments_reverse", {"text": "abc"}) == ("denied", "tool_not_granted")
        assert call_tool(url, token, "h_echo", {"text": "x"}) == ("denied", "tool_not_granted")
        through_v = anyio.run(_latencies, url, token, "payments_add", 20)
        direct = anyio.run(_latencies, payments.url(), payments.token(), "add", 20)
        print(f"[virtual pod] tools/call p50 through V {statistics.median(through_v) * 1000:.1f} ms, through the "
              f"member's own Service and sidecar {statistics.median(direct) * 1000:.1f} ms (20 calls each)",
              file=sys.stderr)

        # Revoking V's session reaches V's gateway through its watch of the members' ConfigMaps.
        revoked_at = time.monotonic()
        cluster.kubectl("-n", ns, "patch", "mcpagentsession", "toolbox-cursor", "--type=merge", "-p",
                        '{"spec": {"revoked": true}}')
        cluster.wait_for("V refusing the revoked session", lambda: _initialize_status(url, token) == 401, timeout=30,
                         interval=0.1)
        print(f"[virtual pod] session revoked -> V refuses it in {time.monotonic() - revoked_at:.2f}s",
              file=sys.stderr)
        cluster.kubectl("-n", ns, "delete", "mcpvirtualserver", "toolbox", "--timeout=60s", timeout=90)
        cluster.kubectl("-n", ns, "delete", "mcpservers", "--all", "--timeout=60s", timeout=90)
        cluster.kubectl("-n", other, "delete", "mcpservers", "--all", "--timeout=60s", timeout=90)


async def _latencies(url: str, token: str, tool: str, calls: int) -> list[float]:
    """Seconds per `tools/call` of `tool` in one SDK session (after initialize)."""
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        seen = []
        for i in range(calls):
            started = time.monotonic()
            result = await session.call_tool(tool, {"a": i, "b": 1})
            seen.append(time.monotonic() - started)
            assert not result.is_error, result
        return seen


def _initialize_status(url: str, token: str) -> int:
    return httpx.post(url, timeout=10, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}).status_code
