"""The first-try flow of the process runtime, through the CLI as a user would type it.

`mcp-runtime up` runs as a subprocess on a temp data dir; the admin logs in and creates team acme
with its owner alice; alice scaffolds payments from the running data-utility example with
`--run "python app.py"`, validates and deploys it, grants her team, gets an adapter session, and
the official MCP SDK client calls `add` through the gateway at /payments/mcp. Then governance
changes (grant disabled, session revoked) are enforced on the next call, a restart of `up` brings
everything back as it was, a server that exits at once shows Error with its log tail, and
`server delete` stops the process.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from fixtures.servers import DATA_UTILITY_DIR, REPO_ROOT, free_port, run_data_utility_server

pytestmark = pytest.mark.slow

ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-password-1"
ACME = "mcp-team-acme"
WAIT = 60.0
CTRL_C_EXIT = (0, 130, -signal.SIGINT)


class Up:
    """`mcp-runtime up` as a subprocess (its own process group, so nothing it starts can outlive it)."""

    def __init__(self, data_dir: Path, port: int, log: Path) -> None:
        self.data_dir, self.port, self.log = data_dir, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "MCP_RUNTIME_ADMIN_EMAIL": ADMIN_EMAIL,
               "MCP_RUNTIME_ADMIN_PASSWORD": ADMIN_PASSWORD}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mcp_runtime", "up", "--data-dir", str(self.data_dir),
                 "--port", str(self.port), "--log-level", "warning"],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: self._healthy(), f"up answers on {self.url}", self.output)

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"up exited with {self.process.returncode}:\n{self.output()}")
        try:
            return httpx.get(f"{self.url}/api/v1/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> int:
        """Ctrl-C, as a user would; returns the exit code (uvicorn re-raises SIGINT: 130 like any shell tool)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=30)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_for(condition: Callable[[], Any], what: str, context: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{context()}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


async def _call_tool(url: str, token: str, tool: str, arguments: dict[str, Any]) -> Any:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        try:
            result = await session.call_tool(tool, arguments)
        except MCPError as exc:
            return ("denied", exc.error.data.get("reason") if isinstance(exc.error.data, dict) else None)
        return ("ok", result.content[0].text)


def call_add(url: str, token: str) -> tuple[str, Any]:
    """`add 2 3` with the SDK client; ("ok", "5") or ("denied", reason) when the gateway refuses the call."""
    try:
        return anyio.run(_call_tool, url, token, "add", {"a": 2, "b": 3})  # type: ignore[no-any-return]
    except Exception:
        # refused before the session starts (e.g. a revoked session at initialize): ask the gateway directly
        return ("denied", gateway_reason(url, token))


def gateway_reason(url: str, token: str) -> str | None:
    """The reason the gateway gives a raw tools/call (HTTP error envelope or JSON-RPC error data)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 2, "b": 3}}}
    answer = httpx.post(url, json=body, timeout=10, headers={
        "Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"})
    try:
        data = answer.json()
    except ValueError:
        return None
    if "error" in data and isinstance(data["error"], str):
        return str(data["error"])
    error = data.get("error") or {}
    return (error.get("data") or {}).get("reason")


@contextlib.contextmanager
def follow_logs(config: Path, name: str, tail: int) -> Iterator[queue.Queue[str]]:
    """`mcp-runtime server logs NAME --follow` running; its output lines arrive on the queue."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src"), "MCP_RUNTIME_CONFIG_DIR": str(config),
           "MCP_PLATFORM_API_PROFILE": "alice"}
    process = subprocess.Popen([sys.executable, "-m", "mcp_runtime", "server", "logs", name, "--follow", "--tail",
                                str(tail)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield lines
        assert process.poll() is None, "logs --follow should keep running"
    finally:
        process.terminate()
        process.wait(timeout=10)
        reader.join(timeout=10)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    running = Up(tmp_path / "data", free_port(), tmp_path / "up.log")
    running.start()
    try:
        yield running
    finally:
        running.kill()


def test_process_runtime_first_try(up: Up, tmp_path: Path, cli: Callable[..., Any]) -> None:
    config = tmp_path / "config"
    run_cli = cli

    def cli(*args: str, profile: str = "alice", cwd: Path = tmp_path, ok: bool = True) -> Any:
        result = run_cli(list(args), cwd=cwd, env={"MCP_RUNTIME_CONFIG_DIR": str(config),
                                                   "MCP_PLATFORM_API_PROFILE": profile})
        if ok:
            assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}\n--- up:\n{up.output()}"
        return result

    def server_json(name: str) -> dict[str, Any]:
        return json.loads(cli("server", "status", name, "--namespace", ACME, "-o", "json").stdout)  # type: ignore

    def payments_pids() -> list[int]:
        """The pids the process runtime started payments with, from the runtime's notes in its log."""
        lines = cli("server", "logs", "payments", "--tail", "10000").stdout
        return [int(p) for p in re.findall(r"\[mcp-runtime\] started pid (\d+)", lines)]

    # the admin sets up team acme and its owner
    cli("auth", "login", "--api-url", up.url, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD,
        "--profile", "admin", profile="")
    cli("team", "create", "acme", "--name", "Acme Corp", profile="admin")
    acme_id = json.loads(cli("team", "list", "-o", "json", profile="admin").stdout)[0]["id"]
    cli("team", "user", "create", "acme", "--username", "alice@acme.com", "--password", "alice-pass-1",
        "--role", "owner", profile="admin")
    cli("auth", "login", "--api-url", up.url, "--email", "alice@acme.com", "--password", "alice-pass-1",
        "--profile", "alice", profile="")

    # alice scaffolds payments from the running example, validates and deploys it
    app = tmp_path / "data-utility-mcp"
    shutil.copytree(DATA_UTILITY_DIR, app, ignore=shutil.ignore_patterns("__pycache__", ".mcp"))
    with run_data_utility_server() as example:
        init = cli("server", "init", "payments", "--from-server", example.url, "--run", "python app.py", cwd=app)
    assert "Discovered: add, echo, lower, multiply, ping, reverse, upper" in init.stdout
    cli("server", "validate", cwd=app)
    deployed = cli("server", "deploy", "payments", "--scope", "tenant", cwd=app).stdout
    assert f"to namespace {ACME}" in deployed and f"{up.url}/payments/mcp" in deployed

    def listed_ready() -> bool:
        return bool(re.search(rf"^payments\s+{ACME}\s+1/1\s+Ready\s", cli("server", "list").stdout, re.M))
    def payments_state() -> str:
        status = cli("server", "status", "payments", "--namespace", ACME, ok=False)
        logs = cli("server", "logs", "payments", "--tail", "40", ok=False)
        return (f"{up.output()}\n--- server status ---\n{status.stdout}{status.stderr}\n"
                f"--- server logs ---\n{logs.stdout}")
    wait_for(listed_ready, "payments Ready in server list", payments_state)
    assert "serving on http://127.0.0.1:" in server_json("payments")["message"]

    # a grant for the team, then an adapter session for alice's agent
    grant = tmp_path / "grant.yaml"
    cli("access", "grant", "init", "payments-acme", "--server", "payments", "--namespace", ACME,
        "--team-id", acme_id, "--tool", "add", "--tool", "echo", "--output", str(grant))
    cli("access", "grant", "apply", "--file", str(grant))
    alice = json.loads((config / "config.json").read_text())["profiles"]["alice"]["accessToken"]

    def session_token(agent: str) -> str:
        answer = httpx.post(f"{up.url}/api/v1/runtime/adapter/sessions", timeout=10,
                            headers={"Authorization": f"Bearer {alice}"},
                            json={"server": "payments", "agent": agent, "agentID": agent})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["token"])

    cursor, claude = session_token("cursor"), session_token("claude")
    mcp_url = f"{up.url}/payments/mcp"
    assert call_add(mcp_url, cursor) == ("ok", "5")

    # `server logs --follow` prints the tail, then what the server writes next (here: about the next call)
    with follow_logs(config, "payments", tail=2) as lines:
        first = [lines.get(timeout=WAIT) for _ in range(2)]
        assert first == cli("server", "logs", "payments", "--tail", "2").stdout.splitlines()[-2:]
        assert call_add(mcp_url, claude) == ("ok", "5")
        assert lines.get(timeout=WAIT)

    # disabling the grant is enforced on the next call
    cli("access", "grant", "disable", "payments-acme", "--namespace", ACME)
    disabled = call_add(mcp_url, cursor)
    assert disabled == ("denied", "no_matching_grant"), disabled
    cli("access", "grant", "enable", "payments-acme", "--namespace", ACME)
    assert call_add(mcp_url, cursor) == ("ok", "5")

    # revoking cursor's session is enforced too; claude's session is untouched
    sessions = json.loads(cli("access", "session", "list", "-o", "json").stdout)
    cursor_session = next(s["metadata"]["name"] for s in sessions if s["spec"]["subject"]["agentID"] == "cursor")
    cli("access", "session", "revoke", cursor_session, "--namespace", ACME)
    assert call_add(mcp_url, cursor) == ("denied", "session_revoked")
    assert call_add(mcp_url, claude) == ("ok", "5")

    # Ctrl-C stops up and the servers it runs; the next up brings them back with the same decisions
    first_pid = payments_pids()[-1]
    assert up.stop() in CTRL_C_EXIT, up.output()
    wait_for(lambda: not pid_alive(first_pid), "the payments process to stop with up")
    up.start()

    def serving_again() -> bool:
        pids = payments_pids()
        return bool(pids and pids[-1] != first_pid and server_json("payments")["phase"] == "Ready")
    wait_for(serving_again, "payments started again and Ready", up.output)
    assert listed_ready()
    assert call_add(mcp_url, claude) == ("ok", "5")
    assert call_add(mcp_url, cursor) == ("denied", "session_revoked")

    # a server whose command exits at once: phase Error, with its log tail in the message
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    cli("server", "deploy", "broken", "--run",
        "python -c \"import sys; print('boom: config file missing'); sys.exit(3)\"", cwd=broken_dir)

    def broken_error() -> dict[str, Any] | None:
        status = server_json("broken")
        return status if status["phase"] == "Error" and "boom: config file missing" in (status["message"] or "") \
            else None
    status = wait_for(broken_error, "broken in phase Error", up.output)
    assert "exit code 3" in status["message"]
    assert re.search(rf"^broken\s+{ACME}\s+0/1\s+Error\s", cli("server", "status").stdout, re.M)
    assert "boom: config file missing" in cli("server", "logs", "broken", "--tail", "20").stdout
    cli("server", "delete", "broken", "--yes")

    # delete stops the process and the route
    pid = payments_pids()[-1]
    assert pid_alive(pid)
    assert cli("server", "delete", "payments", "--yes").stdout.strip() == f"server payments deleted from {ACME}"
    wait_for(lambda: not pid_alive(pid), "the payments process to stop after delete", up.output)
    assert httpx.post(mcp_url, json={}, timeout=5).status_code == 404
    assert "No servers." in cli("server", "list").stdout

    platform = cli("status").stdout
    assert re.search(r"^Runtime:\s+process$", platform, re.M) and re.search(r"^Store:\s+sqlite$", platform, re.M)
    assert up.stop() in CTRL_C_EXIT
