"""The Pod the podman runtime plays: only the sidecar's port is published, on loopback.

podman 4's `kube play` publishes a containerPort that has no hostPort on every host interface at the same
port number, so a declared app port would be reachable from the network without the sidecar (no token, no
policy) and a second server on the same app port could not start ("bind: address already in use").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mcp_runtime.manifests import APP_CONTAINER, GATEWAY_CONTAINER
from mcp_runtime.resources import MCPServer
from mcp_runtime.runtime.podman import PodmanRuntime


def _played_pod(tmp_path: Path, name: str, host_port: int) -> dict[str, Any]:
    server = MCPServer.model_validate({"metadata": {"name": name, "namespace": "mcp-team-acme"},
                                       "spec": {"image": "127.0.0.1:5000/acme/app", "imageTag": "v1",
                                                "tools": [{"name": "echo", "sideEffect": "read"}]}})
    runtime = PodmanRuntime(tmp_path, jwks={"keys": []}, public_url="http://127.0.0.1:8000",
                            oauth_issuer="http://127.0.0.1:8000/api/v1/oauth")
    managed = runtime._prepare(server, "mcp-team-acme", host_port)
    pod: dict[str, Any] = yaml.safe_load(managed.manifest_path.read_text())
    return pod


def test_only_the_sidecar_port_is_published_and_only_on_loopback(tmp_path: Path) -> None:
    published = []
    for name, port in (("payments", 41001), ("ledger", 41002)):
        containers = {c["name"]: c for c in _played_pod(tmp_path, name, port)["spec"]["containers"]}
        assert "ports" not in containers[APP_CONTAINER], containers[APP_CONTAINER]
        (gateway_port,) = containers[GATEWAY_CONTAINER]["ports"]
        assert gateway_port["hostIP"] == "127.0.0.1" and gateway_port["hostPort"] == port
        published.append(gateway_port["hostPort"])
        # the sidecar is the server's OAuth protected resource at up's URL
        args = containers[GATEWAY_CONTAINER]["args"]
        assert args[args.index("--resource-url") + 1] == f"http://127.0.0.1:8000/{name}/mcp"
    assert len(set(published)) == 2  # two servers, no host port in common
