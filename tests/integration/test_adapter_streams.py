"""Both adapters with a static session token against an SDK server that talks back.

The server asks the client a question mid-call (elicitation: a server-to-client request on the POST's
SSE stream, whose answer the adapter must POST back) and announces a tool list change outside any
call (a notification on the GET stream). The MCP Python SDK's clients see both, and every
request the server received carried the adapter's token and no other.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
import uvicorn
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel

from fixtures.platform_up import cli_env, stop_process_group
from fixtures.servers import free_port

TOKEN = "static-session-token-for-tests"


class Proceed(BaseModel):
    proceed: bool


def talking_server() -> MCPServer:
    server = MCPServer(name="talks-back")

    @server.tool(description="Ask the user whether to proceed.")
    async def confirm(ctx: Context) -> str:
        answer = await ctx.elicit("Proceed?", schema=Proceed)
        return f"{answer.action}:{answer.data.proceed if answer.data else None}"

    @server.tool(description="Tell every client the tool list changed (on the session's own stream).")
    async def announce(ctx: Context) -> str:
        await ctx.session.send_tool_list_changed()
        return "announced"

    return server


class RecordAuthorization:
    """ASGI middleware: remember the Authorization header of every request."""

    def __init__(self, app: Any) -> None:
        self.app, self.seen = app, []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append(dict(scope["headers"]).get(b"authorization", b"").decode())
        await self.app(scope, receive, send)


@contextlib.contextmanager
def serve(app: Any, lifespan: str = "on") -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "test server did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def upstream() -> Iterator[tuple[str, RecordAuthorization]]:
    recorder = RecordAuthorization(talking_server().streamable_http_app())
    with serve(recorder) as url:
        yield url, recorder


@contextlib.contextmanager
def running_proxy(url: str, token: str, config_dir: Path) -> Iterator[str]:
    """`adapter proxy --token-stdin`, the way CI hands it a token: `echo $TOKEN | mcp-runtime adapter proxy ...`."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "mcp_runtime", "adapter", "proxy", "--runtime-url", url,
                                "--token-stdin", "--listen", f"127.0.0.1:{port}"],
                               env=cli_env(config_dir), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    assert process.stdin is not None
    process.stdin.write(f"{token}\n".encode())
    process.stdin.close()
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop_process_group(process, grace=5)


@pytest.mark.parametrize("transport", ["stdio", "proxy"])
def test_server_requests_and_stream_notifications_reach_the_client(
        upstream: tuple[str, RecordAuthorization], tmp_path: Path, transport: str) -> None:
    url, recorder = upstream
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    changed = anyio.Event()
    questions: list[str] = []

    async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        questions.append(params.message)
        return types.ElicitResult(action="accept", content={"proceed": True})

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async def converse(session: ClientSession) -> None:
        await session.initialize()
        result = await session.call_tool("confirm", {})
        assert result.content[0].text == "accept:True"
        assert questions == ["Proceed?"]
        with anyio.fail_after(20):  # the GET stream opens just after initialize: announce until it is heard
            while not changed.is_set():
                assert (await session.call_tool("announce", {})).content[0].text == "announced"
                with anyio.move_on_after(0.2):
                    await changed.wait()

    async def over_stdio() -> None:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "mcp_runtime", "adapter", "stdio", "--runtime-url", url,
                  "--session-token-file", str(token_file)],
            env=cli_env(tmp_path / "no-profiles"))
        async with stdio_client(params) as (read, write), \
                ClientSession(read, write, elicitation_callback=on_elicit, message_handler=on_message) as session:
            await converse(session)

    async def over_proxy(proxy_url: str) -> None:
        # the client's own credentials must not reach the server
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer the-clients-own"}) as client, \
                streamable_http_client(proxy_url, http_client=client) as (read, write), \
                ClientSession(read, write, elicitation_callback=on_elicit, message_handler=on_message) as session:
            await converse(session)

    if transport == "stdio":
        anyio.run(over_stdio)
    else:
        with running_proxy(url, TOKEN, tmp_path / "no-profiles") as proxy_url:
            anyio.run(over_proxy, proxy_url)
    # every MCP request carried the adapter's token (the proxy's start-up probe carries none)
    assert recorder.seen and set(recorder.seen) - {""} == {f"Bearer {TOKEN}"}


async def policy_not_loaded(scope: Any, receive: Any, send: Any) -> None:
    """A gateway that has no policy yet: 503 with its error envelope (fail closed)."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    body = b'{"error": "policy_unavailable", "message": "the policy for payments is not loaded yet"}'
    await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def test_a_gateway_error_reaches_the_client_as_a_json_rpc_error_with_its_reason(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    request = {"jsonrpc": "2.0", "id": "call-1", "method": "tools/list", "params": {}}
    with serve(policy_not_loaded, lifespan="off") as url:
        done = subprocess.run([sys.executable, "-m", "mcp_runtime", "adapter", "stdio", "--runtime-url", url,
                               "--session-token-file", str(token_file)], input=json.dumps(request) + "\n",
                              capture_output=True, text=True, env=cli_env(tmp_path), timeout=30)
        with running_proxy(url, TOKEN, tmp_path) as proxy_url:
            over_http = httpx.post(proxy_url, json=request, headers={"Accept": "application/json, text/event-stream"})
    over_stdio = json.loads(done.stdout)
    assert over_http.status_code == 200
    for answer in (over_stdio, over_http.json()):
        assert answer["id"] == "call-1"
        assert answer["error"]["data"]["reason"] == "policy_unavailable"
        assert "not loaded yet" in answer["error"]["message"]
    assert len(done.stdout.splitlines()) == 1 and "not loaded yet" in done.stderr  # the protocol, and a log line
