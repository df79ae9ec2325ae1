"""`mcp-runtime bridge stdio` with real stdio servers: one on the official Python SDK (tests/fixtures/stdio)
and `@modelcontextprotocol/server-everything` from npm, driven by the official SDK client over HTTP.

What a user would notice: every kind of message crosses (progress, sampling, elicitation, roots,
cancellation), two clients never share a process, a crash is a JSON-RPC error and not a hang, idle
sessions and DELETEd ones lose their process, a full pool says 503, and the whole tree dies with the bridge.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CreateMessageResult, ElicitResult, ListRootsResult, Root, TextContent

from fixtures.servers import REPO_ROOT, RunningServer, run_server_process

COUNTER = REPO_ROOT / "tests" / "fixtures" / "stdio" / "counter_server.py"
EVERYTHING = "@modelcontextprotocol/server-everything@2026.8.31"
INIT_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "raw", "version": "1"}}}


@contextlib.contextmanager
def bridge(*command: str, options: tuple[str, ...] = ()) -> Iterator[RunningServer]:
    argv = [sys.executable, "-m", "mcp_runtime", "bridge", "stdio", "--host", "127.0.0.1", *options, "--", *command]
    with run_server_process(argv, cwd=REPO_ROOT, env={"PYTHONPATH": str(REPO_ROOT / "src")}) as server:
        yield server


def counter_bridge(*options: str) -> contextlib.AbstractContextManager[RunningServer]:
    return bridge(sys.executable, str(COUNTER), options=options)


async def _sampling(_ctx: Any, params: Any) -> CreateMessageResult:
    text = params.messages[0].content.text
    return CreateMessageResult(role="assistant", content=TextContent(type="text", text=f"model: {text}"),
                               model="test-model")


async def _elicit(_ctx: Any, _params: Any) -> ElicitResult:
    return ElicitResult(action="accept", content={"name": "Ada"})


async def _roots(_ctx: Any) -> ListRootsResult:
    return ListRootsResult(roots=[Root(uri="file:///srv/project")])


@contextlib.asynccontextmanager
async def client(url: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write, sampling_callback=_sampling, elicitation_callback=_elicit,
                      list_roots_callback=_roots) as session,
    ):
        await session.initialize()
        yield session


def text(result: Any) -> str:
    return str(result.content[0].text)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"
    return True


def wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_every_kind_of_message_crosses_the_bridge() -> None:
    async def scenario(url: str) -> None:
        async with client(url) as session:
            assert {t.name for t in (await session.list_tools()).tools} >= {"bump", "slow", "ask", "sample"}
            progress: list[tuple[float, float | None, str | None]] = []

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                progress.append((done, total, message))

            assert text(await session.call_tool("slow", {"steps": 3}, progress_callback=on_progress)) == \
                "done after 3 steps"
            assert progress == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
            assert text(await session.call_tool("sample", {"prompt": "hi"})) == "model: hi"
            assert text(await session.call_tool("ask", {})) == "hello Ada"
            assert text(await session.call_tool("roots", {})) == "file:///srv/project"

    with counter_bridge() as server:
        anyio.run(scenario, server.url)
        assert "counter-stdio starting (this line goes to stderr)" in server.logs()  # stderr reaches the log


def test_two_clients_never_share_a_process() -> None:
    async def scenario(url: str) -> None:
        async with client(url) as first, client(url) as second:
            assert [text(await first.call_tool("bump", {})) for _ in range(3)] == ["1", "2", "3"]
            assert text(await second.call_tool("bump", {})) == "1"
            assert text(await first.call_tool("pid", {})) != text(await second.call_tool("pid", {}))

    with counter_bridge() as server:
        anyio.run(scenario, server.url)


def test_a_crashed_process_ends_its_session_with_a_json_rpc_error() -> None:
    async def scenario(url: str) -> None:
        async with client(url) as session:
            with anyio.fail_after(15), pytest.raises(MCPError) as crashed:
                await session.call_tool("crash", {})
            assert crashed.value.error.code == -32003
            assert "exited with code 3" in crashed.value.error.message
        async with client(url) as fresh:  # the bridge itself lives on: a new session gets a new process
            assert text(await fresh.call_tool("bump", {})) == "1"

    with counter_bridge() as server:
        anyio.run(scenario, server.url)
        assert "crashing on purpose" in server.logs()


def test_cancelling_a_request_answers_it_and_the_session_goes_on() -> None:
    async def scenario(url: str) -> None:
        async with client(url) as session:
            with anyio.move_on_after(0.5):
                await session.call_tool("slow", {"steps": 100})
            assert text(await session.call_tool("bump", {})) == "1"

    with counter_bridge() as server:
        anyio.run(scenario, server.url)


def _open_session(url: str) -> tuple[str, int]:
    """A raw initialize; returns the session id and the pid of its process (via the `pid` tool)."""
    with httpx.Client(timeout=20) as http:
        answer = http.post(url, json=INITIALIZE, headers=INIT_HEADERS)
        assert answer.status_code == 200, answer.text
        session_id = answer.headers["mcp-session-id"]
        headers = {**INIT_HEADERS, "mcp-session-id": session_id, "mcp-protocol-version": "2025-06-18"}
        http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
        called = http.post(url, headers=headers, json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                                       "params": {"name": "pid", "arguments": {}}})
        assert called.status_code == 200, called.text
        pid = int(called.text.split('"text":"')[1].split('"')[0])
        return session_id, pid


def test_delete_ends_the_session_and_stops_its_process() -> None:
    with counter_bridge() as server:
        session_id, pid = _open_session(server.url)
        assert pid_alive(pid)
        headers = {"mcp-session-id": session_id, "mcp-protocol-version": "2025-06-18"}
        assert httpx.delete(server.url, headers=headers).status_code == 200
        wait_for(lambda: not pid_alive(pid), "the session's process to stop after DELETE")
        again = httpx.post(server.url, json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
                           headers={**INIT_HEADERS, **headers})
        assert again.status_code == 404 and "Session not found" in again.text


def test_an_idle_session_is_reaped() -> None:
    with counter_bridge("--idle-timeout", "2s") as server:
        _session_id, pid = _open_session(server.url)
        wait_for(lambda: not pid_alive(pid), "the idle session's process to stop", timeout=20)


def test_a_full_pool_answers_503_with_a_json_rpc_error() -> None:
    with counter_bridge("--max-sessions", "1") as server:
        _open_session(server.url)
        refused = httpx.post(server.url, json=INITIALIZE, headers=INIT_HEADERS, timeout=20)
        assert refused.status_code == 503
        body = refused.json()
        assert body["jsonrpc"] == "2.0" and "Too many open sessions" in body["error"]["message"]


def test_the_process_tree_dies_with_the_bridge() -> None:
    with counter_bridge() as server:
        with httpx.Client(timeout=20) as http:
            answer = http.post(server.url, json=INITIALIZE, headers=INIT_HEADERS)
            headers = {**INIT_HEADERS, "mcp-session-id": answer.headers["mcp-session-id"],
                       "mcp-protocol-version": "2025-06-18"}
            http.post(server.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
            spawned = http.post(server.url, headers=headers, json={
                "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "spawn", "arguments": {}}})
            grandchild = int(spawned.text.split('"text":"')[1].split('"')[0])
        _sid, child = _open_session(server.url)
        assert pid_alive(grandchild) and pid_alive(child)
        os.kill(server.process.pid, signal.SIGTERM)  # the bridge alone: its children have sessions of their own
        server.process.wait(timeout=20)
        wait_for(lambda: not pid_alive(grandchild) and not pid_alive(child), "the process tree to stop")


@pytest.mark.parametrize(("command", "expected"), [
    (("-c", "import sys; sys.exit(4)"), "exited with code 4"),
    (("-c", "import time\nwhile True: print('garbage', flush=True); time.sleep(0.05)"), "did not answer initialize"),
    (("-c", "import time; time.sleep(600)"), "did not answer initialize"),
    (("-c", "import sys; sys.stdout.write('x' * 70000); sys.stdout.flush(); import time; time.sleep(60)"),
     "longer than 65536 bytes"),
])
def test_a_broken_server_gives_a_clear_error_and_nothing_hangs(command: tuple[str, ...], expected: str) -> None:
    options = ("--initialize-timeout", "3s", "--max-line-bytes", "65536")
    with bridge(sys.executable, *command, options=options) as server:
        started = time.monotonic()
        answer = httpx.post(server.url, json=INITIALIZE, headers=INIT_HEADERS, timeout=30)
        assert time.monotonic() - started < 20
        assert expected in answer.text, answer.text
        assert '"code":-32003' in answer.text.replace(" ", "")


def test_server_everything_from_npm_progress_sampling_and_elicitation() -> None:
    async def scenario(url: str) -> None:
        async with client(url) as session:
            names = {t.name for t in (await session.list_tools()).tools}
            assert {"echo", "trigger-long-running-operation", "trigger-sampling-request",
                    "trigger-elicitation-request"} <= names
            assert "hello" in text(await session.call_tool("echo", {"message": "hello"}))
            progress: list[float] = []

            async def on_progress(done: float, _total: float | None, _message: str | None) -> None:
                progress.append(done)

            await session.call_tool("trigger-long-running-operation", {"duration": 1, "steps": 3},
                                    progress_callback=on_progress)
            assert progress == [1, 2, 3]
            sampled = await session.call_tool("trigger-sampling-request", {"prompt": "ping", "maxTokens": 20})
            assert '"model": "test-model"' in text(sampled) and "ping" in text(sampled)  # our model answered
            elicited = await session.call_tool("trigger-elicitation-request", {})
            shown = str(elicited.content)
            assert "User provided the requested information" in shown and "Ada" in shown  # our answer arrived

    with bridge("npx", "-y", EVERYTHING) as server:
        anyio.run(scenario, server.url)


def test_help_names_the_entrypoint(tmp_path: Path) -> None:
    import subprocess

    shown = subprocess.run([sys.executable, "-m", "mcp_runtime", "bridge", "stdio", "--help"], capture_output=True,
                           text=True, env={**os.environ, "COLUMNS": "200"}, check=True).stdout
    assert "--max-sessions" in shown and "--idle-timeout" in shown and "CMD" in shown


def test_a_refused_opening_request_leaves_no_process_behind() -> None:
    with counter_bridge("--max-sessions", "1") as server:
        not_initialize = httpx.post(server.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                    headers={"Accept": "text/plain", "Content-Type": "application/json"}, timeout=20)
        assert not_initialize.status_code >= 400
        _open_session(server.url)  # the one slot of the pool is free again
