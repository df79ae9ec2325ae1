"""The Go example server (examples/workspace-assistant-mcp, on the official Go SDK), built from source with
the machine's Go and driven by the official MCP Python SDK client exactly as an agent would drive it."""

from __future__ import annotations

import json
import os
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
from mcp_types.version import LATEST_HANDSHAKE_VERSION

from fixtures.cli import free_port, run_cli
from fixtures.examples import GO_DIR, Toolchain, ToolchainError, build_go_example, find_go, run

pytestmark = pytest.mark.slow

T = TypeVar("T")

SERVER_DIR = GO_DIR
TOOLS = ["add", "create_task", "draft_release_note", "echo", "lower", "slugify", "upper"]
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="session")
def go_tool() -> Toolchain:
    try:
        return find_go()
    except ToolchainError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def go_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("go")


@pytest.fixture(scope="session")
def server_binary(go_tool: Toolchain) -> Path:
    """`go build` the example once per test session (Go's build and module caches make reruns quick)."""
    try:
        return build_go_example(go_tool)
    except ToolchainError as exc:
        pytest.fail(str(exc))


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
    assert result.protocol_version == LATEST_HANDSHAKE_VERSION  # both SDKs speak the newest handshake
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
    assert by_name["create_task"].input_schema["properties"]["priority"]["enum"] == ["low", "medium", "high"]
    assert all(tool.input_schema["additionalProperties"] is False for tool in tools)
    # side-effect hints: create_task stands for a change in the workspace, the rest only compute
    hints = {t.name: (t.annotations.read_only_hint, t.annotations.destructive_hint) for t in tools if t.annotations}
    assert hints == {**{name: (True, None) for name in TOOLS}, "create_task": (False, False)}


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
    assert (error.code, error.message) == (-32602, 'unknown tool "aaa-ping"')


def test_raw_http_edges(server_url: str) -> None:
    """What a hand-written client or a proxy sees from the SDK's handler: plain JSON answers (no SSE), the
    session lifecycle, and the refusals of malformed, rebound and cross-site requests."""
    with httpx.Client(timeout=10) as http:
        malformed = http.post(server_url, content=b'{"jsonrpc": "2.0", "id": 1,', headers=MCP_HEADERS)
        assert malformed.status_code == 400

        assert http.get(server_url, headers={"Accept": "text/event-stream"}).status_code == 400  # no session

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
        listed = http.post(server_url, headers=session, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        assert listed.headers["content-type"] == "application/json"
        assert sorted(t["name"] for t in listed.json()["result"]["tools"]) == TOOLS

        assert http.delete(server_url, headers=session).status_code == 204
        gone = http.post(server_url, headers=session, json={"jsonrpc": "2.0", "id": 3, "method": "ping"})
        assert gone.status_code == 404

        rebound = http.post(server_url, headers={**MCP_HEADERS, "Host": "evil.example"},
                            json={"jsonrpc": "2.0", "id": 4, "method": "ping"})
        assert rebound.status_code == 403 and "Host" in rebound.text
        browser = http.post(server_url, headers={**MCP_HEADERS, "Sec-Fetch-Site": "cross-site"},
                            json={"jsonrpc": "2.0", "id": 5, "method": "ping"})
        assert browser.status_code == 403
        assert http.get(server_url.rsplit("/", 1)[0] + "/healthz").text == "ok\n"


def test_go_unit_tests_pass(go_tool: Toolchain, server_binary: Path) -> None:
    """The Go tests: the tools, and the server through the Go SDK's own client over HTTP."""
    proc = run(go_tool, ["test", "-count=1", "./..."], SERVER_DIR, "go test", timeout=300)
    assert proc.stdout.startswith("ok")


def test_go_sources_are_gofmt_clean_and_vetted(go_tool: Toolchain, server_binary: Path) -> None:
    gofmt = Path(go_tool.path).resolve().parent / "gofmt"
    proc = subprocess.run([str(gofmt), "-l", "."], cwd=SERVER_DIR, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "", f"gofmt wants to reformat:\n{proc.stdout}{proc.stderr}"
    run(go_tool, ["vet", "./..."], SERVER_DIR, "go vet", timeout=300)


def test_server_init_from_server_discovers_the_seven_tools(server_url: str, tmp_path: Path) -> None:
    """The CLI reference's flow: `server init NAME --from-server URL` against the running Go example."""
    result = run_cli(["server", "init", "workspace-demo", "--from-server", server_url], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Discovered: add, create_task, draft_release_note, echo, lower, slugify, upper" in result.stdout
    assert "these tools say they are not read-only: create_task" in result.stdout  # from the annotations
    assert (tmp_path / ".mcp" / "servers.yaml").exists()
