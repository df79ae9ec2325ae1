"""`runtime.discovery` against real servers: the example MCP server and things that are not one."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import anyio
import pytest
from mcp.server.lowlevel.server import Server
from mcp_types import ListToolsResult, PaginatedRequestParams, Tool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from fixtures.servers import DATA_UTILITY_TOOLS, data_utility_server, free_port, serve_asgi
from mcp_runtime.runtime.discovery import (
    DiscoveredTool,
    DiscoveryError,
    discover_tools,
    discover_tools_sync,
    probe_initialize,
)

__all__ = ["data_utility_server"]  # fixture used by name below


def test_discover_tools_lists_the_example_tools(data_utility_server: str) -> None:
    tools = discover_tools_sync(data_utility_server, timeout=10)
    assert sorted(tool.name for tool in tools) == list(DATA_UTILITY_TOOLS)
    by_name = {tool.name: tool for tool in tools}
    assert isinstance(by_name["add"], DiscoveredTool)
    assert by_name["add"].description == "Add two numbers and return the sum."
    assert by_name["add"].input_schema["properties"]["b"]["type"] == "number"


def test_discover_tools_appends_mcp_to_a_bare_address(data_utility_server: str) -> None:
    base = data_utility_server.removesuffix("/mcp")
    tools = anyio.run(lambda: discover_tools(base + "/", timeout=10))
    assert sorted(tool.name for tool in tools) == list(DATA_UTILITY_TOOLS)


def test_discovery_sends_the_given_headers(data_utility_server: str) -> None:
    """Extra headers reach the server; a Host it does not accept is reported as an HTTP status."""
    with pytest.raises(DiscoveryError) as caught:
        discover_tools_sync(data_utility_server, timeout=10, headers={"Host": "attacker.example"})
    assert caught.value.reason == "http_status"
    assert caught.value.status_code == 421


def test_probe_initialize_reports_name_version_and_protocol(data_utility_server: str) -> None:
    info = anyio.run(lambda: probe_initialize(data_utility_server, timeout=10))
    assert info.name == "data-utility-mcp"
    assert info.version == "0.1.0"
    assert info.protocol_version[:4].isdigit()


def test_a_closed_port_fails_with_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(DiscoveryError) as caught:
        discover_tools_sync(url, timeout=10)
    error = caught.value
    assert error.reason == "connection_refused"
    assert f"{url}/mcp" in str(error)
    assert "connection refused" in str(error)
    assert "start the server" in str(error)


def _not_mcp_app() -> Starlette:
    async def html(_: Request) -> Response:
        return HTMLResponse("<html><body>Welcome</body></html>")

    async def json(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[
        Route("/mcp", html, methods=["GET", "POST", "DELETE"]),
        Route("/api", json, methods=["GET", "POST", "DELETE"]),
    ])


@pytest.fixture(scope="module")
def plain_http_server() -> Iterator[str]:
    with serve_asgi(_not_mcp_app()) as base_url:
        yield base_url


def test_a_web_page_is_not_an_mcp_server(plain_http_server: str) -> None:
    with pytest.raises(DiscoveryError) as caught:
        discover_tools_sync(plain_http_server, timeout=10)
    assert caught.value.reason == "not_mcp"
    assert f"{plain_http_server}/mcp is not an MCP server" in str(caught.value)
    assert "text/html" in str(caught.value)


def test_json_that_is_not_json_rpc_is_not_an_mcp_server(plain_http_server: str) -> None:
    with pytest.raises(DiscoveryError) as caught:
        discover_tools_sync(plain_http_server + "/api", timeout=10)
    assert caught.value.reason == "not_mcp"


def test_a_missing_path_is_an_http_status_with_a_hint(plain_http_server: str) -> None:
    with pytest.raises(DiscoveryError) as caught:
        discover_tools_sync(plain_http_server + "/nothing-here", timeout=10)
    assert caught.value.reason == "http_status"
    assert caught.value.status_code == 404
    assert "HTTP 404" in str(caught.value)
    assert "/mcp" in caught.value.hint


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts TCP connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/mcp"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_server_that_never_answers_times_out(silent_server: str) -> None:
    with pytest.raises(DiscoveryError) as caught:
        discover_tools_sync(silent_server, timeout=0.5)
    assert caught.value.reason == "timeout"
    assert "within 0.5s" in str(caught.value)


def _paginating_mcp_app() -> Starlette:
    """A low-level SDK server that lists five tools two per page."""
    names = ["t1", "t2", "t3", "t4", "t5"]

    async def list_tools(_ctx: object, params: PaginatedRequestParams | None) -> ListToolsResult:
        start = int(params.cursor) if params is not None and params.cursor else 0
        page = [
            Tool(name=name, description=f"tool {name}", input_schema={"type": "object", "properties": {}})
            for name in names[start:start + 2]
        ]
        more = start + 2 < len(names)
        return ListToolsResult(tools=page, next_cursor=str(start + 2) if more else None)

    return Server("paginating", on_list_tools=list_tools).streamable_http_app()


def test_discovery_follows_tools_list_cursors() -> None:
    with serve_asgi(_paginating_mcp_app()) as base_url:
        tools = discover_tools_sync(base_url, timeout=10)
    assert [tool.name for tool in tools] == ["t1", "t2", "t3", "t4", "t5"]
    assert tools[4].description == "tool t5"
