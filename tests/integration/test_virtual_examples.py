"""A virtual server over two of the example servers: the Python data-utility (the caller's neighbour
team) and the Go workspace-assistant of another team, which shares two tools with the caller's team by a
grant. The official SDK client sees one prefixed, filtered tool list, and each call is routed to its
member and decided by that member's policy (a write the grant does not allow is denied by the Go member's
document)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from test_virtual_gateway import data_document, virtual_session

from fixtures.examples import ToolchainError, build_go_example, find_go
from fixtures.gateway import CALLER_TEAM, NAMESPACE, serve_app, standard_kit
from fixtures.servers import free_port, run_data_utility_server, stop_process
from mcp_runtime.gateway import Gateway, GatewayRoute, InProcessPolicySource
from mcp_runtime.gateway.virtual.endpoint import VirtualRoute
from mcp_runtime.policy import PolicyDocument, compile_policy
from mcp_runtime.resources import MCPAccessGrant, MCPServer, MCPVirtualServer

GO_NS = "team-workspace"
GO_TOOLS = {"echo": "read", "add": "read", "upper": "read", "lower": "read", "slugify": "read",
            "create_task": "write", "draft_release_note": "read"}


def go_document(sessions: list[Any]) -> PolicyDocument:
    server = MCPServer.model_validate({"metadata": {"name": "workspace", "namespace": GO_NS}, "spec": {
        "image": "team-workspace/workspace-assistant", "teamID": "workspace-uuid",
        "tools": [{"name": n, "sideEffect": e} for n, e in GO_TOOLS.items()]}})
    grant = MCPAccessGrant.model_validate({"metadata": {"name": "share-with-globex", "namespace": GO_NS}, "spec": {
        "serverRef": {"name": "workspace"}, "subject": {"teamID": CALLER_TEAM}, "maxTrust": "high",
        "allowedSideEffects": ["read"],
        "toolRules": [{"name": "slugify"}, {"name": "add"}, {"name": "create_task"}]}})
    return compile_policy(server, [grant], [], sessions)


@pytest.fixture(scope="module")
def go_member() -> Iterator[str]:
    try:
        binary = build_go_example(find_go())
    except ToolchainError as exc:
        pytest.fail(str(exc))
    port = free_port()
    proc = subprocess.Popen([str(binary)], env=dict(os.environ, HOST="127.0.0.1", PORT=str(port), MCP_PATH="/mcp"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the Go example did not start"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop_process(proc)


async def _use(url: str, token: str) -> dict[str, Any]:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        names = sorted(t.name for t in (await session.list_tools()).tools)
        slug = await session.call_tool("go_slugify", {"text": "Hello World!"})
        python = await session.call_tool("data-utility_add", {"a": 1, "b": 2})
        go = await session.call_tool("go_add", {"a": 0.5, "b": 0.25})
        with pytest.raises(MCPError) as denied:
            await session.call_tool("go_create_task", {"title": "x", "priority": "low"})
        texts = [r.content[0].text for r in (slug, python, go)]  # type: ignore[union-attr]
        return {"names": names, "texts": texts, "denied": denied.value.error}


def test_one_endpoint_over_the_python_and_go_examples(go_member: str) -> None:
    kit = standard_kit()
    sessions = [virtual_session()]
    keys = kit.keyring.public_keys()
    with run_data_utility_server() as data:
        gateway = Gateway([
            GatewayRoute(upstream=data.url, policy=InProcessPolicySource(data_document(kit, sessions)), keys=keys,
                         server="data-utility", namespace=NAMESPACE),
            GatewayRoute(upstream=go_member, policy=InProcessPolicySource(go_document(sessions)), keys=keys,
                         server="workspace", namespace=GO_NS)])
        spec = MCPVirtualServer.model_validate({"metadata": {"name": "toolbox", "namespace": NAMESPACE}, "spec": {
            "members": [{"serverRef": {"name": "data-utility"}, "tools": {"include": ["add", "echo"]}},
                        {"serverRef": {"name": "workspace", "namespace": GO_NS}, "prefix": "go_"}]}})
        anyio.run(lambda: gateway.add_virtual(VirtualRoute(spec, keys)))
        with serve_app(gateway) as base:
            token = kit.token("vs-cursor", "cursor", server="toolbox", namespace=NAMESPACE)
            seen = anyio.run(_use, f"{base}/v/toolbox/mcp", token)
    # create_task is granted but is a write, and the grant allows reads only: not listed, and denied
    assert seen["names"] == ["data-utility_add", "data-utility_echo", "go_add", "go_slugify"]
    assert seen["texts"] == ["hello-world", "3", "0.75"]
    assert seen["denied"].code == -32001 and seen["denied"].data["reason"] == "side_effect_not_allowed"
    assert seen["denied"].data["server"] == "workspace"
