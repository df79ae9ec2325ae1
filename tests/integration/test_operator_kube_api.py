"""The operator's real handler code (Reconciler) through the real `kubernetes` client library against the
FAKE API server (tests/fakes/fake_kube_apiserver.py): objects created with owner references, status
written, grants and sessions re-render the policy ConfigMap, the sidecar's watcher sees a revocation,
deletes cascade."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from fakes.fake_kube_apiserver import FakeKubeApiServer
from fakes.kube_fixture import fake_kube  # noqa: F401  (fixture)
from mcp_runtime.gateway.configmap_source import KubeConfigMapPolicyWatcher
from mcp_runtime.kube import KubeClient
from mcp_runtime.manifests import RenderOptions
from mcp_runtime.operator.reconcile import Reconciler
from mcp_runtime.operator.settings import OperatorSettings

NS = "mcp-team-acme"
JWKS = {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "abc", "kid": "k1"}]}


def server_manifest(**spec: Any) -> dict[str, Any]:
    body = {"teamID": "acme-uuid", "image": "registry.example.com/acme/payments", "imageTag": "v1",
            "tools": [{"name": "echo", "sideEffect": "read"}]}
    body.update(spec)
    return {"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPServer",
            "metadata": {"name": "payments", "namespace": NS}, "spec": body}


def grant_manifest(name: str = "cursor-echo") -> dict[str, Any]:
    return {"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAccessGrant",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"serverRef": {"name": "payments"}, "subject": {"agentID": "cursor"},
                     "toolRules": [{"name": "echo", "decision": "allow"}]}}


def session_manifest(name: str = "sess-1") -> dict[str, Any]:
    return {"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAgentSession",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"serverRef": {"name": "payments"}, "subject": {"agentID": "cursor"},
                     "expiresAt": "2030-01-01T00:00:00Z"}}


@pytest.fixture
def cluster(fake_kube: FakeKubeApiServer) -> tuple[FakeKubeApiServer, KubeClient, Reconciler]:  # noqa: F811
    for ns in (NS, "mcp-runtime"):
        fake_kube.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    fake_kube.seed({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "mcp-runtime-jwks", "namespace": "mcp-runtime"},
                    "data": {"jwks.json": json.dumps(JWKS)}})
    client = KubeClient.from_environment()
    settings = OperatorSettings(render=RenderOptions(watch_policy_via_api=True))
    return fake_kube, client, Reconciler(client, settings)


def policy_of(fake: FakeKubeApiServer) -> dict[str, Any]:
    cm = fake.get("ConfigMap", "payments-policy", NS)
    assert cm is not None
    return json.loads(cm["data"]["policy.json"])


def conditions(obj: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in obj["status"]["conditions"]}


def test_server_lifecycle_objects_status_and_cascade(cluster: tuple[FakeKubeApiServer, KubeClient, Reconciler]) -> None:
    fake, client, reconciler = cluster
    created = client.create(server_manifest())
    uid = created["metadata"]["uid"]
    reconciler.reconcile_server(NS, "payments")

    for kind, name in [("Deployment", "payments"), ("Service", "payments"), ("Ingress", "payments"),
                       ("ConfigMap", "payments-policy"), ("ServiceAccount", "payments-gateway"),
                       ("Role", "payments-policy-reader"), ("RoleBinding", "payments-policy-reader")]:
        obj = fake.get(kind, name, NS)
        assert obj is not None, f"{kind} {name} was not created"
        assert obj["metadata"]["ownerReferences"][0]["uid"] == uid
    assert json.loads(fake.get("ConfigMap", "mcp-runtime-jwks", NS)["data"]["jwks.json"]) == JWKS
    ingress = fake.get("Ingress", "payments", NS)
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/payments/mcp"

    server = fake.get("MCPServer", "payments", NS)
    assert server["status"]["phase"] == "Pending"
    assert server["status"]["observedGeneration"] == 1
    assert conditions(server)["PolicyReady"] == "True"

    # Play the deployment controller: the pods came up.
    fake.set_status("Deployment", "payments", NS, {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                                                   "readyReplicas": 1, "availableReplicas": 1})
    reconciler.reconcile_server(NS, "payments")
    server = fake.get("MCPServer", "payments", NS)
    assert server["status"]["phase"] == "Ready"
    assert set(conditions(server).values()) == {"True"}

    # A second reconcile with nothing new writes nothing.
    writes = len(fake.requests)
    reconciler.reconcile_server(NS, "payments")
    assert [r for r in fake.requests[writes:] if r[0] != "GET"] == []

    # Update: a new image tag bumps the generation and rolls the Deployment.
    client.patch("MCPServer", "payments", NS, {"spec": {"imageTag": "v2"}})
    reconciler.reconcile_server(NS, "payments")
    deployment = fake.get("Deployment", "payments", NS)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v2")
    server = fake.get("MCPServer", "payments", NS)
    assert server["status"]["observedGeneration"] == 2
    assert conditions(server)["DeploymentReady"] == "False"  # the controller has not seen generation 2

    client.delete("MCPServer", "payments", NS)
    for kind in ("Deployment", "Service", "Ingress", "ServiceAccount", "Role", "RoleBinding"):
        assert fake.list(kind, NS) == [], f"{kind} survived the delete"
    assert [c["metadata"]["name"] for c in fake.list("ConfigMap", NS)] == ["mcp-runtime-jwks"]
    assert reconciler.reconcile_server(NS, "payments") is None


def test_grants_and_sessions_rerender_policy_and_get_status(
        cluster: tuple[FakeKubeApiServer, KubeClient, Reconciler]) -> None:
    fake, client, reconciler = cluster
    client.create(grant_manifest())  # before its server exists
    reconciler.reconcile_access("MCPAccessGrant", NS, "cursor-echo")
    grant = fake.get("MCPAccessGrant", "cursor-echo", NS)
    assert grant["status"]["phase"] == "Active"
    assert conditions(grant)["ServerFound"] == "False"

    client.create(server_manifest())
    reconciler.reconcile_server(NS, "payments")
    reconciler.reconcile_access("MCPAccessGrant", NS, "cursor-echo")
    assert conditions(fake.get("MCPAccessGrant", "cursor-echo", NS))["Ready"] == "True"
    assert [g["name"] for g in policy_of(fake)["grants"]] == ["cursor-echo"]

    client.patch("MCPAccessGrant", "cursor-echo", NS, {"spec": {"disabled": True}})
    reconciler.reconcile_access("MCPAccessGrant", NS, "cursor-echo")
    assert fake.get("MCPAccessGrant", "cursor-echo", NS)["status"]["phase"] == "Disabled"
    assert policy_of(fake)["grants"][0]["disabled"] is True

    client.create(session_manifest())
    reconciler.reconcile_access("MCPAgentSession", NS, "sess-1")
    assert fake.get("MCPAgentSession", "sess-1", NS)["status"]["phase"] == "Active"
    assert [s["name"] for s in policy_of(fake)["sessions"]] == ["sess-1"]

    # A grant deleted: the server's policy drops it (what the kopf delete handler calls).
    client.delete("MCPAccessGrant", "cursor-echo", NS)
    reconciler.reconcile_server(NS, "payments")
    assert policy_of(fake)["grants"] == []


def test_session_revoke_reaches_the_sidecar_watcher(cluster: tuple[FakeKubeApiServer, KubeClient, Reconciler]) -> None:
    fake, client, reconciler = cluster
    client.create(server_manifest())
    client.create(grant_manifest())
    client.create(session_manifest())
    reconciler.reconcile_server(NS, "payments")

    async def scenario() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        changed = asyncio.Event()

        def on_policy(data: bytes) -> None:
            seen.append(json.loads(data))
            changed.set()

        watcher = KubeConfigMapPolicyWatcher(NS, "payments-policy", on_policy)
        await watcher.start()
        try:
            await asyncio.wait_for(changed.wait(), 10)
            changed.clear()
            await asyncio.to_thread(client.patch, "MCPAgentSession", "sess-1", NS, {"spec": {"revoked": True}})
            await asyncio.to_thread(reconciler.reconcile_access, "MCPAgentSession", NS, "sess-1")
            await asyncio.wait_for(changed.wait(), 10)
        finally:
            await watcher.stop()
        return seen

    seen = asyncio.run(scenario())
    assert [doc["sessions"][0]["revoked"] for doc in seen] == [False, True]
    assert seen[1]["revision"] == fake.get("ConfigMap", "payments-policy", NS)["metadata"]["annotations"][
        "mcpruntime.org/policy-revision"]
    assert fake.get("MCPAgentSession", "sess-1", NS)["status"]["phase"] == "Revoked"


def test_invalid_server_gets_an_error_status(cluster: tuple[FakeKubeApiServer, KubeClient, Reconciler]) -> None:
    fake, client, reconciler = cluster
    client.create(server_manifest(envVars=[{"name": "PORT", "value": "9"}]))
    reconciler.reconcile_server(NS, "payments")
    server = fake.get("MCPServer", "payments", NS)
    assert server["status"]["phase"] == "Error"
    assert "PORT" in server["status"]["message"]
    assert fake.list("Deployment", NS) == []


def test_phase_sweep_moves_expired_grants(cluster: tuple[FakeKubeApiServer, KubeClient, Reconciler]) -> None:
    fake, client, reconciler = cluster
    client.create(server_manifest())
    grant = grant_manifest()
    grant["spec"]["expiresAt"] = "2030-01-01T00:00:00Z"
    client.create(grant)
    reconciler.reconcile_access("MCPAccessGrant", NS, "cursor-echo")
    assert fake.get("MCPAccessGrant", "cursor-echo", NS)["status"]["phase"] == "Active"
    later = datetime(2030, 1, 2, tzinfo=UTC)
    assert reconciler.refresh_access_phases(later) == 1
    assert fake.get("MCPAccessGrant", "cursor-echo", NS)["status"]["phase"] == "Expired"
    assert reconciler.refresh_access_phases(later) == 0
