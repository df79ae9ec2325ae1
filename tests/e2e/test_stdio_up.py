"""Stdio servers published the way a user does it: `server init --stdio-command`, deploy, a grant, and
calls through `mcp-runtime up`'s gateway with the official SDK client.

The process runtime runs them behind `mcp-runtime bridge stdio`; the gateway in front is unchanged, so
grants decide and filter exactly as for an HTTP server.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CreateMessageResult, ElicitResult, TextContent

from fixtures.platform_up import AGENT, SERVER, PlatformWorld, running_platform

pytestmark = pytest.mark.slow

COUNTER = Path(__file__).resolve().parents[1] / "fixtures" / "stdio" / "counter_server.py"
EVERYTHING = "npm:@modelcontextprotocol/server-everything@2026.8.31"


def session_token(world: PlatformWorld) -> str:
    alice = json.loads((world.config_dir / "config.json").read_text())["profiles"]["alice"]["accessToken"]
    issued = world.http.post(f"{world.url}/api/v1/runtime/adapter/sessions", json={
        "server": SERVER, "agent": AGENT, "agentID": AGENT}, headers={"Authorization": f"Bearer {alice}"})
    assert issued.status_code == 200, issued.text
    return str(issued.json()["token"])


async def _sampling(_ctx: Any, params: Any) -> CreateMessageResult:
    return CreateMessageResult(role="assistant", model="test-model",
                               content=TextContent(type="text", text=f"model: {params.messages[0].content.text}"))


async def _elicit(_ctx: Any, _params: Any) -> ElicitResult:
    return ElicitResult(action="accept", content={"name": "Ada"})


@asynccontextmanager
async def agent(url: str, token: str) -> AsyncIterator[ClientSession]:
    async with (
        create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write, sampling_callback=_sampling, elicitation_callback=_elicit) as session,
    ):
        await session.initialize()
        yield session


async def denial(session: ClientSession, tool: str, arguments: dict[str, Any]) -> str:
    try:
        await session.call_tool(tool, arguments)
    except MCPError as exc:
        data = exc.error.data if isinstance(exc.error.data, dict) else {}
        return str(data.get("reason"))
    return "allowed"


def text(result: Any) -> str:
    return str(result.content[0].text)


def test_a_python_stdio_server_behind_up_is_governed_and_isolated(tmp_path: Path) -> None:
    granted = ("bump", "pid", "slow", "ask", "crash")

    async def scenario(url: str, token: str) -> None:
        async with agent(url, token) as first, agent(url, token) as second:
            listed = {t.name for t in (await first.list_tools()).tools}
            assert listed == set(granted)  # spawn, sample and roots are declared but not granted
            assert await denial(first, "spawn", {}) == "tool_not_granted"
            assert [text(await first.call_tool("bump", {})) for _ in range(2)] == ["1", "2"]
            assert text(await second.call_tool("bump", {})) == "1"  # its own process
            progress: list[float] = []

            async def on_progress(done: float, _total: float | None, _message: str | None) -> None:
                progress.append(done)

            await second.call_tool("slow", {"steps": 3}, progress_callback=on_progress)
            assert progress == [1, 2, 3]
            assert text(await second.call_tool("ask", {})) == "hello Ada"
            with anyio.fail_after(30), pytest.raises(MCPError) as crashed:
                await first.call_tool("crash", {})
            assert "the MCP server process ended before it answered" in crashed.value.error.message
            assert text(await second.call_tool("bump", {})) == "2"  # the other session lives on

    init = ["--stdio-command", f"{sys.executable} {COUNTER}"]
    with running_platform(tmp_path, init_args=init, granted=granted) as world:
        anyio.run(scenario, world.runtime_url, session_token(world))
        # the server's stderr reaches its logs through the bridge and the runtime's log pipe: wait for it
        wanted = ("counter-stdio starting (this line goes to stderr)", "crashing on purpose")
        deadline = time.monotonic() + 20
        logs = ""
        while time.monotonic() < deadline:
            logs = world.cli(["server", "logs", SERVER, "--tail", "200"]).stdout
            if all(line in logs for line in wanted):
                break
            time.sleep(0.5)
        assert all(line in logs for line in wanted), logs


def test_server_everything_from_npm_behind_up(tmp_path: Path) -> None:
    granted = ("echo", "get-sum", "trigger-long-running-operation", "trigger-sampling-request")

    async def scenario(url: str, token: str) -> None:
        async with agent(url, token) as session:
            listed = {t.name for t in (await session.list_tools()).tools}
            assert listed <= set(granted) and {"echo", "get-sum"} <= listed
            assert "hi" in text(await session.call_tool("echo", {"message": "hi"}))
            assert await denial(session, "get-env", {}) == "tool_not_granted"
            progress: list[float] = []

            async def on_progress(done: float, _total: float | None, _message: str | None) -> None:
                progress.append(done)

            await session.call_tool("trigger-long-running-operation", {"duration": 1, "steps": 2},
                                    progress_callback=on_progress)
            assert progress == [1, 2]

    with running_platform(tmp_path, init_args=["--stdio-command", EVERYTHING], granted=granted) as world:
        anyio.run(scenario, world.runtime_url, session_token(world))
