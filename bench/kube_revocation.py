"""How long a session revocation takes to reach a gateway sidecar's policy in the Kubernetes runtime.

Path measured: PATCH MCPAgentSession revoked=true -> the operator's reconcile (real `Reconciler`, real
`kubernetes` client) re-renders the policy ConfigMap -> the sidecar's `KubeConfigMapPolicyWatcher`
receives the new policy.json. Against the FAKE API server from tests/fakes (in-process, loopback), so
this is the platform's own overhead; a real API server adds its write + watch fan-out latency (typically
a few ms to tens of ms). The operator is called directly here; with kopf, add its watch-event delivery.
Baseline: the watcher's latency for a bare ConfigMap write (API write -> watch event -> callback).

Run: PYTHONPATH=src:tests .venv/bin/python bench/kube_revocation.py [rounds]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fakes.fake_kube_apiserver import FakeKubeApiServer
from mcp_runtime.gateway.configmap_source import KubeConfigMapPolicyWatcher
from mcp_runtime.kube import KubeClient
from mcp_runtime.kube.connection import KubeConnection
from mcp_runtime.operator.reconcile import Reconciler
from mcp_runtime.operator.settings import OperatorSettings

NS = "mcp-team-acme"


async def main(rounds: int) -> None:
    with FakeKubeApiServer() as fake:
        kubeconfig = fake.write_kubeconfig(Path(tempfile.mkdtemp()) / "kubeconfig")
        client = KubeClient.from_environment(str(kubeconfig))
        fake.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        client.create({"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPServer",
                       "metadata": {"name": "payments", "namespace": NS},
                       "spec": {"image": "acme/payments:v1", "tools": [{"name": "echo", "sideEffect": "read"}]}})
        for i in range(rounds):
            client.create({"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAgentSession",
                           "metadata": {"name": f"s{i}", "namespace": NS},
                           "spec": {"serverRef": {"name": "payments"}, "subject": {"agentID": "cursor"}}})
        reconciler = Reconciler(client, OperatorSettings(jwks_source=None))
        reconciler.reconcile_server(NS, "payments")

        fake.seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "baseline", "namespace": NS},
                   "data": {"policy.json": "{}"}})
        connection = KubeConnection.from_kubeconfig(str(kubeconfig))
        arrived: asyncio.Queue[bytes] = asyncio.Queue()
        bare: asyncio.Queue[bytes] = asyncio.Queue()
        watcher = KubeConfigMapPolicyWatcher(NS, "payments-policy", arrived.put_nowait, connection=connection)
        bare_watcher = KubeConfigMapPolicyWatcher(NS, "baseline", bare.put_nowait, connection=connection)
        await watcher.start()
        await bare_watcher.start()
        await asyncio.wait_for(arrived.get(), 10)
        await asyncio.wait_for(bare.get(), 10)

        revoke, baseline = [], []
        for i in range(rounds):
            start = time.perf_counter()
            await asyncio.to_thread(client.patch, "MCPAgentSession", f"s{i}", NS, {"spec": {"revoked": True}})
            await asyncio.to_thread(reconciler.reconcile_access, "MCPAgentSession", NS, f"s{i}")
            doc = json.loads(await asyncio.wait_for(arrived.get(), 10))
            revoke.append(time.perf_counter() - start)
            assert next(s for s in doc["sessions"] if s["name"] == f"s{i}")["revoked"]

            start = time.perf_counter()
            await asyncio.to_thread(client.patch, "ConfigMap", "baseline", NS,
                                    {"data": {"policy.json": json.dumps({"n": i})}})
            await asyncio.wait_for(bare.get(), 10)
            baseline.append(time.perf_counter() - start)
        await watcher.stop()
        await bare_watcher.stop()

    def ms(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else values[0] * 1000

    print(f"rounds: {rounds}")
    print(f"revocation -> sidecar policy  p50 {ms(revoke, 50):7.1f} ms   p99 {ms(revoke, 99):7.1f} ms")
    print(f"bare ConfigMap write -> watcher p50 {ms(baseline, 50):7.1f} ms   p99 {ms(baseline, 99):7.1f} ms")
    print(f"ratio (p50): {statistics.median(revoke) / statistics.median(baseline):.1f}x the bare watch path; "
          f"target: revocation under 1000 ms -> {'met' if ms(revoke, 99) < 1000 else 'NOT met'}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30))
