"""A virtual server in `mcp-runtime up`, the way a user sets it up: `server virtual init|apply|list|get`
with the CLI, a session for the virtual server, the official SDK client at `/v/toolbox/mcp`; analytics
name the virtual server and the member; a member deleted while in use is reported by name."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from fixtures.platform_up import AGENT, NAMESPACE, SERVER, PlatformWorld, running_platform


def _wait(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


async def _use(url: str, token: str) -> dict[str, Any]:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        names = sorted(t.name for t in (await session.list_tools()).tools)
        added = await session.call_tool(f"{SERVER}_add", {"a": 20, "b": 22})
        with pytest.raises(MCPError) as denied:
            await session.call_tool(f"{SERVER}_upper", {"text": "x"})
        return {"names": names, "add": added.content[0].text, "denied": denied.value.error}  # type: ignore[union-attr]


async def _after_delete(url: str, token: str) -> Any:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        with pytest.raises(MCPError) as gone:
            await session.call_tool(f"{SERVER}_add", {"a": 1, "b": 1})
        return gone.value.error


def test_virtual_server_in_up(tmp_path: Path) -> None:
    with running_platform(tmp_path) as world:
        _run(world, tmp_path)


def _run(world: PlatformWorld, tmp_path: Path) -> None:
    spec = tmp_path / "toolbox.yaml"
    world.cli(["server", "virtual", "init", "toolbox", "-n", NAMESPACE, "--member", SERVER,
               "--exclude", f"{SERVER}:ping", "--output", str(spec)])
    applied = world.cli(["server", "virtual", "apply", "-f", str(spec)])
    assert "virtual server toolbox created" in applied.stdout and "/v/toolbox/mcp" in applied.stdout
    assert _wait(lambda: world.api("GET", f"runtime/virtualservers/{NAMESPACE}/toolbox").json()
                 .get("status", {}).get("phase") == "Ready")
    shown = json.loads(world.cli(["server", "virtual", "get", "toolbox", "-o", "json"]).stdout)
    assert shown["status"]["url"] == f"{world.url}/v/toolbox/mcp"
    table = world.cli(["server", "virtual", "list"]).stdout
    assert "toolbox" in table and "Ready" in table and SERVER in table

    session = {"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAgentSession",
               "metadata": {"name": "toolbox-cursor", "namespace": NAMESPACE},
               "spec": {"serverRef": {"name": "toolbox"}, "consentedTrust": "high",
                        "subject": {"teamID": world.team_id, "agentID": AGENT}}}
    issued = world.api("POST", "runtime/sessions", json=session)
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]
    url = f"{world.url}/v/toolbox/mcp"

    seen = anyio.run(_use, url, token)
    # the grant allows echo, add, ping; ping is excluded by the virtual server; upper is not granted
    assert seen["names"] == [f"{SERVER}_add", f"{SERVER}_echo"]
    assert seen["add"] == "42"
    assert seen["denied"].code == -32001 and seen["denied"].data["reason"] == "tool_not_granted"

    def virtual_events() -> list[dict[str, Any]]:
        items = world.api("GET", f"analytics/events?server={SERVER}&limit=1000").json()["items"]
        return [e for e in items if e.get("virtualServer") == f"{NAMESPACE}/toolbox"]

    events = _wait(lambda: len(virtual_events()) >= 2 and virtual_events())
    assert {(e["tool"], e["decision"]) for e in events} >= {("add", "allow"), ("upper", "deny")}
    assert all(e["server"] == SERVER and e["session"] == "toolbox-cursor" for e in events)
    verify = world.cli(["analytics", "verify", "--data-dir", str(world.data_dir)], check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # the member is deleted while the virtual server uses it: calls name it, nothing else breaks
    assert world.api("DELETE", f"runtime/servers/{NAMESPACE}/{SERVER}").status_code == 200
    gone = _wait(lambda: _gone(url, token))
    assert gone is not None and gone.code == -32002 and gone.data["server"] == SERVER
    assert world.cli(["server", "virtual", "delete", "toolbox"]).returncode == 0


def _gone(url: str, token: str) -> Any:
    error = anyio.run(_after_delete, url, token)
    return error if error.code == -32002 else None
