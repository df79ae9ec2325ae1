"""The operator on the REAL test cluster: our CRDs (deploy/crds) enforced by the real API server, and
`mcp-runtime operator run` (kopf) reconciling MCPServer, MCPAccessGrant and MCPAgentSession as a platform
team runs it, with the real garbage collector deleting what a deleted MCPServer owned.

What stays on the fake API server (tests/integration/test_operator_kube_api.py): the `Ready` phase, which
needs the Deployment's pods to become ready: an MCP server image beside the platform image as the
`mcp-gateway` sidecar, which the test cluster's containerd does not hold yet; so the server stays `Pending`
with `DeploymentReady=False`, asserted below. The sidecar's ConfigMap watch on the real API server is in
tests/kube/test_kube_policy_watch.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fixtures.cli import cli_env
from fixtures.kube_cluster import KubeCluster, fresh_namespace
from fixtures.servers import stop_process
from mcp_runtime.kube import KubeClient
from mcp_runtime.operator.reconcile import Reconciler
from mcp_runtime.operator.settings import OperatorSettings

GROUP_VERSION = "mcpruntime.org/v1alpha1"
JWKS = {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "abc", "kid": "k1"}]}
OWNED = [("deployment", "payments"), ("service", "payments"), ("ingress", "payments"),
         ("configmap", "payments-policy"), ("serviceaccount", "payments-gateway"),
         ("role", "payments-policy-reader"), ("rolebinding", "payments-policy-reader")]


def server(ns: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"teamID": "acme-uuid", "image": "registry.example.com/acme/payments",
                            "imageTag": "v1", "tools": [{"name": "echo", "sideEffect": "read"}]}
    body.update(spec)
    return {"apiVersion": GROUP_VERSION, "kind": "MCPServer", "metadata": {"name": "payments", "namespace": ns},
            "spec": body}


def grant(ns: str, name: str = "cursor-echo", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"serverRef": {"name": "payments"}, "subject": {"agentID": "cursor"},
                            "toolRules": [{"name": "echo", "decision": "allow"}]}
    body.update(spec)
    return {"apiVersion": GROUP_VERSION, "kind": "MCPAccessGrant", "metadata": {"name": name, "namespace": ns},
            "spec": body}


def session(ns: str, name: str = "sess-1") -> dict[str, Any]:
    return {"apiVersion": GROUP_VERSION, "kind": "MCPAgentSession", "metadata": {"name": name, "namespace": ns},
            "spec": {"serverRef": {"name": "payments"}, "subject": {"agentID": "cursor"},
                     "expiresAt": "2030-01-01T00:00:00Z"}}


def conditions(obj: dict[str, Any] | None) -> dict[str, str]:
    return {c["type"]: c["status"] for c in ((obj or {}).get("status") or {}).get("conditions", [])}


def phase(obj: dict[str, Any] | None) -> str | None:
    return ((obj or {}).get("status") or {}).get("phase")


# --- the CRDs ---------------------------------------------------------------------------------------

def test_the_crds_are_established_and_the_api_server_enforces_their_schemas(
        kube_cluster: KubeCluster, platform_crds: list[str], kube_namespace: str) -> None:
    cluster, ns = kube_cluster, kube_namespace
    for name in platform_crds:
        crd = cluster.get("crd", name)
        assert crd is not None
        assert conditions(crd)["Established"] == "True"
        assert conditions(crd)["NamesAccepted"] == "True"

    no_image = server(ns)
    del no_image["spec"]["image"]
    refused = cluster.kubectl("create", "-f", "-", input=json.dumps(no_image), check=False)
    assert refused.returncode != 0
    assert 'The MCPServer "payments" is invalid: spec.image: Required value' in refused.stderr

    bad_trust = cluster.kubectl("create", "-f", "-", check=False,
                                input=json.dumps(grant(ns, maxTrust="absolute")))
    assert bad_trust.returncode != 0
    assert 'spec.maxTrust: Unsupported value: "absolute"' in bad_trust.stderr

    bad_rule = cluster.kubectl("create", "-f", "-", check=False, input=json.dumps(
        grant(ns, toolRules=[{"name": "echo", "decision": "maybe"}])))
    assert bad_rule.returncode != 0
    assert "spec.toolRules[0].decision: Unsupported value" in bad_rule.stderr

    # Nothing was stored by the refused writes; a valid server is, and its status is a subresource.
    assert cluster.kubectl("-n", ns, "get", "mcpservers,mcpaccessgrants", "-o", "name").stdout == ""
    cluster.apply(server(ns))
    cluster.kubectl("-n", ns, "patch", "mcpserver", "payments", "--type=merge", "-p",
                    '{"status": {"phase": "Ready"}}')
    assert "status" not in (cluster.get("mcpserver", "payments", ns) or {})
    printed = cluster.kubectl("-n", ns, "get", "mcpserver", "payments").stdout
    assert printed.split()[0] == "NAME" and "payments" in printed


# --- the operator -----------------------------------------------------------------------------------

@pytest.fixture
def operator(kube_cluster: KubeCluster, platform_crds: list[str], kube_namespace: str,
             jwks_namespace: str, tmp_path: Path) -> Iterator[Path]:
    """`mcp-runtime operator run` watching the test's namespaces, as a subprocess; yields its log file."""
    log_path = tmp_path / "operator.log"
    env = cli_env({"KUBECONFIG": str(kube_cluster.kubeconfig),
                   "MCP_OPERATOR_JWKS_CONFIGMAP": f"{jwks_namespace}/mcp-runtime-jwks"})
    env.pop("KUBERNETES_SERVICE_HOST", None)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mcp_runtime", "operator", "run", "-n", kube_namespace, "-n", jwks_namespace],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield log_path
        # While the operator runs, so that its finalizer is removed and the namespace can go.
        kube_cluster.kubectl("-n", kube_namespace, "delete", "mcpservers", "--all", "--timeout=60s", timeout=90)
    finally:
        stop_process(process)
        print(f"--- the operator's log (tail) ---\n{log_path.read_text()[-6000:]}")  # shown if the test failed


def wait_for_object(cluster: KubeCluster, kind: str, name: str, ns: str, log: Path,
                    timeout: float = 60) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def exists() -> bool:
        obj = cluster.get(kind, name, ns)
        if obj is not None:
            found.update(obj)
        return obj is not None
    try:
        cluster.wait_for(f"{kind}/{name} in {ns}", exists, timeout=timeout)
    except BaseException:
        print(log.read_text()[-6000:])
        raise
    return found


def policy(cluster: KubeCluster, ns: str) -> dict[str, Any]:
    cm = cluster.get("configmap", "payments-policy", ns) or {}
    return dict(json.loads((cm.get("data") or {}).get("policy.json", "{}")))


def jwks_kids(cluster: KubeCluster, ns: str) -> list[str]:
    cm = cluster.get("configmap", "mcp-runtime-jwks", ns)
    return [k["kid"] for k in json.loads(cm["data"]["jwks.json"])["keys"]] if cm else []


def publish_jwks(cluster: KubeCluster, ns: str, jwks: dict[str, Any]) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mcp-runtime-jwks"},
                   "data": {"jwks.json": json.dumps(jwks)}}, namespace=ns)


def test_operator_reconciles_a_server_into_owned_objects_and_the_garbage_collector_removes_them(
        kube_cluster: KubeCluster, kube_namespace: str, jwks_namespace: str, operator: Path) -> None:
    cluster, ns = kube_cluster, kube_namespace
    publish_jwks(cluster, jwks_namespace, JWKS)
    cluster.apply(server(ns))
    uid = (cluster.get("mcpserver", "payments", ns) or {})["metadata"]["uid"]

    for kind, name in OWNED:
        obj = wait_for_object(cluster, kind, name, ns, operator)
        refs = obj["metadata"].get("ownerReferences", [])
        assert [(r["kind"], r["uid"], r.get("controller")) for r in refs] == [("MCPServer", uid, True)], (kind, refs)
    deployment = cluster.get("deployment", "payments", ns) or {}
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert containers["mcp-server"]["image"] == "registry.example.com/acme/payments:v1"
    assert "mcp-gateway" in containers
    ingress = cluster.get("ingress", "payments", ns) or {}
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/payments/mcp"
    cluster.wait_for("the JWKS copied into the server's namespace", lambda: jwks_kids(cluster, ns) == ["k1"])

    # Status through the status subresource; no pod gets ready (no platform image), so Pending.
    cluster.wait_for("status Pending with PolicyReady",
                     lambda: conditions(cluster.get("mcpserver", "payments", ns)).get("PolicyReady") == "True")
    status = (cluster.get("mcpserver", "payments", ns) or {})["status"]
    assert status["phase"] == "Pending"
    assert status["observedGeneration"] == 1
    assert conditions({"status": status})["DeploymentReady"] == "False"
    # The real deployment controller saw the Deployment (it made a ReplicaSet for it).
    cluster.wait_for("the deployment controller's ReplicaSet", lambda: bool(
        cluster.kubectl("-n", ns, "get", "replicasets", "-l", "mcpruntime.org/server=payments", "-o",
                        "name").stdout.strip()), timeout=60)

    # An update rolls the Deployment and bumps observedGeneration.
    cluster.kubectl("-n", ns, "patch", "mcpserver", "payments", "--type=merge", "-p", '{"spec": {"imageTag": "v2"}}')
    cluster.wait_for("the Deployment on v2", lambda: {
        c["name"]: c["image"] for c in (cluster.get("deployment", "payments", ns) or {})["spec"]["template"]["spec"]
        ["containers"]}["mcp-server"].endswith(":v2"))
    cluster.wait_for("observedGeneration 2", lambda: (
        (cluster.get("mcpserver", "payments", ns) or {}).get("status") or {}).get("observedGeneration") == 2)

    # Key rotation: the platform republishes its JWKS; the operator copies it again.
    publish_jwks(cluster, jwks_namespace, {"keys": [{"kid": "k2"}, {"kid": "k1"}]})
    cluster.wait_for("the rotated JWKS copy", lambda: jwks_kids(cluster, ns) == ["k2", "k1"], timeout=120)

    # Deleting the MCPServer: the real garbage collector deletes what it owned, and a grant naming it says so.
    cluster.apply(grant(ns))
    cluster.wait_for("the grant Ready", lambda: conditions(
        cluster.get("mcpaccessgrant", "cursor-echo", ns)).get("ServerFound") == "True")
    cluster.kubectl("-n", ns, "delete", "mcpserver", "payments", "--timeout=60s", timeout=90)
    cluster.wait_for("the grant ServerFound=False", lambda: conditions(
        cluster.get("mcpaccessgrant", "cursor-echo", ns)).get("ServerFound") == "False", timeout=20)
    for kind, name in OWNED:
        cluster.wait_for(f"the garbage collector to delete {kind}/{name}",
                         lambda kind=kind, name=name: cluster.get(kind, name, ns) is None, timeout=90)
    # The JWKS copy is not owned by one server: it stays for the others in the namespace.
    assert jwks_kids(cluster, ns) == ["k2", "k1"]


def test_operator_renders_grants_and_sessions_into_the_policy_with_status(
        kube_cluster: KubeCluster, kube_namespace: str, jwks_namespace: str, operator: Path) -> None:
    cluster, ns = kube_cluster, kube_namespace
    publish_jwks(cluster, jwks_namespace, JWKS)
    cluster.apply(grant(ns))  # before its server exists
    cluster.wait_for("the grant Active with ServerFound=False", lambda: (
        phase(cluster.get("mcpaccessgrant", "cursor-echo", ns)) == "Active"
        and conditions(cluster.get("mcpaccessgrant", "cursor-echo", ns)).get("ServerFound") == "False"))

    cluster.apply(server(ns))
    wait_for_object(cluster, "configmap", "payments-policy", ns, operator)
    cluster.wait_for("the grant in the policy", lambda: [g["name"] for g in policy(cluster, ns).get("grants", [])]
                     == ["cursor-echo"])
    # Right away, not at the next minute's sweep (the operator refreshes the grants of a new server).
    cluster.wait_for("the grant Ready", lambda: conditions(
        cluster.get("mcpaccessgrant", "cursor-echo", ns)).get("Ready") == "True", timeout=20)

    cluster.kubectl("-n", ns, "patch", "mcpaccessgrant", "cursor-echo", "--type=merge", "-p",
                    '{"spec": {"disabled": true}}')
    cluster.wait_for("the grant Disabled", lambda: phase(cluster.get("mcpaccessgrant", "cursor-echo", ns))
                     == "Disabled")
    assert policy(cluster, ns)["grants"][0]["disabled"] is True

    cluster.apply(session(ns))
    cluster.wait_for("the session in the policy", lambda: [s["name"] for s in policy(cluster, ns).get("sessions", [])]
                     == ["sess-1"])
    cluster.wait_for("the session Active", lambda: phase(cluster.get("mcpagentsession", "sess-1", ns)) == "Active")
    # No finalizer on grants and sessions: deleting them never hangs while the operator is down.
    assert not (cluster.get("mcpagentsession", "sess-1", ns) or {})["metadata"].get("finalizers")

    revision = (cluster.get("configmap", "payments-policy", ns) or {})["metadata"]["annotations"][
        "mcpruntime.org/policy-revision"]
    cluster.kubectl("-n", ns, "patch", "mcpagentsession", "sess-1", "--type=merge", "-p", '{"spec": {"revoked": true}}')
    cluster.wait_for("the revocation in the policy", lambda: policy(cluster, ns)["sessions"][0]["revoked"] is True)
    cluster.wait_for("the session Revoked", lambda: phase(cluster.get("mcpagentsession", "sess-1", ns)) == "Revoked")
    annotations = (cluster.get("configmap", "payments-policy", ns) or {})["metadata"]["annotations"]
    assert annotations["mcpruntime.org/policy-revision"] != revision
    assert policy(cluster, ns)["revision"] == annotations["mcpruntime.org/policy-revision"]

    cluster.kubectl("-n", ns, "delete", "mcpagentsession", "sess-1")
    cluster.kubectl("-n", ns, "delete", "mcpaccessgrant", "cursor-echo")
    cluster.wait_for("the session and grant gone from the policy", lambda: (
        policy(cluster, ns).get("sessions") == [] and policy(cluster, ns).get("grants") == []))


def test_an_invalid_server_gets_an_error_status_and_no_deployment(
        kube_cluster: KubeCluster, kube_namespace: str, jwks_namespace: str, operator: Path) -> None:
    cluster, ns = kube_cluster, kube_namespace
    cluster.apply(server(ns, envVars=[{"name": "PORT", "value": "9"}]))
    cluster.wait_for("status Error", lambda: phase(cluster.get("mcpserver", "payments", ns)) == "Error")
    assert "PORT" in (cluster.get("mcpserver", "payments", ns) or {})["status"]["message"]
    assert cluster.get("deployment", "payments", ns) is None


def test_the_phase_sweep_moves_an_expired_grant_to_expired(
        kube_cluster: KubeCluster, platform_crds: list[str], kube_namespace: str) -> None:
    # The operator's sweep, run in-process with a clock a day past the grant's expiry.
    cluster, ns = kube_cluster, kube_namespace
    reconciler = Reconciler(KubeClient.from_environment(str(cluster.kubeconfig)),
                            OperatorSettings(jwks_source=None, namespaces=(ns,)))
    cluster.apply(server(ns), grant(ns, expiresAt="2030-01-01T00:00:00Z"))
    reconciler.reconcile_access("MCPAccessGrant", ns, "cursor-echo")
    assert phase(cluster.get("mcpaccessgrant", "cursor-echo", ns)) == "Active"
    later = datetime(2030, 1, 2, tzinfo=UTC)
    assert reconciler.refresh_access_phases(later) == 1
    assert phase(cluster.get("mcpaccessgrant", "cursor-echo", ns)) == "Expired"
    assert reconciler.refresh_access_phases(later) == 0


def test_the_sweep_copies_a_rotated_jwks_that_no_event_announced(
        kube_cluster: KubeCluster, platform_crds: list[str], kube_namespace: str, jwks_namespace: str) -> None:
    # No operator process, so no watch event: only the sweep's `sync_jwks` can notice the rotation. It
    # reaches a server's namespace and one that holds only a virtual server.
    cluster, ns = kube_cluster, kube_namespace
    publish_jwks(cluster, jwks_namespace, JWKS)
    cluster.apply(server(ns))
    with fresh_namespace(cluster, "v") as toolbox_ns:
        reconciler = Reconciler(KubeClient.from_environment(str(cluster.kubeconfig)), OperatorSettings(
            jwks_source=(jwks_namespace, "mcp-runtime-jwks"), namespaces=(ns, toolbox_ns)))
        cluster.apply({"apiVersion": GROUP_VERSION, "kind": "MCPVirtualServer",
                       "metadata": {"name": "toolbox", "namespace": toolbox_ns},
                       "spec": {"members": [{"serverRef": {"name": "payments", "namespace": ns}}]}})
        assert reconciler.sync_jwks() == 2  # the server and the virtual server
        assert jwks_kids(cluster, ns) == jwks_kids(cluster, toolbox_ns) == ["k1"]
        assert reconciler.sync_jwks() is None  # unchanged source: no work
        publish_jwks(cluster, jwks_namespace, {"keys": [{"kid": "k2"}, {"kid": "k1"}]})
        assert reconciler.sync_jwks() == 2
        assert jwks_kids(cluster, ns) == jwks_kids(cluster, toolbox_ns) == ["k2", "k1"]
        cluster.kubectl("-n", toolbox_ns, "delete", "mcpvirtualservers", "--all", timeout=60)
