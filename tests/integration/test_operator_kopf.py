"""The real kopf operator (`mcp_runtime.operator.handlers`) against the FAKE Kubernetes API server, kept only
for the Deployment watch turning a server `Ready`: that needs the Deployment's pods ready, and on the real
test cluster they cannot be yet (an MCP server image beside the platform image as the `mcp-gateway` sidecar,
not held by the test cluster's containerd), so the test plays the deployment controller. Servers, grants, sessions, the
JWKS copy and garbage collection run through `mcp-runtime operator run` against the REAL API server in
tests/kube/test_operator.py."""

from __future__ import annotations

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


def test_kopf_operator_marks_a_server_ready_when_its_deployment_is(fake_kube: FakeKubeApiServer,  # noqa: F811
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

        client.delete("MCPServer", "payments", NS)
        wait_for("owned objects gone", lambda: fake_kube.list("Deployment", NS) == [])
        runner.timeout = 10
    handlers.use_reconciler(None)
    assert runner.exception is None, runner.output
