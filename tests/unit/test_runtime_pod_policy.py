"""The podman runtime's policy file follows the platform's policy, even one published mid-deploy.

A redeploy (`deploy --update`) is handed to the runtime on `up`'s event loop while the API's thread goes on
to compile and publish the server's new policy. When that publish landed while the runtime was preparing
the new pod (after it read the policy, before it registered the server), the runtime's subscriber found no
server to write to and dropped it: the new pod's sidecar enforced the old policy until the next change (the
approvals podman test caught it: a redeploy with `approvalTimeout: 2s` still waited the default 2 minutes).
`podman` is `true` here: every podman command succeeds and says nothing; no container runs.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from mcp_runtime.platform.hooks import PolicyPublisher
from mcp_runtime.policy import PolicyDocument, compile_policy
from mcp_runtime.resources import MCPServer
from mcp_runtime.runtime.podman import POLICY_FILE, PodmanRuntime

NS, NAME = "mcp-team-acme", "utility"


def server(**policy: Any) -> MCPServer:
    return MCPServer.model_validate({"metadata": {"name": NAME, "namespace": NS}, "spec": {
        "image": "registry.local/acme/utility", "imageTag": "1", "policy": policy,
        "tools": [{"name": "reverse", "sideEffect": "destructive"}]}})


def test_a_policy_published_while_the_pod_is_prepared_reaches_its_file(tmp_path: Path) -> None:
    old, new = compile_policy(server(), [], []), compile_policy(server(approvalTimeout="2s"), [], [])
    publisher = PolicyPublisher()
    publisher.publish(NS, NAME, old)
    reads: list[str] = []

    def policy_for(namespace: str, name: str) -> PolicyDocument | None:
        read = publisher.get(namespace, name)
        if not reads:  # the runtime prepares the pod with what it read; meanwhile the API publishes the new one
            publisher.publish(namespace, name, new)
        reads.append(read.revision if read else "")
        return read

    runtime = PodmanRuntime(tmp_path, podman="true", registry_host="registry.local")
    runtime.attach(policy_for=policy_for, jwks=lambda: {"keys": []},
                   subscribe=lambda callback: publisher.subscribe(callback, replay=False))

    async def deploy() -> dict[str, Any]:
        try:
            await runtime.deploy(server(approvalTimeout="2s"))
            path = tmp_path / "podman" / NS / NAME / "policy" / POLICY_FILE
            return dict(json.loads(path.read_text()))
        finally:
            await runtime.shutdown()

    written = asyncio.run(deploy())
    assert reads[0] == old.revision  # the pod was prepared with the old policy ...
    assert written["revision"] == new.revision and written["approvalTimeout"] == 2.0  # ... its file has the new
