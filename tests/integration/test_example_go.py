"""The Go example server (examples/workspace-assistant-mcp), built from source and driven by the
official MCP Python SDK client exactly as an agent would drive it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from mcp import MCPError
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from fixtures.cli import EXAMPLES, free_port, run_cli

pytestmark = pytest.mark.slow

T = TypeVar("T")

SERVER_DIR = EXAMPLES / "workspace-assistant-mcp"
TOOLS = ["add", "create_task", "draft_release_note", "echo", "lower", "slugify", "upper"]
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def go_env(tmp: Path) -> dict[str, str]:
    """Offline Go: no module proxy is reachable (and none is needed: standard library only)."""
    env = dict(os.environ, GOPROXY="off", CGO_ENABLED="0")
    if not any(env.get(k) for k in ("GOCACHE", "XDG_CACHE_HOME", "HOME")):
        env["GOCACHE"] = str(tmp / "gocache")
    return env


@pytest.fixture(scope="session")
def go_tool() -> str:
    go = shutil.which("go")
    if go is None:
        pytest.fail("`go` is not installed: `apt-get install golang-go` (listed in .ci/apt-packages)")
    return go


@pytest.fixture(scope="session")
def go_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("go")


@pytest.fixture(scope="session")
def server_binary(go_tool: str, go_tmp: Path) -> Path:
    """`go build` the example once per test session."""
    binary = go_tmp / "workspace-assistant-mcp"
    proc = subprocess.run([go_tool, "build", "-o", str(binary), "."], cwd=SERVER_DIR, env=go_env(go_tmp),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"go build failed:\n{proc.stdout}{proc.stderr}"
    return binary


def wait_for_port(port: int, proc: subprocess.Popen[bytes], deadline_s: float = 15) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"server did not listen on 127.0.0.1:{port}")


@pytest.fixture(scope="module")
def server_url(server_binary: Path, go_tmp: Path) -> Iterator[str]:
    """The built server on a free 127.0.0.1 port and a custom MCP_PATH; stopped after the module."""
    port = free_port()
    env = dict(os.environ, HOST="127.0.0.1", PORT=str(port), MCP_PATH="/agent-mcp")
    log_path = go_tmp / f"server-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(server_binary)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}/agent-mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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


def call_text(url: str, tool: str, arguments: dict[str, Any]) -> tuple[str, bool]:
    async def action(session: ClientSession) -> tuple[str, bool]:
        result = await session.call_tool(tool, arguments)
        assert len(result.content) == 1 and result.content[0].type == "text"
        return result.content[0].text, result.is_error

    return with_session(url, action)


def test_initialize_negotiates_a_version_the_server_speaks(server_url: str) -> None:
    async def action(session: ClientSession) -> Any:
        return await session.initialize()

    result = with_session(server_url, action)
    assert result.server_info.name == "workspace-assistant-mcp"
    assert result.protocol_version == "2025-06-18"  # the SDK offers a newer one; the server counters
    assert result.capabilities.tools is not None


def test_lists_exactly_the_seven_tools_with_input_schemas(server_url: str) -> None:
    async def action(session: ClientSession) -> Any:
        return await session.list_tools()

    tools = with_session(server_url, action).tools
    assert sorted(t.name for t in tools) == TOOLS
    by_name = {t.name: t for t in tools}
    for tool in tools:
        assert tool.description
        assert tool.input_schema["type"] == "object"
        assert set(tool.input_schema["required"]) <= set(tool.input_schema["properties"])
    assert by_name["add"].input_schema["properties"]["a"]["type"] == "number"
    assert by_name["draft_release_note"].input_schema["required"] == ["version", "items"]


@pytest.mark.parametrize(("tool", "arguments", "expected"), [
    ("add", {"a": 2, "b": 3}, "5"),
    ("add", {"a": 0.5, "b": 0.25}, "0.75"),
    ("slugify", {"text": "Hello World!"}, "hello-world"),
    ("echo", {"text": "as is "}, "as is "),
    ("upper", {"text": "shout"}, "SHOUT"),
    ("lower", {"text": "QUIET"}, "quiet"),
])
def test_tools_answer(server_url: str, tool: str, arguments: dict[str, Any], expected: str) -> None:
    assert call_text(server_url, tool, arguments) == (expected, False)


def test_create_task_returns_its_id_and_title(server_url: str) -> None:
    text, is_error = call_text(server_url, "create_task", {"title": "Write the docs", "priority": "high"})
    task = json.loads(text)
    assert not is_error
    assert task["id"].startswith("task-") and task["title"] == "Write the docs"
    assert task["priority"] == "high" and task["status"] == "open"


def test_draft_release_note_is_markdown(server_url: str) -> None:
    text, is_error = call_text(server_url, "draft_release_note",
                               {"version": "1.4.0", "items": ["Add slugify", "Fix add"]})
    assert not is_error
    assert text == "## Release 1.4.0\n\n### Changes\n\n- Add slugify\n- Fix add\n"


def test_bad_arguments_are_a_tool_error_the_model_can_read(server_url: str) -> None:
    text, is_error = call_text(server_url, "add", {"a": 2, "b": "three"})
    assert is_error
    assert text == 'argument "b" must be a number, got a string'


def test_unknown_tool_is_a_protocol_error(server_url: str) -> None:
    async def action(session: ClientSession) -> MCPError:
        with pytest.raises(MCPError) as caught:
            await session.call_tool("aaa-ping", {})
        return caught.value

    error = with_session(server_url, action).error
    assert (error.code, error.message) == (-32602, "Unknown tool: aaa-ping")


def test_raw_http_edges(server_url: str) -> None:
    """What a hand-written client or a proxy sees: status codes and JSON-RPC error shapes."""
    with httpx.Client(timeout=10) as http:
        malformed = http.post(server_url, content=b'{"jsonrpc": "2.0", "id": 1,', headers=MCP_HEADERS)
        assert malformed.status_code == 400
        assert malformed.json()["error"]["code"] == -32700 and malformed.json()["id"] is None

        assert http.get(server_url, headers={"Accept": "text/event-stream"}).status_code == 405

        client_info = {"name": "t", "version": "1"}
        init = http.post(server_url, headers=MCP_HEADERS, json={
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": client_info},
        })
        assert init.headers["content-type"] == "application/json"
        assert init.json()["result"]["protocolVersion"] == "2025-03-26"
        session = {**MCP_HEADERS, "Mcp-Session-Id": init.headers["mcp-session-id"]}

        note = http.post(server_url, headers=session,
                         json={"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert (note.status_code, note.content) == (202, b"")
        unknown = http.post(server_url, headers=session,
                            json={"jsonrpc": "2.0", "id": 2, "method": "nope/nope"})
        assert unknown.json()["error"]["code"] == -32601

        assert http.delete(server_url, headers=session).status_code == 204
        gone = http.post(server_url, headers=session, json={"jsonrpc": "2.0", "id": 3, "method": "ping"})
        assert gone.status_code == 404

        rebound = http.post(server_url, headers={**MCP_HEADERS, "Host": "evil.example"},
                            json={"jsonrpc": "2.0", "id": 4, "method": "ping"})
        assert rebound.status_code == 421


def test_go_unit_tests_pass(go_tool: str, go_tmp: Path) -> None:
    proc = subprocess.run([go_tool, "test", "-count=1", "./..."], cwd=SERVER_DIR, env=go_env(go_tmp),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"go test failed:\n{proc.stdout}{proc.stderr}"


def test_go_sources_are_gofmt_clean(go_tool: str) -> None:
    gofmt = Path(go_tool).resolve().parent / "gofmt"
    proc = subprocess.run([str(gofmt) if gofmt.exists() else "gofmt", "-l", "."], cwd=SERVER_DIR,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "", f"gofmt wants to reformat:\n{proc.stdout}{proc.stderr}"


def test_server_init_from_server_discovers_the_seven_tools(server_url: str, tmp_path: Path) -> None:
    """The CLI reference's flow: `server init NAME --from-server URL` against the running Go example."""
    result = run_cli(["server", "init", "workspace-demo", "--from-server", server_url], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Discovered: add, create_task, draft_release_note, echo, lower, slugify, upper" in result.stdout
    assert (tmp_path / ".mcp" / "servers.yaml").exists()
