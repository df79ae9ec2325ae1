"""A virtual server over the three example servers on the official SDKs: the Python data-utility (the
caller's neighbour team), the Go workspace-assistant of another team, which shares tools with the caller's
team by a grant, and the Rust text-analysis of a third team, which shares one tool. The official SDK client
sees one prefixed, filtered tool list, and each call is routed to its member and decided by that member's
policy (a write the Go grant does not allow, and a Rust tool no grant shares, are denied by their member's
document)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from test_virtual_gateway import data_document, virtual_session

from fixtures.examples import ToolchainError, build_go_example, build_rust_example, find_cargo, find_go
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


RUST_NS = "team-text"


def rust_document(sessions: list[Any]) -> PolicyDocument:
    server = MCPServer.model_validate({"metadata": {"name": "text", "namespace": RUST_NS}, "spec": {
        "image": "team-text/text-analysis", "teamID": "text-uuid",
        "tools": [{"name": n, "sideEffect": "read"} for n in ("extract_keywords", "repeat", "word_count")]}})
    grant = MCPAccessGrant.model_validate({"metadata": {"name": "share-word-count", "namespace": RUST_NS}, "spec": {
        "serverRef": {"name": "text"}, "subject": {"teamID": CALLER_TEAM}, "maxTrust": "high",
        "toolRules": [{"name": "word_count"}]}})
    return compile_policy(server, [grant], [], sessions)


@pytest.fixture(scope="module")
def go_member() -> Iterator[str]:
    try:
        binary = build_go_example(find_go())
    except ToolchainError as exc:
        pytest.fail(str(exc))
    yield from _serve(binary, "the Go example")


@pytest.fixture(scope="module")
def rust_member() -> Iterator[str]:
    try:
        binary = build_rust_example(find_cargo())
    except ToolchainError as exc:
        pytest.fail(str(exc))
    yield from _serve(binary, "the Rust example")


def _serve(binary: Path, what: str) -> Iterator[str]:
    """Run an example binary on a free loopback port until the module's tests are done."""
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
                assert proc.poll() is None and time.monotonic() < deadline, f"{what} did not start"
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
        rust = await session.call_tool("rs_word_count", {"text": "one two\nthree"})
        with pytest.raises(MCPError) as denied:
            await session.call_tool("go_create_task", {"title": "x", "priority": "low"})
        with pytest.raises(MCPError) as not_shared:
            await session.call_tool("rs_repeat", {"text": "x", "times": 2})
        texts = [r.content[0].text for r in (slug, python, go, rust)]  # type: ignore[union-attr]
        return {"names": names, "texts": texts, "denied": denied.value.error, "not_shared": not_shared.value.error}


def test_one_endpoint_over_the_python_go_and_rust_examples(go_member: str, rust_member: str) -> None:
    kit = standard_kit()
    sessions = [virtual_session()]
    keys = kit.keyring.public_keys()
    with run_data_utility_server() as data:
        gateway = Gateway([
            GatewayRoute(upstream=data.url, policy=InProcessPolicySource(data_document(kit, sessions)), keys=keys,
                         server="data-utility", namespace=NAMESPACE),
            GatewayRoute(upstream=go_member, policy=InProcessPolicySource(go_document(sessions)), keys=keys,
                         server="workspace", namespace=GO_NS),
            GatewayRoute(upstream=rust_member, policy=InProcessPolicySource(rust_document(sessions)), keys=keys,
                         server="text", namespace=RUST_NS)])
        spec = MCPVirtualServer.model_validate({"metadata": {"name": "toolbox", "namespace": NAMESPACE}, "spec": {
            "members": [{"serverRef": {"name": "data-utility"}, "tools": {"include": ["add", "echo"]}},
                        {"serverRef": {"name": "workspace", "namespace": GO_NS}, "prefix": "go_"},
                        {"serverRef": {"name": "text", "namespace": RUST_NS}, "prefix": "rs_"}]}})
        anyio.run(lambda: gateway.add_virtual(VirtualRoute(spec, keys)))
        with serve_app(gateway) as base:
            token = kit.token("vs-cursor", "cursor", server="toolbox", namespace=NAMESPACE)
            seen = anyio.run(_use, f"{base}/v/toolbox/mcp", token)
    # create_task is granted but is a write, and the grant allows reads only: not listed, and denied
    assert seen["names"] == ["data-utility_add", "data-utility_echo", "go_add", "go_slugify", "rs_word_count"]
    assert seen["texts"][:3] == ["hello-world", "3", "0.75"]
    assert json.loads(seen["texts"][3]) == {"words": 3, "lines": 2, "characters": 13}
    assert seen["denied"].code == -32001 and seen["denied"].data["reason"] == "side_effect_not_allowed"
    assert seen["denied"].data["server"] == "workspace"
    # repeat is the Rust member's, and no grant shares it with the caller's team
    assert seen["not_shared"].code == -32001 and seen["not_shared"].data["server"] == "text"
