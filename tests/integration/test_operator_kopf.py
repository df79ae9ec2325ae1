"""The real kopf operator (`mcp_runtime.operator.handlers`) running against the FAKE Kubernetes API
server: it reacts to watch events for MCPServer, MCPAccessGrant, MCPAgentSession and Deployments."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from kopf.testing import KopfRunner

from fakes.fake_kube_apiserver import FakeKubeApiServer
from fakes.kube_fixture import fake_kube  # noqa: F401  (fixture)
from mcp_runtime.kube import KubeClient
from mcp_runtime.kube.jwks import publish_jwks
from mcp_runtime.operator import handlers

NS = "mcp-team-acme"


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_kopf_operator_reconciles_servers_grants_and_sessions(fake_kube: FakeKubeApiServer,  # noqa: F811
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_OPERATOR_JWKS_CONFIGMAP", "mcp-runtime/mcp-runtime-jwks")
    handlers.use_reconciler(None)
    for ns in (NS, "mcp-runtime"):
        fake_kube.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    client = KubeClient.from_environment()
    publish_jwks(client, {"keys": [{"kid": "k1"}]})
    args = ["run", "--standalone", "--namespace", NS, "--namespace", "mcp-runtime",
            "-m", "mcp_runtime.operator.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        client.create({"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPServer",
                       "metadata": {"name": "payments", "namespace": NS},
                       "spec": {"image": "acme/payments:v1", "tools": [{"name": "echo", "sideEffect": "read"}]}})
        deployment = wait_for("the Deployment", lambda: fake_kube.get("Deployment", "payments", NS))
        assert deployment["metadata"]["ownerReferences"][0]["kind"] == "MCPServer"
        wait_for("status Pending", lambda: (fake_kube.get("MCPServer", "payments", NS).get("status") or {})
                 .get("phase") == "Pending")

        # The deployment controller (played by the test) reports ready pods: the Deployment watch
        # handler refreshes the server's status.
        fake_kube.set_status("Deployment", "payments", NS, {"observedGeneration": 1, "replicas": 1,
                                                            "updatedReplicas": 1, "readyReplicas": 1})
        wait_for("status Ready", lambda: fake_kube.get("MCPServer", "payments", NS)["status"]["phase"] == "Ready")

        client.create({"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAgentSession",
                       "metadata": {"name": "sess-1", "namespace": NS},
                       "spec": {"serverRef": {"name": "payments"}, "subject": {"agentID": "cursor"}}})

        def policy() -> dict[str, Any]:
            return json.loads(fake_kube.get("ConfigMap", "payments-policy", NS)["data"]["policy.json"])

        wait_for("the session in the policy", lambda: [s["name"] for s in policy()["sessions"]] == ["sess-1"])
        # No finalizer on grants and sessions: deleting them never hangs while the operator is down.
        assert not fake_kube.get("MCPAgentSession", "sess-1", NS)["metadata"].get("finalizers")
        client.patch("MCPAgentSession", "sess-1", NS, {"spec": {"revoked": True}})
        wait_for("the revocation in the policy", lambda: policy()["sessions"][0]["revoked"])
        wait_for("session status Revoked",
                 lambda: (fake_kube.get("MCPAgentSession", "sess-1", NS).get("status") or {}).get("phase") == "Revoked")

        # Key rotation: the platform republishes its JWKS; the operator copies it to the server's namespace.
        def copied_kids() -> list[str]:
            cm = fake_kube.get("ConfigMap", "mcp-runtime-jwks", NS)
            return [k["kid"] for k in json.loads(cm["data"]["jwks.json"])["keys"]] if cm else []

        wait_for("the JWKS copy", lambda: copied_kids() == ["k1"])
        publish_jwks(client, {"keys": [{"kid": "k2"}, {"kid": "k1"}]})
        wait_for("the rotated JWKS copy", lambda: copied_kids() == ["k2", "k1"])

        client.delete("MCPAgentSession", "sess-1", NS)
        wait_for("the session gone from the policy", lambda: policy()["sessions"] == [])

        client.delete("MCPServer", "payments", NS)
        wait_for("owned objects gone", lambda: fake_kube.list("Deployment", NS) == [])
        runner.timeout = 10
    handlers.use_reconciler(None)
    assert runner.exception is None, runner.output
