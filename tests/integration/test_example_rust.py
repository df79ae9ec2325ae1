"""The Rust example server (examples/text-analysis-mcp, on the official Rust SDK rmcp), built with the
machine's rustup toolchain and driven by the official MCP Python SDK client exactly as an agent would drive
it, plus what a raw HTTP client sees of its Streamable HTTP endpoint."""

from __future__ import annotations

import json
import os
import re
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
from fixtures.examples import RUST_DIR, Toolchain, ToolchainError, build_rust_example, find_cargo, run

pytestmark = pytest.mark.slow

T = TypeVar("T")

SERVER_DIR = RUST_DIR
TOOLS = ["extract_keywords", "repeat", "word_count"]
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="session")
def cargo() -> Toolchain:
    try:
        return find_cargo()
    except ToolchainError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def server_binary(cargo: Toolchain) -> Path:
    """`cargo build` once per test session (the example's target/ keeps reruns incremental)."""
    try:
        return build_rust_example(cargo)
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


def start_server(binary: Path, log_dir: Path, **env: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    full_env = dict(os.environ, HOST="127.0.0.1", PORT=str(port), **env)
    with (log_dir / f"server-{port}.log").open("wb") as log:
        proc = subprocess.Popen([str(binary)], env=full_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)
    except BaseException:
        stop(proc)
        raise
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@pytest.fixture(scope="module")
def server_url(server_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The built server on a free 127.0.0.1 port with the default MCP path; stopped after the module."""
    proc, port = start_server(server_binary, tmp_path_factory.mktemp("rust-server"))
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop(proc)


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


async def call_text(session: ClientSession, tool: str, arguments: dict[str, Any]) -> tuple[str, bool]:
    result = await session.call_tool(tool, arguments)
    assert len(result.content) == 1 and result.content[0].type == "text"
    return result.content[0].text, result.is_error


def answer(response: httpx.Response) -> Any:
    """The JSON-RPC message of a response: rmcp answers requests on an SSE stream (`data:` lines, after a
    priming event with an empty `data:`), plain JSON is accepted too."""
    if response.headers["content-type"].startswith("application/json"):
        return response.json()
    assert response.headers["content-type"].startswith("text/event-stream"), response.headers
    messages = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    found = [json.loads(m) for m in messages if m]
    assert len(found) == 1, response.text
    return found[0]


def initialize_raw(client: httpx.Client, url: str, version: str = "2025-06-18") -> tuple[str, dict[str, Any]]:
    """A bare initialize over HTTP: the session id and the JSON-RPC answer."""
    message = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
               "params": {"protocolVersion": version, "capabilities": {},
                          "clientInfo": {"name": "raw-test", "version": "1"}}}
    response = client.post(url, json=message, headers=MCP_HEADERS)
    assert response.status_code == 200, response.text
    return response.headers["mcp-session-id"], answer(response)


def rpc(client: httpx.Client, url: str, session_id: str, message: dict[str, Any] | str) -> httpx.Response:
    body = message if isinstance(message, str) else json.dumps(message)
    return client.post(url, content=body, headers={**MCP_HEADERS, "Mcp-Session-Id": session_id})


# --- through the official SDK client ------------------------------------------------------------

def test_sdk_initializes_and_lists_exactly_the_three_tools(server_url: str) -> None:
    async def action(session: ClientSession) -> Any:
        return session.initialize_result, await session.list_tools()

    init, listed = with_session(server_url, action)
    assert init.protocol_version == LATEST_HANDSHAKE_VERSION  # both SDKs speak the newest handshake
    assert init.server_info.name == "text-analysis-mcp"
    assert init.capabilities.tools is not None
    assert sorted(tool.name for tool in listed.tools) == TOOLS
    for tool in listed.tools:
        schema = tool.input_schema
        assert schema["type"] == "object"
        assert "text" in schema["required"] and schema["properties"]["text"]["type"] == "string"
        assert schema["additionalProperties"] is False
        assert tool.description and tool.title
        assert tool.annotations is not None and tool.annotations.read_only_hint is True
    repeat = next(tool for tool in listed.tools if tool.name == "repeat")
    assert repeat.input_schema["properties"]["times"] == {
        "type": "integer", "minimum": 1, "maximum": 100, "description": "How many copies."}


def test_sdk_tool_calls_return_the_right_results(server_url: str) -> None:
    text = "Rust makes fast servers. Fast servers, safe servers: the Rust way.\nSecond line"

    async def action(session: ClientSession) -> list[tuple[str, bool]]:
        return [
            await call_text(session, "repeat", {"text": "ab", "times": 3}),
            await call_text(session, "repeat", {"text": "hi", "times": 2, "separator": ", "}),
            await call_text(session, "word_count", {"text": text}),
            await call_text(session, "extract_keywords", {"text": text, "top_n": 3}),
            await call_text(session, "extract_keywords", {"text": "the and of"}),
        ]

    repeated, separated, counted, keywords, none = with_session(server_url, action)
    assert repeated == ("ababab", False)
    assert separated == ("hi, hi", False)
    assert counted[1] is False
    assert json.loads(counted[0]) == {"words": 13, "lines": 2, "characters": len(text)}
    assert keywords[1] is False
    assert json.loads(keywords[0]) == {"keywords": [
        {"word": "servers", "count": 3}, {"word": "fast", "count": 2}, {"word": "rust", "count": 2}]}
    assert json.loads(none[0]) == {"keywords": []}


def test_sdk_bad_arguments_are_tool_errors_the_model_can_read(server_url: str) -> None:
    async def action(session: ClientSession) -> list[tuple[str, bool]]:
        return [
            await call_text(session, "repeat", {"text": "a", "times": 1000}),
            await call_text(session, "repeat", {"text": "a" * 2000, "times": 100}),
            await call_text(session, "word_count", {}),
            await call_text(session, "extract_keywords", {"text": "x", "top_n": "many"}),
        ]

    results = with_session(server_url, action)
    assert all(is_error for _, is_error in results)
    too_many, too_long, missing, wrong_type = (text for text, _ in results)
    assert "between 1 and 100" in too_many
    assert "limit" in too_long
    assert "'text'" in missing
    assert "'top_n'" in wrong_type and "integer" in wrong_type


def test_sdk_unknown_tool_is_a_protocol_error(server_url: str) -> None:
    async def action(session: ClientSession) -> MCPError:
        with pytest.raises(MCPError) as caught:
            await session.call_tool("no_such_tool", {})
        return caught.value

    error = with_session(server_url, action).error
    assert (error.code, error.message) == (-32602, "Unknown tool: no_such_tool")


def test_several_sdk_clients_at_once(server_url: str) -> None:
    async def one_client(index: int, results: dict[int, str]) -> None:
        async with (
            streamable_http_client(server_url) as (read, write),
            ClientSession(read, write, read_timeout_seconds=15) as session,
        ):
            await session.initialize()
            for _ in range(5):
                text, is_error = await call_text(session, "repeat", {"text": str(index), "times": 2})
                assert not is_error
            results[index] = text

    async def run() -> dict[int, str]:
        results: dict[int, str] = {}
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for index in range(8):
                    group.start_soon(one_client, index, results)
        return results

    assert anyio.run(run) == {i: f"{i}{i}" for i in range(8)}


# --- the Streamable HTTP endpoint, raw ------------------------------------------------------------

def test_negotiates_the_older_protocol_and_answers_ping(server_url: str) -> None:
    with httpx.Client(timeout=10) as client:
        session_id, answered = initialize_raw(client, server_url, "2025-03-26")
        assert answered["result"]["protocolVersion"] == "2025-03-26"
        assert answered["result"]["capabilities"] == {"tools": {}}
        _, newest = initialize_raw(client, server_url, "2099-01-01")
        assert newest["result"]["protocolVersion"] == LATEST_HANDSHAKE_VERSION
        note = rpc(client, server_url, session_id, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert (note.status_code, note.content) == (202, b"")
        reply = rpc(client, server_url, session_id, {"jsonrpc": "2.0", "id": 7, "result": {}})
        assert reply.status_code == 202
        ping = rpc(client, server_url, session_id, {"jsonrpc": "2.0", "id": "p", "method": "ping"})
        assert answer(ping) == {"jsonrpc": "2.0", "id": "p", "result": {}}


def test_json_rpc_errors(server_url: str) -> None:
    with httpx.Client(timeout=10) as client:
        session_id, _ = initialize_raw(client, server_url)
        rpc(client, server_url, session_id, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        parse = rpc(client, server_url, session_id, "{not json")
        assert 400 <= parse.status_code < 500 and "deserialize" in parse.text
        unknown = rpc(client, server_url, session_id, {"jsonrpc": "2.0", "id": 2, "method": "prompts/list"})
        assert unknown.status_code == 200
        assert answer(unknown)["id"] == 2 and answer(unknown)["error"]["code"] == -32601


def test_sessions_are_checked_and_can_be_ended(server_url: str) -> None:
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    with httpx.Client(timeout=10) as client:
        session_id, _ = initialize_raw(client, server_url)
        assert rpc(client, server_url, "not-a-session", ping).status_code == 404
        assert client.post(server_url, json=ping, headers=MCP_HEADERS).status_code == 400
        assert client.delete(server_url, headers={"Mcp-Session-Id": session_id}).status_code == 202
        assert rpc(client, server_url, session_id, ping).status_code == 404
        assert client.get(server_url, headers={"Accept": "text/event-stream"}).status_code == 400


def test_http_limits_and_dns_rebinding_protection(server_url: str) -> None:
    port = int(server_url.split(":")[2].split("/")[0])
    with httpx.Client(timeout=10) as client:
        session_id, _ = initialize_raw(client, server_url)
        huge = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": "word_count", "arguments": {"text": "a" * (1024 * 1024)}}})
        assert rpc(client, server_url, session_id, huge).status_code == 413
        for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
            headers = {**MCP_HEADERS, "Host": host, "Mcp-Session-Id": session_id}
            response = client.post(server_url, headers=headers, json={"jsonrpc": "2.0", "id": 1,
                                                                      "method": "ping"})
            assert response.status_code == 200
    # each refusal on a connection of its own: a server may close a connection after refusing on it, and a
    # pooled connection it closed while idle is not what these checks are about
    with httpx.Client(timeout=10) as fresh:
        rebound = fresh.post(server_url, headers={**MCP_HEADERS, "Host": f"evil.example:{port}"},
                             json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert rebound.status_code == 403 and "Host" in rebound.text
    with httpx.Client(timeout=10) as fresh:
        browser = fresh.post(server_url, headers={**MCP_HEADERS, "Origin": f"http://evil.example:{port}"},
                             json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert browser.status_code == 403 and "Origin" in browser.text
    with httpx.Client(timeout=10) as client:
        local_page = client.post(server_url, headers={**MCP_HEADERS, "Origin": f"http://localhost:{port}",
                                                      "Mcp-Session-Id": session_id},
                                 json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert local_page.status_code == 200
        assert client.get(server_url.removesuffix("/mcp") + "/healthz").json() == {"status": "ok"}


def test_keep_alive_serves_several_requests_on_one_connection(server_url: str) -> None:
    with httpx.Client(timeout=10) as client:
        session_id, _ = initialize_raw(client, server_url)
    port = int(server_url.split(":")[2].split("/")[0])
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
    request = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Accept: application/json, text/event-stream\r\n"
               f"Mcp-Session-Id: {session_id}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request * 3)  # pipelined on one connection
        received = b""
        while received.count(b'"result":{}') < 3:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed early after {received!r}"
            received += chunk
    assert received.count(b"HTTP/1.1 200 OK") == 3


def test_honours_mcp_path_and_exits_on_sigterm(server_binary: Path, tmp_path: Path) -> None:
    proc, port = start_server(server_binary, tmp_path, MCP_PATH="/text-mcp")
    try:
        with httpx.Client(timeout=10) as client:
            session_id, _ = initialize_raw(client, f"http://127.0.0.1:{port}/text-mcp")
            assert re.fullmatch(r"[0-9a-f-]{36}", session_id)  # a random UUID
            default_path = client.post(f"http://127.0.0.1:{port}/mcp", json={}, headers=MCP_HEADERS)
            assert default_path.status_code == 404
    finally:
        assert stop(proc) == 0


def test_rust_unit_tests_pass(cargo: Toolchain, server_binary: Path) -> None:
    """The Rust unit tests (tools, configuration, the rmcp handler, the session bound), in the dev profile
    the binary was built in, so no second cold build of the dependencies."""
    proc = run(cargo, ["test", "--locked"], SERVER_DIR, "cargo test")
    assert "test result: ok" in proc.stdout


def test_server_init_from_server_discovers_the_three_tools(server_url: str, tmp_path: Path) -> None:
    """The CLI reference's flow: `server init NAME --from-server URL` against the running Rust example."""
    result = run_cli(["server", "init", "text-analysis", "--from-server", server_url], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Discovered: extract_keywords, repeat, word_count" in result.stdout
    assert (tmp_path / ".mcp" / "servers.yaml").exists()
