"""`sentinel port-forward`'s local endpoint on the REAL test cluster: requests reach a pod behind a Service
through the API server's service proxy (tier 2: the pod runs the cluster's test server, which answers with
its hostname and the path it received), and a missing Service is a 404."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from fixtures.kube_cluster import KubeCluster
from mcp_runtime.kube.connection import KubeConnection
from mcp_runtime.kube.service_proxy import service_proxy_server


async def _through_proxy(cluster: KubeCluster, ns: str, service: str, path: str) -> httpx.Response:
    server, url = service_proxy_server(ns, service, 80, connection=KubeConnection.from_kubeconfig(
        str(cluster.kubeconfig)))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            # The client's own Authorization header is replaced by the kubeconfig's credentials.
            return await client.get(path, headers={"Authorization": "Bearer client-secret"})
    finally:
        server.should_exit = True
        await task


def test_local_requests_reach_the_pod_behind_the_service_through_the_api_server(
        kube_pods_cluster: KubeCluster, kube_namespace: str) -> None:
    cluster, ns = kube_pods_cluster, kube_namespace
    container: dict[str, Any] = {
        "name": "main", "image": cluster.tools["KUBE_TESTSERVER_IMAGE"], "imagePullPolicy": "Never",
        "ports": [{"containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1},
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}}
    cluster.apply(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api", "labels": {"app": "api"}},
         "spec": {"containers": [container], "terminationGracePeriodSeconds": 1}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "mcp-runtime-api"},
         "spec": {"selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        namespace=ns)
    cluster.kubectl("-n", ns, "wait", "--for=condition=Ready", "pod/api", "--timeout=120s", timeout=150)
    # the endpoint controller lists a ready pod shortly after it is Ready, not at once
    cluster.wait_for("the Service's endpoint", lambda: "api" in cluster.kubectl(
        "-n", ns, "get", "endpointslices", "-l", "kubernetes.io/service-name=mcp-runtime-api", "-o",
        "jsonpath={.items[*].endpoints[?(@.conditions.ready==true)].targetRef.name}").stdout, timeout=60)

    response = asyncio.run(_through_proxy(cluster, ns, "mcp-runtime-api", "/api/v1/auth/whoami"))
    assert response.status_code == 200, response.text
    assert response.json() == {"hostname": "api", "path": "/api/v1/auth/whoami"}

    missing = asyncio.run(_through_proxy(cluster, ns, "nope", "/"))
    assert missing.status_code == 404
