"""The Python example server, exercised with the official SDK client as an agent would."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from fixtures.servers import (
    DATA_UTILITY_TOOLS,
    data_utility_server,
    data_utility_server_json,
    run_data_utility_server,
)
from mcp_runtime.runtime.discovery import DiscoveryError, discover_tools_sync

__all__ = ["data_utility_server", "data_utility_server_json"]  # fixtures used by name below

T = TypeVar("T")

INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def with_session(url: str, action: Callable[[ClientSession], Awaitable[T]]) -> T:
    """Connect with the SDK's Streamable HTTP client, initialize, run `action`."""

    async def run() -> T:
        with anyio.fail_after(20):
            async with (
                streamable_http_client(url) as (read, write),
                ClientSession(read, write, read_timeout_seconds=15) as session,
            ):
                await session.initialize()
                return await action(session)

    return anyio.run(run)


def call(url: str, tool: str, arguments: dict[str, Any]) -> Any:
    async def action(session: ClientSession) -> Any:
        return await session.call_tool(tool, arguments)

    return with_session(url, action)


def test_initialize_names_the_server(data_utility_server: str) -> None:
    async def action(session: ClientSession) -> Any:
        return session.server_info

    info = with_session(data_utility_server, action)
    assert info is not None
    assert info.name == "data-utility-mcp"
    assert info.version


def test_tools_list_has_exactly_the_seven_tools_with_typed_schemas(data_utility_server: str) -> None:
    async def action(session: ClientSession) -> Any:
        return await session.list_tools()

    tools = {tool.name: tool for tool in with_session(data_utility_server, action).tools}
    assert sorted(tools) == sorted(DATA_UTILITY_TOOLS)
    for tool in tools.values():
        assert tool.description, f"{tool.name} has no description"
        assert tool.input_schema["type"] == "object"
    assert tools["add"].input_schema["properties"]["a"]["type"] == "number"
    assert sorted(tools["multiply"].input_schema["required"]) == ["a", "b"]
    for name in ("echo", "upper", "lower", "reverse"):
        assert tools[name].input_schema["properties"]["text"]["type"] == "string"
        assert tools[name].input_schema["required"] == ["text"]
    ping = tools["ping"].input_schema
    assert ping["properties"]["count"]["type"] == "integer"
    assert ping["properties"]["count"]["default"] == 1
    assert ping["properties"]["interval_ms"]["default"] == 0
    assert not ping.get("required")


@pytest.mark.parametrize(
    ("tool", "arguments", "text"),
    [
        ("echo", {"text": "hello, world"}, "hello, world"),
        ("add", {"a": 2, "b": 3}, "5"),
        ("add", {"a": 0.5, "b": 0.25}, "0.75"),
        ("multiply", {"a": 4, "b": 2.5}, "10"),
        ("upper", {"text": "MiXed"}, "MIXED"),
        ("lower", {"text": "MiXed"}, "mixed"),
        ("reverse", {"text": "abc"}, "cba"),
        ("ping", {}, "pong"),
    ],
)
def test_each_tool_answers(data_utility_server: str, tool: str, arguments: dict[str, Any], text: str) -> None:
    result = call(data_utility_server, tool, arguments)
    assert not result.is_error
    assert [block.text for block in result.content] == [text]


def test_add_returns_a_structured_number(data_utility_server: str) -> None:
    result = call(data_utility_server, "add", {"a": 2, "b": 3})
    assert result.structured_content == {"result": 5}


def test_bad_arguments_are_a_tool_error_not_a_crash(data_utility_server: str) -> None:
    result = call(data_utility_server, "add", {"a": "two", "b": 3})
    assert result.is_error
    assert call(data_utility_server, "reverse", {"text": "ok"}).content[0].text == "ko"


def test_ping_streams_one_progress_notification_per_tick(data_utility_server: str) -> None:
    events: list[tuple[str, Any]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append(("progress", (progress, total)))

    async def action(session: ClientSession) -> Any:
        result = await session.call_tool(
            "ping", {"count": 3, "interval_ms": 20}, progress_callback=on_progress
        )
        events.append(("result", result.content[0].text))
        return result

    with_session(data_utility_server, action)
    assert events == [
        ("progress", (1, 3)), ("progress", (2, 3)), ("progress", (3, 3)), ("result", "pong"),
    ]


def test_default_transport_answers_with_sse_and_json_mode_with_plain_json(
    data_utility_server: str, data_utility_server_json: str
) -> None:
    sse = httpx.post(data_utility_server, json=INITIALIZE, headers=MCP_HEADERS, timeout=10)
    plain = httpx.post(data_utility_server_json, json=INITIALIZE, headers=MCP_HEADERS, timeout=10)
    assert sse.status_code == plain.status_code == 200
    assert sse.headers["content-type"].startswith("text/event-stream")
    assert plain.headers["content-type"].startswith("application/json")
    assert plain.json()["result"]["serverInfo"]["name"] == "data-utility-mcp"


def test_json_response_mode_works_with_the_sdk_client(data_utility_server_json: str) -> None:
    assert call(data_utility_server_json, "add", {"a": 2, "b": 3}).content[0].text == "5"
    assert call(data_utility_server_json, "ping", {"count": 2}).content[0].text == "pong"
    names = sorted(tool.name for tool in discover_tools_sync(data_utility_server_json, timeout=10))
    assert names == list(DATA_UTILITY_TOOLS)


def test_mcp_path_moves_the_endpoint() -> None:
    with run_data_utility_server(path="/custom/mcp") as server:
        assert server.url.endswith("/custom/mcp")
        assert call(server.url, "reverse", {"text": "abc"}).content[0].text == "cba"
        with pytest.raises(DiscoveryError) as caught:
            discover_tools_sync(server.base_url + "/mcp", timeout=10)
        assert caught.value.status_code == 404


def test_loopback_server_rejects_a_foreign_host_header(data_utility_server: str) -> None:
    """DNS-rebinding protection stays on: a proxy must forward the Host the server expects."""
    headers = {**MCP_HEADERS, "Host": "attacker.example"}
    answer = httpx.post(data_utility_server, json=INITIALIZE, headers=headers, timeout=10)
    assert answer.status_code in (400, 403, 421)
    port = httpx.URL(data_utility_server).port
    allowed = httpx.post(
        data_utility_server, json=INITIALIZE, headers={**MCP_HEADERS, "Host": f"localhost:{port}"}, timeout=10
    )
    assert allowed.status_code == 200


def test_the_fixture_stops_the_server_it_started() -> None:
    with run_data_utility_server() as server:
        process, url = server.process, server.url
        assert call(url, "echo", {"text": "up"}).content[0].text == "up"
    assert process.poll() is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=5)
