"""`sentinel port-forward`'s local endpoint against the FAKE API server, kept only to see exactly what the
backend receives (method, query, body, the client's Authorization replaced): the FAKE answers with it, and
the real cluster's test server echoes only its hostname and the path (changing it rebuilds Kubernetes).
The path through the REAL API server's service proxy to a pod, and the 404, are in
tests/kube/test_service_proxy.py."""

from __future__ import annotations

import asyncio

import httpx

from fakes.fake_kube_apiserver import FakeKubeApiServer
from fakes.kube_fixture import fake_kube  # noqa: F401  (fixture)
from mcp_runtime.kube.service_proxy import service_proxy_server


def test_local_requests_reach_the_service_through_the_api(fake_kube: FakeKubeApiServer) -> None:  # noqa: F811
    fake_kube.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mcp-runtime"}})
    fake_kube.seed({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "mcp-runtime-api",
                                                                         "namespace": "mcp-runtime"},
                    "spec": {"ports": [{"port": 80}]}})

    async def scenario() -> dict[str, str]:
        server, url = service_proxy_server("mcp-runtime", "mcp-runtime-api", 80)
        task = asyncio.create_task(server.serve())
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            async with httpx.AsyncClient(base_url=url) as client:
                # The client's own Authorization header is replaced by the kubeconfig's credentials.
                response = await client.post("/api/v1/auth/login?x=1", content=b'{"a":1}',
                                             headers={"Authorization": "Bearer client-secret"})
                response.raise_for_status()
                seen: dict[str, str] = response.json()
        finally:
            server.should_exit = True
            await task
        return seen

    seen = asyncio.run(scenario())
    assert seen == {"service": "mcp-runtime-api", "port": "80", "method": "POST", "path": "/api/v1/auth/login",
                    "query": "x=1", "body": '{"a":1}'}
