"""The operator's handler code (Reconciler) through the real `kubernetes` client library against the
FAKE API server (tests/fakes/fake_kube_apiserver.py), kept only for what the real test cluster cannot give
here: a Deployment whose pods are ready (an MCP server image beside the platform image as the `mcp-gateway`
sidecar, not held by the test cluster's containerd yet), so the `Ready` phase is reached by setting the
Deployment's status as its controller would; and the fake's request log, which proves a reconcile with
nothing new writes nothing.

Everything else (objects with owner references, status conditions, grants and sessions re-rendering the
policy, the revocation reaching the sidecar's watcher, garbage collection, the Error status, the phase
sweep) runs against the REAL API server in tests/kube/test_operator.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fakes.fake_kube_apiserver import FakeKubeApiServer
from fakes.kube_fixture import fake_kube  # noqa: F401  (fixture)
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


def conditions(obj: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in obj["status"]["conditions"]}


def test_ready_deployment_makes_the_server_ready_and_a_quiet_reconcile_writes_nothing(
        cluster: tuple[FakeKubeApiServer, KubeClient, Reconciler]) -> None:
    fake, client, reconciler = cluster
    client.create(server_manifest())
    reconciler.reconcile_server(NS, "payments")
    server = fake.get("MCPServer", "payments", NS)
    assert server["status"]["phase"] == "Pending"

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

    # Update: a new image tag bumps the generation; the controller has not seen it, so not ready.
    client.patch("MCPServer", "payments", NS, {"spec": {"imageTag": "v2"}})
    reconciler.reconcile_server(NS, "payments")
    server = fake.get("MCPServer", "payments", NS)
    assert server["status"]["observedGeneration"] == 2
    assert conditions(server)["DeploymentReady"] == "False"
