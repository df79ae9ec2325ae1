"""Both adapters with a static session token against an SDK server that talks back.

The server asks the client a question mid-call (elicitation: a server-to-client request on the POST's
SSE stream, whose answer the adapter must POST back) and announces a tool list change outside any
call (a notification on the GET stream). The MCP Python SDK's clients see both, and every
request the server received carried the adapter's token and no other.
"""

from __future__ import annotations

import contextlib
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
def serve(app: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
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
