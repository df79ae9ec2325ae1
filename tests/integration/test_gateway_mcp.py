"""The official MCP Python SDK client, through the gateway, to the data-utility example server.

Both upstream answer modes run: SSE streams (the SDK default) and plain JSON (`MCP_JSON_RESPONSE=1`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from fixtures.gateway import PolicyKit, serve_gateway, standard_kit
from fixtures.servers import run_data_utility_server


@pytest.fixture(scope="module", params=["sse", "json"])
def governed(request: pytest.FixtureRequest) -> Iterator[tuple[str, PolicyKit]]:
    """(gateway URL, policy kit) in front of a data-utility server in SSE or JSON mode."""
    kit = standard_kit()
    with run_data_utility_server(json_response=request.param == "json") as upstream, \
            serve_gateway(upstream.url, kit) as (url, gateway):
        GATEWAYS[url] = gateway
        yield url, kit


GATEWAYS: dict[str, Any] = {}


async def _with_session(url: str, token: str, body: Any) -> Any:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        return await body(session)


def run(url: str, token: str, body: Any) -> Any:
    return anyio.run(_with_session, url, token, body)


def test_initialize_and_tools_list_shows_only_granted_tools(governed: tuple[str, PolicyKit]) -> None:
    url, kit = governed

    async def body(session: ClientSession) -> Any:
        return sorted(t.name for t in (await session.list_tools()).tools)

    assert run(url, kit.token("s-cursor", "cursor"), body) == ["add", "echo", "multiply", "ping", "upper"]
    assert run(url, kit.token("s-claude", "claude", trust="low"), body) == ["echo"]


def test_allowed_call_returns_the_tool_result(governed: tuple[str, PolicyKit]) -> None:
    url, kit = governed

    async def body(session: ClientSession) -> Any:
        return await session.call_tool("add", {"a": 2, "b": 3})

    result = run(url, kit.token("s-cursor", "cursor"), body)
    assert not result.is_error
    assert result.content[0].text == "5"


def test_denied_call_is_a_json_rpc_error_with_the_reason(governed: tuple[str, PolicyKit]) -> None:
    url, kit = governed

    async def body(session: ClientSession) -> Any:
        with pytest.raises(MCPError) as denied:
            await session.call_tool("reverse", {"text": "abc"})
        return denied.value.error

    denied = run(url, kit.token("s-cursor", "cursor"), body)
    assert denied.code == -32001
    assert denied.data["reason"] == "tool_not_granted"
    assert denied.data["tool"] == "reverse"
    assert denied.data["server"] == "data-utility"
    assert denied.data["policyRevision"] == kit.document().revision
    assert "reverse" in denied.message

    async def claude(session: ClientSession) -> Any:
        with pytest.raises(MCPError) as exc:
            await session.call_tool("add", {"a": 1, "b": 1})
        return exc.value.error

    error = run(url, kit.token("s-claude", "claude", trust="low"), claude)
    assert error.data["reason"] == "tool_not_granted"

    async def low_trust(session: ClientSession) -> Any:
        with pytest.raises(MCPError) as exc:
            await session.call_tool("multiply", {"a": 2, "b": 3})
        return exc.value.error

    error = run(url, kit.token("s-cursor-low", "cursor", trust="low"), low_trust)
    assert error.data["reason"] == "trust_too_low"
    assert (error.data["requiredTrust"], error.data["effectiveTrust"]) == ("medium", "low")


def test_progress_notifications_stream_through(governed: tuple[str, PolicyKit],
                                               request: pytest.FixtureRequest) -> None:
    url, kit = governed
    ticks: list[float] = []

    async def body(session: ClientSession) -> Any:
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            ticks.append(progress)

        return await session.call_tool("ping", {"count": 4, "interval_ms": 20}, progress_callback=on_progress)

    result = run(url, kit.token("s-cursor", "cursor"), body)
    assert result.content[0].text == "pong"
    if "sse" in request.node.callspec.id:  # a JSON-mode server cannot send progress on the POST
        assert ticks == [1, 2, 3, 4]


def _initialize(client: httpx.Client, url: str, headers: dict[str, str]) -> dict[str, str]:
    init = client.post(url, headers=headers, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}}})
    assert init.status_code == 200, init.text
    session_headers = {**headers, "Mcp-Session-Id": init.headers["mcp-session-id"],
                       "Mcp-Protocol-Version": "2025-06-18"}
    initialized = client.post(url, headers=session_headers,
                              json={"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert initialized.status_code == 202
    return session_headers


def test_sse_events_arrive_one_by_one_not_buffered(governed: tuple[str, PolicyKit],
                                                   request: pytest.FixtureRequest) -> None:
    """SSE: the first progress event arrives while the tool still has a minute to go (nothing is
    buffered; the read timeout is 10 s). JSON: the same call answers with one JSON body."""
    url, kit = governed
    sse = "sse" in request.node.callspec.id
    headers = {"Authorization": f"Bearer {kit.token('s-cursor', 'cursor')}",
               "Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    with httpx.Client(timeout=httpx.Timeout(10.0)) as client:
        session_headers = _initialize(client, url, headers)
        call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "ping", "arguments": {"count": 2, "interval_ms": 60_000 if sse else 10},
                           "_meta": {"progressToken": "p1"}}}
        with client.stream("POST", url, headers=session_headers, json=call) as stream:
            if not sse:
                assert stream.headers["content-type"].startswith("application/json")
                assert b'"pong"' in stream.read()
                return
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    first = line
                    break
        assert '"notifications/progress"' in first and '"progress":1' in first.replace(" ", "")
    # The client left mid-stream: the gateway notices and drops that upstream connection.
    [route] = list(GATEWAYS[url].routes)
    deadline = time.monotonic() + 5
    while len(route.pool._all) > len(route.pool._idle) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(route.pool._all) == len(route.pool._idle), "an upstream stream outlived its client"


def test_get_stream_and_delete_pass_through(governed: tuple[str, PolicyKit]) -> None:
    """After initialize, GET opens the server's SSE stream and DELETE ends the session, via the gateway."""
    url, kit = governed
    token = kit.token("s-cursor", "cursor")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
               "Content-Type": "application/json"}
    with httpx.Client(timeout=10) as client:
        session_headers = _initialize(client, url, headers)
        session_id = session_headers["Mcp-Session-Id"]
        with client.stream("GET", url, headers={**session_headers, "Accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
        deleted = client.delete(url, headers=session_headers)
        assert deleted.status_code == 200
        after = client.post(url, headers=session_headers,
                            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert after.status_code == 404  # the upstream forgot the session: DELETE reached it

        no_token = client.get(url, headers={"Accept": "text/event-stream", "Mcp-Session-Id": session_id})
        assert no_token.status_code == 401
