"""Crash safety of the process runtime: no server outlives it, and no restart adopts what it did not start.

A host process runs a `ProcessRuntime` (tests/fixtures/runtime_host.py) so the test can SIGKILL it the
way the OOM killer would. Servers are started three ways, as users do: directly (`python app.py`),
behind a shell wrapper whose child is the real server (`sh -c "python app.py & wait"`), and behind a
launcher that puts the real server in a session of its own (as npx/uvx-style launchers and daemonizing
scripts may), which no process-group kill reaches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.servers import DATA_UTILITY_DIR, REPO_ROOT, run_data_utility_server
from mcp_runtime.resources import MCPServer, ServerPhase
from mcp_runtime.runtime.lifeline import alive, processes_with
from mcp_runtime.runtime.ownership import OWNER_ENV, DataDirInUse, ServerRecord, owner_id, port_is_free
from mcp_runtime.runtime.process import ProcessRuntime

pytestmark = pytest.mark.slow

HOST = REPO_ROOT / "tests" / "fixtures" / "runtime_host.py"
PY = sys.executable
DIRECT = f"{PY} app.py"
SHELL_WRAPPER = f"sh -c '{PY} app.py & wait'"
DETACHING_LAUNCHER = (f"{PY} -c \"import subprocess, sys; "
                      f"sys.exit(subprocess.Popen([sys.executable, 'app.py'], start_new_session=True).wait())\"")
GONE_WITHIN = 15.0  # seconds: the lifeline's grace is 3 s; the rest is slack for a loaded 2-core machine


class Host:
    def __init__(self, data_dir: Path, servers: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as err:
            self.process = subprocess.Popen([PY, str(HOST), str(data_dir), json.dumps(servers)],
                                            stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the runtime host exited:\n{log.read_text()}"
        self.report: dict[str, Any] = json.loads(line)
        assert "error" not in self.report, self.report

    def port(self, name: str) -> int:
        return int(self.report["servers"][name]["port"])

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@contextlib.contextmanager
def hosting(data_dir: Path, servers: dict[str, str], log: Path) -> Iterator[Host]:
    host = Host(data_dir, servers, log)
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(autouse=True)
def _no_leftovers(tmp_path: Path) -> Iterator[None]:
    yield
    _kill_marked(OWNER_ENV, owner_id(tmp_path / "data"))  # whatever a failing test left behind


def _kill_marked(name: str, value: str) -> None:
    for pid in processes_with(name, value):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)
    return time.monotonic() - started


def _holds_port(port: int) -> bool:
    """Something accepts connections there (a stale server whose log pipe broke may answer only 500s)."""
    return not port_is_free(port)


def _answers_mcp(port: int, path: str) -> bool:
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}}
    try:
        answer = httpx.post(f"http://127.0.0.1:{port}{path}", json=body, timeout=5,
                            headers={"Accept": "application/json, text/event-stream"})
    except httpx.TransportError:
        return False
    return answer.status_code == 200


def test_every_server_process_dies_with_a_sigkilled_runtime(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    servers = {"direct": DIRECT, "wrapped": SHELL_WRAPPER, "detached": DETACHING_LAUNCHER}
    owner = owner_id(data_dir)
    with hosting(data_dir, servers, tmp_path / "host.log") as host:
        ours = processes_with(OWNER_ENV, owner)
        # one process for `direct`, two for `wrapped` (sh + python), two for `detached` (launcher + python)
        assert len(ours) >= 5, ours
        detached_children = [p for p in ours if os.getsid(p) == p and p != host.report["servers"]["detached"]["pid"]]
        assert detached_children, "the launcher's child should be in a session of its own"

        host.kill()
        took = _wait(lambda: not processes_with(OWNER_ENV, owner), GONE_WITHIN, "every server process to stop")
        _wait(lambda: not any(alive(pid) for pid in ours), 5, "the last server process to finish exiting")
        assert all(port_is_free(host.port(name)) for name in servers)
        _wait(lambda: not alive(host.report["lifeline"]), 10, "the lifeline to exit once its work is done")
        print(f"all {len(ours)} server processes gone {took:.2f}s after SIGKILL of the runtime")


def test_a_restart_replaces_a_leftover_on_the_port_instead_of_adopting_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "host.log"
    with hosting(data_dir, {"payments": SHELL_WRAPPER}, log) as first:
        port = first.port("payments")
        wrapper_pid = first.report["servers"]["payments"]["pid"]
        # the worst case: the lifeline is gone too. The kernel's parent-death signal still kills the direct
        # child (the shell), but its child, the real server, lives on as an orphan holding the port.
        os.kill(first.report["lifeline"], signal.SIGKILL)
        first.kill()
        _wait(lambda: not alive(wrapper_pid), GONE_WITHIN, "the wrapper to die by its parent-death signal")
        stale = processes_with(OWNER_ENV, owner_id(data_dir))
        assert len(stale) == 1 and _holds_port(port), "a stale server should be left, holding the port"

    with hosting(data_dir, {"payments": SHELL_WRAPPER}, log) as second:
        assert not alive(stale[0]), "the leftover must be stopped, not adopted"
        assert second.port("payments") == port, "the server keeps its port across restarts"
        assert second.report["servers"]["payments"]["pid"] != wrapper_pid
        fresh = processes_with(OWNER_ENV, owner_id(data_dir))
        assert fresh and stale[0] not in fresh
        assert _answers_mcp(port, "/payments/mcp")
    assert "stopped 1 server processes an earlier mcp-runtime left running" in log.read_text()


def test_a_second_runtime_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        first = ProcessRuntime(tmp_path)
        try:
            with pytest.raises(DataDirInUse, match=rf"another mcp-runtime \(pid {os.getpid()}\).*--data-dir"):
                ProcessRuntime(tmp_path)
        finally:
            await first.shutdown()
        again = ProcessRuntime(tmp_path)  # released by shutdown
        await again.shutdown()

    asyncio.run(scenario())


def _server(name: str, command: str) -> MCPServer:
    return MCPServer.model_validate({"metadata": {"name": name, "namespace": "mcp-team-acme"}, "spec": {
        "image": name, "tools": [{"name": "echo", "sideEffect": "read"}],
        "run": {"command": command, "workingDir": str(DATA_UTILITY_DIR)}}})


async def _until_phase(runtime: ProcessRuntime, name: str, phase: ServerPhase, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (st := runtime.status("mcp-team-acme", name)) is None or st.phase != phase:
        assert time.monotonic() < deadline, f"{name} never reached {phase}: {st}"
        await asyncio.sleep(0.05)


def test_a_foreign_process_on_the_recorded_port_is_left_alone_and_the_server_moves(tmp_path: Path) -> None:
    with run_data_utility_server(path="/payments/mcp") as foreign:
        record = ServerRecord(port=foreign.port)
        (tmp_path / "run").mkdir()
        record.save(ServerRecord.path(tmp_path / "run", "mcp-team-acme", "payments"))

        async def scenario() -> None:
            runtime = ProcessRuntime(tmp_path)
            try:
                await runtime.deploy(_server("payments", DIRECT))
                await _until_phase(runtime, "payments", ServerPhase.ready)
                url = runtime.upstream_url("mcp-team-acme", "payments")
                assert url is not None and f":{foreign.port}/" not in url
            finally:
                await runtime.shutdown()

        asyncio.run(scenario())
        assert foreign.process.poll() is None, "a process the runtime did not start is never stopped by it"


def test_an_answer_from_a_process_this_start_did_not_launch_is_not_adopted(tmp_path: Path) -> None:
    """The command starts a server with a clean environment in its own session (so it is not ours by any
    mark) on $PORT: the port answers MCP, but the runtime must not call that Ready."""
    mark = uuid.uuid4().hex
    command = (f"sh -c 'env -i PATH=\"$PATH\" PORT=\"$PORT\" MCP_PATH=\"$MCP_PATH\" FOREIGN_MARK={mark} "
               f"setsid {PY} app.py & exec sleep 600'")

    async def scenario() -> None:
        runtime = ProcessRuntime(tmp_path, ready_timeout=60)
        try:
            await runtime.deploy(_server("impostor", command))
            await _until_phase(runtime, "impostor", ServerPhase.error)
            status = runtime.status("mcp-team-acme", "impostor")
            assert status is not None and "did not start" in status.message and "not adopting" in status.message
            assert any("moving the server to a new port" in line for line in runtime.logs("mcp-team-acme", "impostor"))
        finally:
            await runtime.shutdown()
            _kill_marked("FOREIGN_MARK", mark)

    asyncio.run(scenario())
