"""A remote MCP server published through `mcp-runtime up`, as a user would, and governed like any other.

The remote is the official Python SDK's MCPServer on TLS with a CA made in the test, refusing any request
without its API key (fixtures/remote_mcp.py). Alice stores the key with `secret set`, scaffolds the entry
with `server init --remote-url` (tools discovered with the key and the CA), deploys it and grants her agent
one tool. Then: calls are governed by the grant; the remote sees the platform's key and the verified
identity, never the client's token; a wrong key, an untrusted CA, a remote that is down and one that is
too slow each give the client a JSON-RPC error naming the server, in bounded time; the remote coming back
brings the calls back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from fixtures.platform_up import NAMESPACE, PlatformWorld, running_platform
from fixtures.remote_mcp import RemoteMcp, make_ca

pytestmark = pytest.mark.slow

API_KEY = "remote-api-key-0123456789"
SERVER = "saas"
AGENT = "cursor"


async def _calls(url: str, token: str, calls: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Each call in one SDK session: the tool's text, or the denial reason."""
    outcomes = []
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        outcomes.append("listed:" + ",".join(sorted(t.name for t in listed.tools)))
        for tool, arguments in calls:
            try:
                result = await session.call_tool(tool, arguments)
                outcomes.append(result.content[0].text if result.content else "")  # type: ignore[union-attr]
            except MCPError as exc:
                data = exc.error.data if isinstance(exc.error.data, dict) else {}
                outcomes.append(str(data.get("reason")))
    return outcomes


def _mcp_session(world: PlatformWorld, token: str) -> dict[str, str]:
    """Headers of a raw MCP session through the gateway (initialize, initialized), with a forged API key."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
               "X-API-Key": "client-forged-key"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
    answer = httpx.post(f"{world.url}/{SERVER}/mcp", json=init, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    headers["mcp-session-id"] = answer.headers["mcp-session-id"]
    headers["mcp-protocol-version"] = "2025-06-18"
    done = httpx.post(f"{world.url}/{SERVER}/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                      headers=headers, timeout=10)
    assert done.status_code == 202, done.text
    return headers


def _rpc(world: PlatformWorld, headers: dict[str, str], tool: str, arguments: dict[str, Any],
         timeout: float = 30) -> httpx.Response:
    """One raw `tools/call` POST through the gateway (what a client sees when the remote fails)."""
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    return httpx.post(f"{world.url}/{SERVER}/mcp", json=body, timeout=timeout, headers=headers)


def _status(world: PlatformWorld, name: str) -> dict[str, Any]:
    return world.api("GET", f"runtime/servers/{NAMESPACE}/{name}").json().get("status") or {}


def _wait(check: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _init_and_deploy(world: PlatformWorld, work: Path, remote: RemoteMcp, key_file: Path, ca: Path) -> str:
    init = subprocess.run(
        [sys.executable, "-m", "mcp_runtime", "server", "init", SERVER, "--remote-url", remote.url,
         "--header-secret", "saas-credentials/api-key", "--header-name", "X-API-Key",
         "--credential-file", str(key_file), "--ca-file", str(ca),
         "--tool-spec", "delete_record:high:destructive"],
        cwd=work, env=world.env, capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stdout + init.stderr
    assert "Discovered: delete_record, search, slow" in init.stdout
    text = (work / ".mcp" / "servers.yaml").read_text()
    assert API_KEY not in text  # the entry says where the key is, never what it is
    entry = yaml.safe_load(text)["servers"][0]
    assert entry["remote"]["headerSecret"] == {"name": "saas-credentials", "key": "api-key", "header": "X-API-Key",
                                               "prefix": ""}
    assert "image" not in entry and "run" not in entry
    entry["gateway"]["timeouts"] = {"connect": "3s", "read": "2s"}
    (work / ".mcp" / "servers.yaml").write_text(yaml.safe_dump({"version": "v1", "servers": [entry]}))
    deploy = subprocess.run([sys.executable, "-m", "mcp_runtime", "server", "deploy", SERVER],
                            cwd=work, env=world.env, capture_output=True, text=True, timeout=60)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    return text


def _grant_and_session(world: PlatformWorld, tmp: Path) -> str:
    grant = tmp / "grant.yaml"
    world.cli(["access", "grant", "init", f"{SERVER}-{AGENT}", "--server", SERVER, "--namespace", NAMESPACE,
               "--team-id", world.team_id, "--agent-id", AGENT, "--tool", "search", "--tool", "slow",
               "--output", str(grant)])
    world.cli(["access", "grant", "apply", "--file", str(grant)])
    alice = json.loads((world.config_dir / "config.json").read_text())["profiles"]["alice"]["accessToken"]
    issued = httpx.post(f"{world.url}/api/v1/runtime/adapter/sessions", timeout=10,
                        headers={"Authorization": f"Bearer {alice}"},
                        json={"server": SERVER, "agent": AGENT, "agentID": AGENT})
    assert issued.status_code == 200, issued.text
    return str(issued.json()["token"])


def test_a_remote_server_is_published_with_the_cli_and_governed_like_a_deployed_one(tmp_path: Path) -> None:
    pki = make_ca(tmp_path / "pki")
    key_file = tmp_path / "api-key"
    key_file.write_text(API_KEY + "\n")
    work = tmp_path / "saas"
    work.mkdir()
    with RemoteMcp(pki, API_KEY) as remote, running_platform(tmp_path / "up") as world:
        set_secret = world.cli(["secret", "set", "saas-credentials", "--key", "api-key", "--from-file",
                                str(key_file), "--team", "acme"])
        assert "Set key api-key of secret saas-credentials" in set_secret.stdout
        listed = world.cli(["secret", "list", "--team", "acme", "-o", "json"]).stdout
        assert API_KEY not in listed and json.loads(listed)[0]["keys"] == ["api-key"]
        secret_file = world.data_dir / "secrets" / NAMESPACE / "saas-credentials.json"
        assert secret_file.stat().st_mode & 0o777 == 0o600

        _init_and_deploy(world, work, remote, key_file, pki.ca_pem)
        _wait(lambda: _status(world, SERVER).get("phase") == "Ready", "the remote server to be Ready")
        assert "nothing deployed" in _status(world, SERVER)["message"]
        rows = world.cli(["server", "list"]).stdout
        assert any(SERVER in line and "remote" in line for line in rows.splitlines()), rows
        got = world.cli(["server", "get", SERVER]).stdout
        assert remote.url in got and "header X-API-Key from secret saas-credentials/api-key" in got
        assert API_KEY not in world.api("GET", f"runtime/servers/{NAMESPACE}/{SERVER}").text

        token = _grant_and_session(world, tmp_path)
        remote.seen.clear()
        outcomes = anyio.run(_calls, f"{world.url}/{SERVER}/mcp", token,
                             [("search", {"query": "invoices"}), ("delete_record", {"record_id": "r1"})])
        # tools/list filtered by the grant; the granted call answered by the remote; the other denied here
        assert outcomes == ["listed:search,slow", "3 results for invoices", "tool_not_granted"]
        assert remote.seen, "the remote saw no request"
        for headers in remote.seen:
            assert headers["x-api-key"] == API_KEY
            assert "authorization" not in headers  # the client's bearer token never reaches the remote
            assert all(token not in value for value in headers.values())
            assert headers["host"] == f"localhost:{remote.port}"
            assert headers["x-mcp-agent-id"] == AGENT  # the identity the gateway verified
        assert not any("delete_record" in json.dumps(h) for h in remote.seen)

        # a client's own X-API-Key never replaces the platform's, nor rides along with it
        raw = _mcp_session(world, token)
        forged = _rpc(world, raw, "search", {"query": "x"})
        assert forged.status_code == 200 and "3 results for x" in forged.text, forged.text
        assert all("client-forged-key" not in h.get("x-api-key", "") for h in remote.seen)

        # too slow: the route's read timeout (2s) ends the call with a JSON-RPC error naming the server
        started = time.monotonic()
        slow = _rpc(world, raw, "slow", {"seconds": 20})
        took = time.monotonic() - started
        assert slow.status_code == 504 and took < 10, (slow.status_code, took)
        error = slow.json()
        assert error["id"] == 7 and error["error"]["code"] == -32002
        assert error["error"]["data"] == {"reason": "upstream_timeout", "server": SERVER, "namespace": NAMESPACE}
        print(f"slow remote: 504 after {took:.2f}s (read timeout 2s)")

        # the remote goes down: 502 with a JSON-RPC error naming the server, at once
        remote.stop()
        started = time.monotonic()
        down = _rpc(world, raw, "search", {"query": "x"})
        took = time.monotonic() - started
        assert down.status_code == 502 and took < 5, (down.status_code, took)
        assert down.json()["error"]["data"]["reason"] == "upstream_unavailable"
        assert f"MCP server {SERVER} behind /{SERVER}/mcp" in down.json()["error"]["message"]
        print(f"remote down: 502 after {took * 1000:.0f} ms")

        # ...and comes back: calls go through again (a new MCP session: the remote forgot the old one)
        remote.start()
        again = anyio.run(_calls, f"{world.url}/{SERVER}/mcp", token, [("search", {"query": "back"})])
        assert again == ["listed:search,slow", "3 results for back"]

        # a wrong key in the Secret: the remote's 401 becomes a 502 saying the credential was refused
        wrong = tmp_path / "wrong-key"
        wrong.write_text("not-the-key")
        world.cli(["secret", "set", "saas-credentials", "--key", "api-key", "--from-file", str(wrong),
                   "--team", "acme"])
        _wait(lambda: _status(world, SERVER).get("phase") == "Error", "the status to show the refused key")
        assert "401" in _status(world, SERVER)["message"]
        refused = _rpc(world, raw, "search", {"query": "x"})
        assert refused.status_code == 502
        assert refused.json()["error"]["data"]["reason"] == "upstream_credential_rejected"
        world.cli(["secret", "set", "saas-credentials", "--key", "api-key", "--from-file", str(key_file),
                   "--team", "acme"])
        _wait(lambda: _status(world, SERVER).get("phase") == "Ready", "the fixed key to be picked up")

        # a CA the remote's certificate does not chain to: refused, never sent the key in the clear
        other = make_ca(tmp_path / "other", "other")
        untrusted = {"name": "saas-untrusted", "tools": [{"name": "search", "sideEffect": "read"}],
                     "remote": {"url": remote.url, "caBundle": other.ca_pem.read_text(),
                                "headerSecret": {"name": "saas-credentials", "key": "api-key",
                                                 "header": "X-API-Key"}}}
        owner = world.user_token()
        deployed = httpx.post(f"{world.url}/api/v1/runtime/servers", json={"metadata": untrusted},
                              headers={"Authorization": f"Bearer {owner}"}, timeout=30)
        assert deployed.status_code == 201, deployed.text
        _wait(lambda: _status(world, "saas-untrusted").get("phase") == "Error", "the untrusted CA to show")
        assert "not trusted" in _status(world, "saas-untrusted")["message"]

        # each caller's own token: a remote with sessionToken gets the Secret the caller's session names
        per_user = {"name": "saas-per-user", "tools": [{"name": "search", "sideEffect": "read"}],
                    "remote": {"url": remote.url, "caBundle": pki.ca_pem.read_text(),
                               "sessionToken": {"header": "X-API-Key", "prefix": ""}}}
        deployed = httpx.post(f"{world.url}/api/v1/runtime/servers", json={"metadata": per_user},
                              headers={"Authorization": f"Bearer {owner}"}, timeout=30)
        assert deployed.status_code == 201, deployed.text
        _wait(lambda: _status(world, "saas-per-user").get("phase") == "Ready", "the per-user remote (it 401s us)")
        grant = {"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAccessGrant",
                 "metadata": {"name": "per-user-cursor", "namespace": NAMESPACE},
                 "spec": {"serverRef": {"name": "saas-per-user"}, "subject": {"agentID": AGENT}}}
        assert world.api("POST", "runtime/grants", json=grant).status_code == 201
        world.cli(["secret", "set", "bob-saas-token", "--key", "token", "--from-file", str(key_file), "--team", "acme"])

        def session(name: str, ref: dict[str, str] | None) -> str:
            spec: dict[str, Any] = {"serverRef": {"name": "saas-per-user"}, "subject": {"agentID": AGENT,
                                                                                       "humanID": f"{name}@acme.com"}}
            if ref:
                spec["upstreamTokenSecretRef"] = ref
            answer = world.api("POST", "runtime/sessions", json={
                "apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAgentSession",
                "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec})
            assert answer.status_code == 201, answer.text
            return str(answer.json()["token"])

        bob = session("bob", {"name": "bob-saas-token", "key": "token"})
        carol = session("carol", None)
        remote.seen.clear()
        assert anyio.run(_calls, f"{world.url}/saas-per-user/mcp", bob, [("search", {"query": "mine"})]) == [
            "listed:search", "3 results for mine"]
        assert {h["x-api-key"] for h in remote.seen} == {API_KEY} and all(bob not in json.dumps(h)
                                                                          for h in remote.seen)
        seen_before = len(remote.seen)
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
        missing = httpx.post(f"{world.url}/saas-per-user/mcp", json=init, timeout=10, headers={
            "Authorization": f"Bearer {carol}", "Accept": "application/json, text/event-stream"})
        assert missing.status_code == 403, missing.text  # carol's session names no token: nothing is sent
        assert missing.json()["error"]["data"]["reason"] == "upstream_credential_missing"
        # nothing of carol's reached the remote (the count alone is not it: the gateway's own periodic listing of
        # `saas`, the same remote URL, may land in this window, as it did once in CI: 7 == 6)
        since = remote.seen[seen_before:]
        assert not [h for h in since if h.get("x-mcp-human-id") == "carol@acme.com"], since
        assert all(carol not in json.dumps(h) for h in since), since
