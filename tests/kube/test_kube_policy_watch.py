"""The gateway sidecar's ConfigMap policy source (src/mcp_runtime/gateway/configmap_source.py) on the REAL
API server: the watcher sees changes, skips ones that leave `policy.json` as it was, keeps the last policy
when the ConfigMap is deleted, reports refused credentials; it works with exactly the Role the operator
renders for the sidecar's ServiceAccount; and `gateway run --policy-configmap` denies a revoked session.

What stays on the fake API server (tests/integration/test_policy_watch.py): `410 Gone` on a resumed watch,
which the real server gives only after etcd compacts its history (every 5 minutes by default).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.cli import cli_env
from fixtures.gateway import EchoUpstream, PolicyKit, serve_app, standard_kit
from fixtures.kube_cluster import KubeCluster
from fixtures.servers import free_port, stop_process
from mcp_runtime.gateway.configmap_source import KubeConfigMapPolicyWatcher
from mcp_runtime.kube import KubeClient
from mcp_runtime.kube.connection import KubeConnection
from mcp_runtime.manifests import RenderOptions
from mcp_runtime.operator.reconcile import Reconciler
from mcp_runtime.operator.settings import OperatorSettings

NAME = "payments-policy"


def configmap(revision: str, name: str = NAME) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"policy.json": json.dumps({"revision": revision})}}


async def next_value(queue: asyncio.Queue[str], timeout: float = 15) -> str:
    return await asyncio.wait_for(queue.get(), timeout)


def admin_connection(cluster: KubeCluster) -> KubeConnection:
    return KubeConnection.from_kubeconfig(str(cluster.kubeconfig))


def test_watcher_delivers_changes_only_and_keeps_the_last_policy_when_deleted(
        kube_cluster: KubeCluster, kube_namespace: str) -> None:
    cluster, ns = kube_cluster, kube_namespace
    cluster.apply(configmap("r1"), configmap("other", name="unrelated"), namespace=ns)

    async def in_thread(*args: str) -> None:
        await asyncio.to_thread(cluster.kubectl, "-n", ns, *args)

    async def apply(revision: str) -> None:
        await asyncio.to_thread(cluster.apply, configmap(revision), namespace=ns)

    async def scenario() -> KubeConfigMapPolicyWatcher:
        seen: asyncio.Queue[str] = asyncio.Queue()
        watcher = KubeConfigMapPolicyWatcher(ns, NAME, lambda data: seen.put_nowait(json.loads(data)["revision"]),
                                             connection=admin_connection(cluster))
        await watcher.start()
        try:
            assert await next_value(seen) == "r1"
            await apply("r2")
            assert await next_value(seen) == "r2"
            # An annotation change and a change to another ConfigMap deliver nothing.
            await in_thread("annotate", "configmap", NAME, "touched=yes")
            await asyncio.to_thread(cluster.apply, configmap("other-2", name="unrelated"), namespace=ns)
            await apply("r3")
            assert await next_value(seen) == "r3"
            # Deleted: the last policy stays (nothing delivered) and the watcher says why.
            await in_thread("delete", "configmap", NAME)
            for _ in range(100):
                if watcher.last_error and "deleted" in watcher.last_error:
                    break
                await asyncio.sleep(0.05)
            assert seen.empty()
            assert watcher.last_error is not None and "deleted; keeping the last policy" in watcher.last_error
            await apply("r4")
            assert await next_value(seen) == "r4"
        finally:
            await watcher.stop()
        return watcher

    watcher = asyncio.run(scenario())
    assert watcher.deliveries == 4
    assert watcher.last_error is None


def test_refused_credentials_are_reported_and_retried(kube_cluster: KubeCluster, kube_namespace: str) -> None:
    kube_cluster.apply(configmap("r1"), namespace=kube_namespace)
    admin = admin_connection(kube_cluster)
    wrong = KubeConnection(base_url=admin.base_url, token="not-a-token", ca_file=admin.ca_file)

    async def scenario() -> tuple[str | None, int]:
        seen: list[bytes] = []
        watcher = KubeConfigMapPolicyWatcher(kube_namespace, NAME, seen.append, connection=wrong,
                                             min_backoff=0.01, max_backoff=0.05)
        await watcher.start()
        try:
            assert not await watcher.wait_delivered(1.0)
        finally:
            await watcher.stop()
        return watcher.last_error, len(seen)

    error, count = asyncio.run(scenario())
    assert count == 0
    assert error is not None and "401" in error


def _can(cluster: KubeCluster, user: str, ns: str, *what: str) -> bool:
    proc = cluster.kubectl("auth", "can-i", "-n", ns, "--as", user, *what, check=False)
    return proc.stdout.strip() == "yes"


def test_the_sidecars_service_account_may_watch_its_policy_and_nothing_else(
        kube_cluster: KubeCluster, platform_crds: list[str], kube_namespace: str) -> None:
    cluster, ns = kube_cluster, kube_namespace
    # As `operator run` renders by default (MCP_OPERATOR_WATCH_POLICY_VIA_API=1): a ServiceAccount and Role.
    settings = OperatorSettings(render=RenderOptions(watch_policy_via_api=True), jwks_source=None, namespaces=(ns,))
    reconciler = Reconciler(KubeClient.from_environment(str(cluster.kubeconfig)), settings)
    cluster.apply({"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPServer",
                   "metadata": {"name": "payments"},
                   "spec": {"image": "registry.example.com/acme/payments", "imageTag": "v1",
                            "tools": [{"name": "echo", "sideEffect": "read"}]}}, namespace=ns)
    reconciler.reconcile_server(ns, "payments")
    cluster.apply(configmap("x", name="someone-elses"), namespace=ns)

    user = f"system:serviceaccount:{ns}:payments-gateway"
    assert _can(cluster, user, ns, "watch", f"configmaps/{NAME}")
    assert not _can(cluster, user, ns, "get", "configmaps/someone-elses")
    assert not _can(cluster, user, ns, "update", f"configmaps/{NAME}")
    assert not _can(cluster, user, ns, "get", "secrets")

    # The watcher with the ServiceAccount's own token (what the sidecar projects): it gets the policy.
    token = cluster.kubectl("-n", ns, "create", "token", "payments-gateway", "--duration=10m").stdout.strip()
    admin = admin_connection(cluster)
    as_sidecar = KubeConnection(base_url=admin.base_url, token=token, ca_file=admin.ca_file)
    expected = json.loads((cluster.get("configmap", NAME, ns) or {})["data"]["policy.json"])

    async def scenario() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        watcher = KubeConfigMapPolicyWatcher(ns, NAME, lambda data: seen.append(json.loads(data)),
                                             connection=as_sidecar)
        await watcher.start()
        try:
            assert await watcher.wait_delivered(15), watcher.last_error
        finally:
            await watcher.stop()
        return seen

    seen = asyncio.run(scenario())
    assert seen == [expected]
    assert expected["revision"]


# --- the sidecar process ------------------------------------------------------------------------------

@pytest.fixture
def sidecar(kube_cluster: KubeCluster, kube_namespace: str, tmp_path: Path) -> Iterator[tuple[str, PolicyKit]]:
    kit = standard_kit()
    kube_cluster.apply(policy_configmap(kit), namespace=kube_namespace)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(kit.keyring.jwks()))
    with serve_app(EchoUpstream()) as upstream:
        port = free_port()
        env = cli_env({"KUBECONFIG": str(kube_cluster.kubeconfig)})
        env.pop("KUBERNETES_SERVICE_HOST", None)
        process = subprocess.Popen(
            [sys.executable, "-m", "mcp_runtime", "gateway", "run", "--upstream", upstream + "/mcp",
             "--policy-configmap", f"{kube_namespace}/{NAME}", "--jwks-file", str(jwks),
             "--listen", f"127.0.0.1:{port}", "--log-level", "warning"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    stop_process(process)
                    raise RuntimeError(f"gateway did not start: {process.stderr.read().decode()}")  # type: ignore[union-attr]
                time.sleep(0.1)
            yield base, kit
        finally:
            stop_process(process)


def policy_configmap(kit: PolicyKit) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": NAME},
            "data": {"policy.json": kit.document().to_json().decode()}}


def test_gateway_run_denies_a_session_revoked_in_the_configmap(
        kube_cluster: KubeCluster, kube_namespace: str, sidecar: tuple[str, PolicyKit]) -> None:
    base, kit = sidecar
    status = httpx.get(base + "/config/status").json()
    assert status["source"] == f"configmap:{kube_namespace}/{NAME}"
    assert status["revision"] == kit.document().revision
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {kit.token('s-cursor', 'cursor')}"}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}
    assert "result" in httpx.post(base + "/mcp", headers=headers, json=call).json()

    kit.session("s-cursor", "cursor", revoked=True)
    kube_cluster.apply(policy_configmap(kit), namespace=kube_namespace)
    # A mounted file would take the kubelet's sync (a minute or more); the watch takes well under 5 s.
    started = time.monotonic()
    status_code = 200
    while status_code != 401 and time.monotonic() - started < 5:
        status_code = httpx.post(base + "/mcp", headers=headers, json=call).status_code
    assert status_code == 401
    assert httpx.get(base + "/config/status").json()["revision"] == kit.document().revision
