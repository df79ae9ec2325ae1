"""The sidecar's ConfigMap watcher against the FAKE Kubernetes API server: first delivery, changes only,
410 Gone (re-list), a deleted ConfigMap keeps the last policy, refused credentials are reported and
retried."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from fakes.fake_kube_apiserver import FakeKubeApiServer
from fakes.kube_fixture import fake_kube  # noqa: F401  (fixture)
from mcp_runtime.gateway.configmap_source import KubeConfigMapPolicyWatcher, parse_configmap_ref
from mcp_runtime.kube.connection import KubeConnection

NS = "mcp-team-acme"


def configmap(revision: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "payments-policy", "namespace": NS},
            "data": {"policy.json": json.dumps({"revision": revision})}}


async def next_value(queue: asyncio.Queue[str], timeout: float = 10) -> str:
    return await asyncio.wait_for(queue.get(), timeout)


def test_watcher_delivers_changes_and_survives_410_and_deletes(fake_kube: FakeKubeApiServer) -> None:  # noqa: F811
    fake_kube.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    fake_kube.seed(configmap("r1"))
    fake_kube.seed({**configmap("other"), "metadata": {"name": "unrelated", "namespace": NS}})

    async def scenario() -> KubeConfigMapPolicyWatcher:
        seen: asyncio.Queue[str] = asyncio.Queue()
        watcher = KubeConfigMapPolicyWatcher(NS, "payments-policy",
                                             lambda data: seen.put_nowait(json.loads(data)["revision"]))
        await watcher.start()
        try:
            assert await next_value(seen) == "r1"
            assert await watcher.wait_delivered(1)
            await asyncio.to_thread(_replace, fake_kube, "r2")
            assert await next_value(seen) == "r2"
            # The same content again (e.g. an annotation change) is not delivered twice.
            await asyncio.to_thread(_annotate, fake_kube)
            await asyncio.to_thread(_replace, fake_kube, "r3")
            assert await next_value(seen) == "r3"
            # History compacted and the stream ended: resuming from the old resourceVersion gets 410 Gone,
            # so the watcher lists again and carries on.
            assert watcher.lists == 1
            fake_kube.compact()
            for _ in range(500):
                if watcher.lists == 2:
                    break
                await asyncio.sleep(0.02)
            assert watcher.lists == 2
            await asyncio.to_thread(_replace, fake_kube, "r4")
            assert await next_value(seen) == "r4"
            await asyncio.to_thread(fake_kube_delete, fake_kube)
            await asyncio.sleep(0.2)
            assert seen.empty()
            assert watcher.last_error is not None and "deleted" in watcher.last_error
            fake_kube.seed(configmap("r5"))
            assert await next_value(seen) == "r5"
        finally:
            await watcher.stop()
        return watcher

    watcher = asyncio.run(scenario())
    assert watcher.deliveries == 5


def _replace(fake: FakeKubeApiServer, revision: str) -> None:
    import httpx
    body = configmap(revision)
    httpx.put(f"{fake.url}/api/v1/namespaces/{NS}/configmaps/payments-policy", json=body,
              headers={"Authorization": f"Bearer {fake.token}"}).raise_for_status()


def _annotate(fake: FakeKubeApiServer) -> None:
    import httpx
    httpx.patch(f"{fake.url}/api/v1/namespaces/{NS}/configmaps/payments-policy",
                json={"metadata": {"annotations": {"touched": "yes"}}},
                headers={"Authorization": f"Bearer {fake.token}",
                         "Content-Type": "application/merge-patch+json"}).raise_for_status()


def fake_kube_delete(fake: FakeKubeApiServer) -> None:
    import httpx
    httpx.delete(f"{fake.url}/api/v1/namespaces/{NS}/configmaps/payments-policy",
                 headers={"Authorization": f"Bearer {fake.token}"}).raise_for_status()


def test_refused_credentials_are_reported_and_retried(fake_kube: FakeKubeApiServer) -> None:  # noqa: F811
    fake_kube.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    fake_kube.seed(configmap("r1"))

    async def scenario() -> tuple[str | None, int]:
        seen: list[bytes] = []
        wrong = KubeConnection(base_url=fake_kube.url, token="wrong-token")
        watcher = KubeConfigMapPolicyWatcher(NS, "payments-policy", seen.append, connection=wrong,
                                             min_backoff=0.01, max_backoff=0.05)
        await watcher.start()
        try:
            delivered = await watcher.wait_delivered(0.5)
            assert not delivered
        finally:
            await watcher.stop()
        return watcher.last_error, len(seen)

    error, count = asyncio.run(scenario())
    assert count == 0
    assert error is not None and "401" in error


def test_configmap_ref_parsing() -> None:
    assert parse_configmap_ref("mcp-team-acme/payments-policy") == ("mcp-team-acme", "payments-policy")
    with pytest.raises(ValueError):
        parse_configmap_ref("payments-policy")
