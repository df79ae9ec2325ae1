"""`gateway run --policy-configmap`: the sidecar follows its policy ConfigMap through the Kubernetes API
(here the fake API server), so a revocation lands without waiting for the kubelet to sync a file."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fakes.fake_kube_apiserver import FakeKubeApiServer
from fakes.kube_fixture import fake_kube  # noqa: F401  (fixture)
from fixtures.cli import cli_env
from fixtures.gateway import NAMESPACE, EchoUpstream, PolicyKit, serve_app, standard_kit
from fixtures.servers import free_port, stop_process

CONFIGMAP = "data-utility-policy"


def configmap(kit: PolicyKit) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIGMAP, "namespace": NAMESPACE},
            "data": {"policy.json": kit.document().to_json().decode()}}


@pytest.fixture
def sidecar(fake_kube: FakeKubeApiServer, tmp_path: Path) -> Iterator[tuple[str, PolicyKit, FakeKubeApiServer]]:  # noqa: F811
    kit = standard_kit()
    fake_kube.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    fake_kube.seed(configmap(kit))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(kit.keyring.jwks()))
    with serve_app(EchoUpstream()) as upstream:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "mcp_runtime", "gateway", "run", "--upstream", upstream + "/mcp",
             "--policy-configmap", f"{NAMESPACE}/{CONFIGMAP}", "--jwks-file", str(jwks),
             "--listen", f"127.0.0.1:{port}", "--log-level", "warning"],
            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gateway did not start: {process.stderr.read().decode()}")  # type: ignore[union-attr]
                time.sleep(0.05)
            yield base, kit, fake_kube
        finally:
            stop_process(process)


def test_revocation_in_the_configmap_applies_within_a_second(sidecar: Any) -> None:
    base, kit, fake = sidecar
    status = httpx.get(base + "/config/status").json()
    assert status["source"] == f"configmap:{NAMESPACE}/{CONFIGMAP}"
    assert status["revision"] == kit.document().revision
    token = kit.token("s-cursor", "cursor")
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}
    assert "result" in httpx.post(base + "/mcp", headers=headers, json=call).json()

    kit.session("s-cursor", "cursor", revoked=True)
    httpx.put(f"{fake.url}/api/v1/namespaces/{NAMESPACE}/configmaps/{CONFIGMAP}", json=configmap(kit),
              headers={"Authorization": f"Bearer {fake.token}"}).raise_for_status()
    started = time.monotonic()
    status_code = 200
    while status_code != 401 and time.monotonic() - started < 5:
        status_code = httpx.post(base + "/mcp", headers=headers, json=call).status_code
    elapsed = time.monotonic() - started
    assert status_code == 401
    assert elapsed < 1.0, f"revocation took {elapsed:.3f}s"
    assert httpx.get(base + "/config/status").json()["revision"] == kit.document().revision
