"""Policy changes reach a running gateway in under a second; a bad update keeps the last good policy."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.gateway import EchoUpstream, serve_app, serve_gateway, standard_kit
from mcp_runtime.gateway import FilePolicySource, Gateway, GatewayRoute, InProcessPolicySource, JwksFile

JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def call(tool: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}}


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve_app(EchoUpstream()) as base:
        yield base + "/mcp"


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def outcome(client: httpx.Client, url: str, token: str, tool: str) -> str:
    response = client.post(url, headers={**JSON, "Authorization": f"Bearer {token}"}, json=call(tool))
    if response.status_code == 401:
        return response.json()["error"]
    body = response.json()
    return "allowed" if "result" in body else body["error"]["data"]["reason"]


def wait_for(check: Any, expected: str, deadline_s: float) -> tuple[str, float]:
    """Poll until `check()` returns `expected` or the deadline passes; returns (last value, elapsed)."""
    started = time.monotonic()
    value = check()
    while value != expected and time.monotonic() - started < deadline_s:
        time.sleep(0.01)
        value = check()
    return value, time.monotonic() - started


def test_policy_file_replaced_takes_effect_within_a_second(upstream: str, tmp_path: Path) -> None:
    kit = standard_kit()
    policy = tmp_path / "policy.json"
    policy.write_bytes(kit.document().to_json())
    token = kit.token("s-claude", "claude", trust="low")
    with serve_gateway(upstream, kit, source=FilePolicySource(policy)) as (url, _gw), \
            httpx.Client(timeout=5) as client:
        assert outcome(client, url, token, "upper") == "tool_not_granted"

        kit.grants = [g for g in kit.grants if g["metadata"]["name"] != "g-claude"]
        kit.grant("g-claude", "claude", tools=["echo", "upper"], max_trust="low")
        write_atomically(policy, kit.document().to_json())
        value, elapsed = wait_for(lambda: outcome(client, url, token, "upper"), "allowed", 5.0)
        assert value == "allowed"
        assert elapsed < 1.0, f"policy change took {elapsed:.3f}s"

        # Revocation, written in place this time (not an atomic rename).
        kit.session("s-claude", "claude", trust="low", revoked=True)
        policy.write_bytes(kit.document().to_json())
        value, elapsed = wait_for(lambda: outcome(client, url, token, "echo"), "session_revoked", 5.0)
        assert value == "session_revoked"
        assert elapsed < 1.0, f"revocation took {elapsed:.3f}s"


def test_invalid_policy_file_keeps_the_last_good_and_reports_the_error(upstream: str, tmp_path: Path) -> None:
    kit = standard_kit()
    policy = tmp_path / "policy.json"
    good = kit.document()
    policy.write_bytes(good.to_json())
    token = kit.token("s-cursor", "cursor")
    with serve_gateway(upstream, kit, source=FilePolicySource(policy)) as (url, _gw), \
            httpx.Client(timeout=5) as client:
        status_url = url.removesuffix("/mcp") + "/config/status"
        status = client.get(status_url).json()
        assert status["revision"] == good.revision
        assert status["loaded_at"]
        assert status["last_error"] is None

        write_atomically(policy, b'{"schemaVersion": 1, "server": ')
        wait_for(lambda: str(client.get(status_url).json()["last_error"] is not None), "True", 1.5)
        status = client.get(status_url).json()
        assert status["last_error"] and "policy.json" in status["last_error"]
        assert status["revision"] == good.revision
        assert outcome(client, url, token, "echo") == "allowed"

        tampered = json.loads(good.to_json())
        tampered["grants"][0]["maxTrust"] = "high"
        tampered["mode"] = "observe"
        write_atomically(policy, json.dumps(tampered).encode())
        wait_for(lambda: str("revision" in str(client.get(status_url).json()["last_error"])), "True", 1.5)
        status = client.get(status_url).json()
        assert "revision" in status["last_error"]
        assert status["revision"] == good.revision
        assert outcome(client, url, token, "reverse") == "tool_not_granted"

        metrics = client.get(url.removesuffix("/mcp") + "/metrics").text
        assert 'mcp_gateway_policy_reloads_total{result="error",server="data-utility"}' in metrics

        policy.unlink()  # a missing file is an error too, and still keeps the last good one
        write_atomically(policy, good.to_json())
        value, _ = wait_for(lambda: str(client.get(status_url).json()["last_error"]), "None", 1.5)
        assert value == "None"


def test_in_process_push_revokes_immediately(upstream: str) -> None:
    kit = standard_kit()
    source = InProcessPolicySource(kit.document())
    token = kit.token("s-cursor", "cursor")
    with serve_gateway(upstream, kit, source=source) as (url, _gw), httpx.Client(timeout=5) as client:
        assert outcome(client, url, token, "echo") == "allowed"
        kit.session("s-cursor", "cursor", revoked=True)
        assert source.push(kit.document())
        assert outcome(client, url, token, "echo") == "session_revoked"
        assert not source.push(b"not json")
        assert source.last_error and "not JSON" in source.last_error
        assert outcome(client, url, token, "echo") == "session_revoked"


def test_rotated_jwks_file_is_picked_up(upstream: str, tmp_path: Path) -> None:
    """After the platform rotates its signing key, tokens signed with the new key verify."""
    kit = standard_kit()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(kit.keyring.jwks()))
    keys = JwksFile(jwks)
    gateway = Gateway([GatewayRoute(upstream=upstream, policy=InProcessPolicySource(kit.document()), keys=keys,
                                    path="/mcp")])
    with serve_app(gateway) as base, httpx.Client(timeout=5) as client:
        url = base + "/mcp"
        assert outcome(client, url, kit.token("s-cursor", "cursor"), "echo") == "allowed"
        kit.keyring.rotate()
        rotated = kit.token("s-cursor", "cursor")
        assert outcome(client, url, rotated, "echo") == "unknown_key"
        write_atomically(jwks, json.dumps(kit.keyring.jwks()).encode())
        value, _ = wait_for(lambda: outcome(client, url, rotated, "echo"), "allowed", 5.0)
        assert value == "allowed"
        jwks.write_text("{broken")  # a bad update keeps the keys in use
        wait_for(lambda: str(keys.last_error is not None), "True", 2.0)
        assert keys.last_error
        assert outcome(client, url, rotated, "echo") == "allowed"


def test_a_session_issued_a_moment_ago_waits_for_the_policy_that_knows_it(upstream: str, tmp_path: Path) -> None:
    """The platform answers with a token as soon as it created the session; a sidecar learns of the session
    when its policy file is rewritten, a moment later. The first call (an OAuth client's, right after its code
    exchange) is judged by that policy instead of being refused `session_not_found`, which would send the
    client through the authorization again. A session the policy never learns of is still refused."""
    kit = standard_kit()
    policy = tmp_path / "policy.json"
    policy.write_bytes(kit.document().to_json())
    fresh = kit.token("s-new", "cursor", age=timedelta(seconds=0))
    with serve_gateway(upstream, kit, source=FilePolicySource(policy)) as (url, _gw), \
            httpx.Client(timeout=10) as client:
        kit.session("s-new", "cursor")
        timer = threading.Timer(0.3, lambda: write_atomically(policy, kit.document().to_json()))
        started = time.monotonic()
        timer.start()
        try:
            assert outcome(client, url, fresh, "echo") == "allowed"
        finally:
            timer.join()
        assert 0.3 <= time.monotonic() - started < 2.0

        old = kit.token("s-gone", "cursor", age=timedelta(minutes=5))  # not fresh: refused at once
        started = time.monotonic()
        assert outcome(client, url, old, "echo") == "session_not_found"
        assert time.monotonic() - started < 0.5
        unknown = kit.token("s-never", "cursor", age=timedelta(seconds=0))  # fresh, but never in the policy
        started = time.monotonic()
        assert outcome(client, url, unknown, "echo") == "session_not_found"
        assert 2.5 <= time.monotonic() - started < 5.0
        kit.session("s-new", "cursor", revoked=True)  # a known session is never waited for
        write_atomically(policy, kit.document().to_json())
        wait_for(lambda: outcome(client, url, fresh, "echo"), "session_revoked", 2.0)
        started = time.monotonic()
        assert outcome(client, url, fresh, "echo") == "session_revoked"
        assert time.monotonic() - started < 0.5
