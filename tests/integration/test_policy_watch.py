"""The sidecar's ConfigMap watcher against the FAKE Kubernetes API server, kept only for `410 Gone` on a
resumed watch (the watcher lists again): the real API server answers 410 only after etcd compacts its
history, every 5 minutes by default, too slow and too global to force in a test. Deliveries, deletes,
refused credentials and the sidecar's own RBAC run against the REAL API server in
tests/kube/test_policy_watch.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from fakes.fake_kube_apiserver import FakeKubeApiServer
from fakes.kube_fixture import fake_kube  # noqa: F401  (fixture)
from mcp_runtime.gateway.configmap_source import KubeConfigMapPolicyWatcher, parse_configmap_ref

NS = "mcp-team-acme"


def configmap(revision: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "payments-policy", "namespace": NS},
            "data": {"policy.json": json.dumps({"revision": revision})}}


async def next_value(queue: asyncio.Queue[str], timeout: float = 10) -> str:
    return await asyncio.wait_for(queue.get(), timeout)


def test_watcher_lists_again_after_410_gone(fake_kube: FakeKubeApiServer) -> None:  # noqa: F811
    fake_kube.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    fake_kube.seed(configmap("r1"))

    async def scenario() -> KubeConfigMapPolicyWatcher:
        seen: asyncio.Queue[str] = asyncio.Queue()
        watcher = KubeConfigMapPolicyWatcher(NS, "payments-policy",
                                             lambda data: seen.put_nowait(json.loads(data)["revision"]))
        await watcher.start()
        try:
            assert await next_value(seen) == "r1"
            # History compacted and the stream ended: resuming from the old resourceVersion gets 410 Gone,
            # so the watcher lists again and carries on.
            assert watcher.lists == 1
            fake_kube.compact()
            for _ in range(500):
                if watcher.lists == 2:
                    break
                await asyncio.sleep(0.02)
            assert watcher.lists == 2
            await asyncio.to_thread(_replace, fake_kube, "r2")
            assert await next_value(seen) == "r2"
        finally:
            await watcher.stop()
        return watcher

    watcher = asyncio.run(scenario())
    assert watcher.deliveries == 2


def _replace(fake: FakeKubeApiServer, revision: str) -> None:
    import httpx
    body = configmap(revision)
    httpx.put(f"{fake.url}/api/v1/namespaces/{NS}/configmaps/payments-policy", json=body,
              headers={"Authorization": f"Bearer {fake.token}"}).raise_for_status()


def test_configmap_ref_parsing() -> None:
    assert parse_configmap_ref("mcp-team-acme/payments-policy") == ("mcp-team-acme", "payments-policy")
    with pytest.raises(ValueError):
        parse_configmap_ref("payments-policy")
