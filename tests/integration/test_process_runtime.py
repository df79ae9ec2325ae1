"""The process runtime runs real server subprocesses: ready by MCP initialize, errors with log tails."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mcp_runtime.resources import MCPServer, ServerPhase
from mcp_runtime.runtime.discovery import discover_tools
from mcp_runtime.runtime.process import ProcessRuntime, ProcessRuntimeError, RuntimeStatus

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "data-utility-mcp"


def _server(name: str, command: str | None, working_dir: Path = EXAMPLE) -> MCPServer:
    spec: dict[str, object] = {"image": name, "tools": [{"name": "echo", "sideEffect": "read"}]}
    if command is not None:
        spec["run"] = {"command": command, "workingDir": str(working_dir)}
    return MCPServer.model_validate({"metadata": {"name": name, "namespace": "mcp-team-acme"}, "spec": spec})


async def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def _run(coro: Callable[[ProcessRuntime, list[tuple[str, RuntimeStatus]]], Awaitable[None]], tmp: Path) -> None:
    async def main() -> None:
        seen: list[tuple[str, RuntimeStatus]] = []
        runtime = ProcessRuntime(tmp, on_status=lambda ns, name, st: seen.append((name, st)), ready_timeout=20)
        try:
            await coro(runtime, seen)
        finally:
            await runtime.shutdown()

    asyncio.run(main())


def test_server_becomes_ready_and_serves_mcp_on_its_route(tmp_path: Path) -> None:
    async def scenario(runtime: ProcessRuntime, seen: list[tuple[str, RuntimeStatus]]) -> None:
        await runtime.deploy(_server("payments", "python app.py"))
        await _until(lambda: (st := runtime.status("mcp-team-acme", "payments")) is not None
                     and st.phase == ServerPhase.ready)
        url = runtime.upstream_url("mcp-team-acme", "payments")
        assert url is not None and url.endswith("/payments/mcp")  # MCP_PATH is the public route
        tools = await discover_tools(url)
        assert "add" in {t.name for t in tools}
        phases = [st.phase for name, st in seen if name == "payments"]
        assert phases[0] == ServerPhase.pending and phases[-1] == ServerPhase.ready
        assert any("started pid" in line for line in runtime.logs("mcp-team-acme", "payments"))

    _run(scenario, tmp_path)


def test_command_that_exits_at_once_shows_error_with_log_tail(tmp_path: Path) -> None:
    async def scenario(runtime: ProcessRuntime, seen: list[tuple[str, RuntimeStatus]]) -> None:
        cmd = f"{sys.executable} -c \"import sys; print('missing DATABASE_URL'); sys.exit(3)\""
        await runtime.deploy(_server("broken", cmd))
        await _until(lambda: (st := runtime.status("mcp-team-acme", "broken")) is not None
                     and st.phase == ServerPhase.error)
        status = runtime.status("mcp-team-acme", "broken")
        assert status is not None
        assert "exit code 3" in status.message and "missing DATABASE_URL" in status.message
        log_file = tmp_path / "logs" / "mcp-team-acme__broken.log"
        assert "missing DATABASE_URL" in log_file.read_text()

    _run(scenario, tmp_path)


def test_crash_is_restarted_and_delete_stops_the_process(tmp_path: Path) -> None:
    async def scenario(runtime: ProcessRuntime, seen: list[tuple[str, RuntimeStatus]]) -> None:
        await runtime.deploy(_server("payments", "python app.py"))
        await _until(lambda: (st := runtime.status("mcp-team-acme", "payments")) is not None
                     and st.phase == ServerPhase.ready)
        first = runtime.status("mcp-team-acme", "payments")
        assert first is not None and first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        await _until(lambda: (st := runtime.status("mcp-team-acme", "payments")) is not None
                     and st.phase == ServerPhase.ready and st.pid != first.pid)
        second = runtime.status("mcp-team-acme", "payments")
        assert second is not None and second.restarts == 1 and second.pid is not None
        await runtime.delete("mcp-team-acme", "payments")
        assert runtime.status("mcp-team-acme", "payments") is None
        with pytest.raises(ProcessLookupError):
            os.kill(second.pid, 0)

    _run(scenario, tmp_path)


def test_server_without_run_command_is_refused_with_a_fix(tmp_path: Path) -> None:
    async def scenario(runtime: ProcessRuntime, seen: list[tuple[str, RuntimeStatus]]) -> None:
        with pytest.raises(ProcessRuntimeError, match="--run"):
            await runtime.deploy(_server("noimage", None))
        with pytest.raises(ProcessRuntimeError, match="not a directory"):
            await runtime.deploy(_server("nowhere", "python app.py", tmp_path / "missing"))

    _run(scenario, tmp_path)


def test_an_over_long_output_line_is_cut_and_supervision_goes_on(tmp_path: Path) -> None:
    """A line longer than the log reader's buffer (64 KiB) used to kill the log pump, and with it the task
    supervising the server: no more restarts. Now the line is cut and the server is supervised as usual."""
    command = f"{sys.executable} -c \"print('x' * 200000, flush=True); import runpy; runpy.run_path('app.py', " \
              "run_name='__main__')\""

    async def scenario(runtime: ProcessRuntime, seen: list[tuple[str, RuntimeStatus]]) -> None:
        await runtime.deploy(_server("chatty", command))
        await _until(lambda: (st := runtime.status("mcp-team-acme", "chatty")) is not None
                     and st.phase == ServerPhase.ready)
        assert any(line.endswith("[line cut]") for line in runtime.logs("mcp-team-acme", "chatty", 50))
        first = runtime.status("mcp-team-acme", "chatty")
        assert first is not None and first.pid is not None
        os.kill(first.pid, signal.SIGKILL)  # still supervised: restarted
        await _until(lambda: (st := runtime.status("mcp-team-acme", "chatty")) is not None
                     and st.phase == ServerPhase.ready and st.pid != first.pid)

    _run(scenario, tmp_path)


COUNTER = Path(__file__).resolve().parents[1] / "fixtures" / "stdio" / "counter_server.py"


def _stdio_server(name: str, stdio: dict[str, object]) -> MCPServer:
    spec = {"image": name, "tools": [{"name": "bump", "sideEffect": "read"}], "stdio": stdio}
    return MCPServer.model_validate({"metadata": {"name": name, "namespace": "mcp-team-acme"}, "spec": spec})


def test_a_stdio_server_runs_behind_the_bridge_and_its_stderr_reaches_the_log(tmp_path: Path) -> None:
    async def scenario(runtime: ProcessRuntime, seen: list[tuple[str, RuntimeStatus]]) -> None:
        await runtime.deploy(_stdio_server("counter", {"command": "python", "args": [str(COUNTER)],
                                                        "envVars": [{"name": "GREETING", "value": "hi"}]}))
        await _until(lambda: (st := runtime.status("mcp-team-acme", "counter")) is not None
                     and st.phase == ServerPhase.ready, timeout=60)
        url = runtime.upstream_url("mcp-team-acme", "counter")
        assert url is not None and url.endswith("/counter/mcp")
        assert "bump" in {t.name for t in await discover_tools(url, timeout=30)}
        await _until(lambda: any("counter-stdio starting" in line
                                 for line in runtime.logs("mcp-team-acme", "counter")), timeout=10)

    _run(scenario, tmp_path)


def test_a_stdio_command_that_exits_at_once_shows_error_with_why(tmp_path: Path) -> None:
    async def scenario(runtime: ProcessRuntime, seen: list[tuple[str, RuntimeStatus]]) -> None:
        code = "import sys; print('missing API_KEY', file=sys.stderr); sys.exit(5)"
        await runtime.deploy(_stdio_server("broken", {"command": "python", "args": ["-c", code]}))
        await _until(lambda: (st := runtime.status("mcp-team-acme", "broken")) is not None
                     and st.phase == ServerPhase.error, timeout=30)
        status = runtime.status("mcp-team-acme", "broken")
        assert status is not None
        assert "the stdio server did not start" in status.message and "exited with code 5" in status.message
        assert "missing API_KEY" in status.message

    _run(scenario, tmp_path)


def test_secret_env_for_a_stdio_server_is_refused_by_the_process_runtime(tmp_path: Path) -> None:
    async def scenario(runtime: ProcessRuntime, seen: list[tuple[str, RuntimeStatus]]) -> None:
        server = _stdio_server("secret", {"command": "python", "args": [str(COUNTER)], "secretEnvVars": [
            {"name": "TOKEN", "secretKeyRef": {"name": "api", "key": "token"}}]})
        problem = runtime.check(server)
        assert problem is not None and "TOKEN" in problem and "stdio.envVars" in problem

    _run(scenario, tmp_path)


def test_a_server_slower_than_the_ready_timeout_shows_error_then_becomes_ready(tmp_path: Path) -> None:
    async def main() -> None:
        runtime = ProcessRuntime(tmp_path, ready_timeout=1)
        try:
            # sleeps past the ready timeout before it serves: slow, not broken
            code = "import runpy, time; time.sleep(3); runpy.run_path('app.py', run_name='__main__')"
            await runtime.deploy(_server("slow", f'{sys.executable} -c "{code}"'))
            await _until(lambda: (st := runtime.status("mcp-team-acme", "slow")) is not None
                         and st.phase == ServerPhase.error)
            status = runtime.status("mcp-team-acme", "slow")
            assert status is not None and "after 1s; still waiting for it" in status.message
            await _until(lambda: (st := runtime.status("mcp-team-acme", "slow")) is not None
                         and st.phase == ServerPhase.ready)
            ready = runtime.status("mcp-team-acme", "slow")
            assert ready is not None and ready.restarts == 0  # the same process, never restarted
        finally:
            await runtime.shutdown()

    asyncio.run(main())
