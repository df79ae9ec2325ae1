"""A sidecar gateway (`mcp-runtime gateway run`, as in a podman pod or a Kubernetes Deployment) reports the
tool definitions it sees to the platform with its ingest key, so `ToolsPinned` and `server tools approve`
work for servers the platform does not run in process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from platform_support import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORDS, LivePlatform, platform_settings, serve_platform

from fixtures.servers import REPO_ROOT, free_port, run_server_process
from mcp_runtime.resources.pinning import ToolPin
from mcp_runtime.store.sql import sqlite_url

NS = "mcp-team-acme"
DRIFTING = REPO_ROOT / "tests" / "fixtures" / "drifting_server.py"
REVIEWED = {"name": "lookup", "description": "Look up a customer by id.",
            "inputSchema": {"properties": {"customer_id": {"title": "Customer Id", "type": "string"}},
                            "required": ["customer_id"], "title": "lookupArguments", "type": "object"}}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LivePlatform]:
    with serve_platform(platform_settings(tmp_path, sqlite_url(tmp_path))) as served:
        yield served


def condition(live: LivePlatform, token: str) -> dict[str, Any]:
    status = live.call("GET", f"/runtime/servers/{NS}/customers", token=token).json().get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == "ToolsPinned"), {})


def test_a_sidecar_reports_drift_and_the_owner_approves_what_it_saw(live: LivePlatform, tmp_path: Path) -> None:
    admin = live.login(ADMIN_EMAIL, ADMIN_PASSWORD)["accessToken"]
    assert live.call("POST", "/teams", token=admin, json={"slug": "acme", "name": "Acme"}).status_code == 201
    assert live.call("POST", "/teams/acme/users", token=admin, json={
        "username": "alice@acme.com", "password": PASSWORDS["alice@acme.com"], "role": "owner"}).status_code == 201
    alice = live.login("alice@acme.com", PASSWORDS["alice@acme.com"])["accessToken"]
    tools = [{"name": "lookup", "sideEffect": "read", "pin": ToolPin.of(REVIEWED).to_wire()},
             {"name": "greet", "sideEffect": "read"}]
    deployed = live.call("POST", "/runtime/servers", token=alice, json={"metadata": {"name": "customers",
                                                                                     "tools": tools}})
    assert deployed.status_code == 201, deployed.text
    policy = tmp_path / "policy.json"
    policy.write_bytes(live.call("GET", f"/runtime/servers/{NS}/customers/policy", token=alice).content)
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(live.call("GET", "/auth/jwks").content)
    key = tmp_path / "ingest-key"
    key.write_text(live.platform.ingest_keys.local_key)
    os.chmod(key, 0o600)

    port = free_port()
    with run_server_process([sys.executable, str(DRIFTING)], cwd=DRIFTING.parent,
                            env={"TOOL_VARIANT": "poisoned"}) as upstream:
        sidecar = subprocess.Popen(
            [sys.executable, "-m", "mcp_runtime", "gateway", "run", "--upstream", upstream.url, "--policy-file",
             str(policy), "--jwks-file", str(jwks), "--listen", f"127.0.0.1:{port}", "--ingest-url",
             f"{live.url}/api/v1/ingest/events", "--ingest-key-file", str(key), "--spool-dir", str(tmp_path / "sp"),
             "--log-level", "warning"],
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while condition(live, alice).get("status") != "False":
                assert sidecar.poll() is None, sidecar.stdout.read().decode() if sidecar.stdout else ""
                assert time.monotonic() < deadline, "the sidecar's report never arrived"
                time.sleep(0.2)
        finally:
            sidecar.terminate()
            sidecar.wait(timeout=15)
    assert condition(live, alice)["message"] == "greet: not pinned; lookup: definition changed"
    review = live.call("GET", f"/runtime/servers/{NS}/customers/tools", token=alice).json()
    lookup = next(r for r in review["tools"] if r["name"] == "lookup")
    assert "id_rsa" in lookup["seen"]["description"] and any("id_rsa" in line for line in lookup["diff"])
    approved = live.call("POST", f"/runtime/servers/{NS}/customers/tools/approve", token=alice, json={})
    assert approved.status_code == 200 and approved.json()["approved"] == ["greet", "lookup"]
    assert condition(live, alice)["status"] == "True"
