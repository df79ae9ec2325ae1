"""The adapter with real clients against a real platform (`mcp-runtime up` as a subprocess).

Clients: the MCP Python SDK over stdio (`adapter stdio`) and over Streamable HTTP (`adapter proxy`),
and the MCP Inspector CLI on Node 22. One platform serves the whole module: team acme, owner alice,
the data-utility example deployed as `payments`, and a grant for agent `cursor` on echo, add and ping.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from fixtures.platform_up import (
    AGENT,
    NAMESPACE,
    SERVER,
    PlatformWorld,
    cli_env,
    running_platform,
    stop_process_group,
)
from fixtures.servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE22_DIR = REPO_ROOT / ".ci" / "node22"
INSPECTOR = NODE22_DIR / "node_modules" / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" \
    / "index.js"
GRANTED = {"echo", "add", "ping"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformWorld]:
    with running_platform(tmp_path_factory.mktemp("adapter-platform")) as running:
        yield running


# --- running the adapter ------------------------------------------------------------------------------
def adapter_args(world: PlatformWorld, *extra: str, agent: str = AGENT, runtime_url: str | None = None) -> list[str]:
    return ["--runtime-url", runtime_url or world.runtime_url, "--server", SERVER, "--agent", agent,
            "--agent-id", AGENT, *extra]


@contextlib.contextmanager
def proxy(world: PlatformWorld, *extra: str, agent: str = AGENT, config_dir: Path | None = None,
          log_name: str = "proxy") -> Iterator[str]:
    """`adapter proxy` on a free port; yields its MCP URL once /healthz answers."""
    port = free_port()
    log_path = world.data_dir.parent / f"{log_name}-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mcp_runtime", "adapter", "proxy", *adapter_args(world, *extra, agent=agent),
             "--listen", f"127.0.0.1:{port}"],
            env=cli_env(config_dir or world.config_dir), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"adapter proxy exited:\n{log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        yield f"{base}/mcp"
    finally:
        stop_process_group(process, grace=5)


@contextlib.asynccontextmanager
async def http_session(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[ClientSession]:
    async with httpx2.AsyncClient(headers=headers or {}, timeout=httpx2.Timeout(30, read=60)) as client, \
            streamable_http_client(url, http_client=client) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@contextlib.asynccontextmanager
async def stdio_session(world: PlatformWorld, *extra: str, agent: str = AGENT, config_dir: Path | None = None,
                        runtime_url: str | None = None) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_runtime", "adapter", "stdio", *adapter_args(world, *extra, agent=agent,
                                                                     runtime_url=runtime_url)],
        env=cli_env(config_dir or world.config_dir))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def text_of(result: Any) -> str:
    assert not result.is_error, result
    return "".join(getattr(block, "text", "") for block in result.content)


async def use_server(session: ClientSession) -> None:
    """What an agent does: list the tools (filtered to the grant), call some, see a streamed one's progress."""
    tools = await session.list_tools()
    assert {tool.name for tool in tools.tools} == GRANTED
    assert text_of(await session.call_tool("add", {"a": 2, "b": 3})) == "5"
    assert text_of(await session.call_tool("echo", {"text": "through the adapter"})) == "through the adapter"
    ticks: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        ticks.append(progress)

    result = await session.call_tool("ping", {"count": 3, "interval_ms": 20}, progress_callback=on_progress)
    assert text_of(result) == "pong"
    assert ticks == [1, 2, 3]
    with pytest.raises(MCPError) as denied:
        await session.call_tool("upper", {"text": "no"})
    assert denied.value.data["reason"] == "tool_not_granted"


# --- real clients -------------------------------------------------------------------------------------
def test_sdk_stdio_client_lists_and_calls_tools(world: PlatformWorld) -> None:
    async def main() -> None:
        async with stdio_session(world) as session:
            await use_server(session)

    anyio.run(main)


def test_sdk_http_client_through_the_proxy(world: PlatformWorld) -> None:
    async def main(url: str) -> None:
        # the client's own Authorization is never forwarded: the proxy's session token is what counts
        async with http_session(url, {"Authorization": "Bearer not-a-session-token"}) as session:
            await use_server(session)

    with proxy(world) as url:
        anyio.run(main, url)
        anyio.run(main, url.removesuffix("/mcp") + "/")  # clients that post to the root


@pytest.mark.parametrize("transport", ["proxy", "stdio"])
def test_progress_arrives_while_the_call_is_still_running(world: PlatformWorld, transport: str) -> None:
    """SSE is relayed event by event: the first tick of a 60-second ping reaches the client long before the end
    (a relay that buffered the stream whole would deliver nothing until then, and `fail_after` would fire)."""
    async def main(session: ClientSession) -> None:
        first_tick = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            first_tick.set()

        async with anyio.create_task_group() as group:
            group.start_soon(lambda: session.call_tool("ping", {"count": 2, "interval_ms": 60_000},
                                                       progress_callback=on_progress))
            with anyio.fail_after(20):
                await first_tick.wait()
            group.cancel_scope.cancel()
        assert text_of(await session.call_tool("echo", {"text": "still usable"})) == "still usable"

    async def over_proxy(url: str) -> None:
        async with http_session(url) as session:
            await main(session)

    async def over_stdio() -> None:
        async with stdio_session(world) as session:
            await main(session)

    if transport == "proxy":
        with proxy(world) as url:
            anyio.run(over_proxy, url)
    else:
        anyio.run(over_stdio)


def node22() -> Path:
    """The Node 22 binary from .ci/setup-node22.sh (installed on first use; CI runs the script up front)."""
    known = os.environ.get("MCP_RUNTIME_NODE22")
    if known and Path(known).exists() and INSPECTOR.exists():
        return Path(known)
    done = subprocess.run([str(REPO_ROOT / ".ci" / "setup-node22.sh")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"Node 22 + Inspector install failed:\n{done.stderr}"
    return Path(done.stdout.strip().splitlines()[-1])


def test_mcp_inspector_cli_through_the_proxy(world: PlatformWorld, tmp_path: Path) -> None:
    node = node22()
    env = {**os.environ, "PATH": f"{node.parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MCP_CATALOG_PATH": str(tmp_path / "catalog.json"), "HOME": str(tmp_path)}
    with proxy(world) as url:
        listed = subprocess.run([str(node), str(INSPECTOR), "--cli", url, "--transport", "http",
                                 "--method", "tools/list"], capture_output=True, text=True, env=env, timeout=90)
        assert listed.returncode == 0, listed.stderr
        assert {tool["name"] for tool in json.loads(listed.stdout)["tools"]} == GRANTED
        called = subprocess.run([str(node), str(INSPECTOR), "--cli", url, "--transport", "http",
                                 "--method", "tools/call", "--tool-name", "add", "--tool-arg", "a=40", "b=2"],
                                capture_output=True, text=True, env=env, timeout=90)
        assert called.returncode == 0, called.stderr
        assert json.loads(called.stdout)["content"][0]["text"] == "42"


def test_proxy_serves_only_this_machine_and_reports_its_session(world: PlatformWorld) -> None:
    with proxy(world) as url:
        health = httpx.get(url.replace("/mcp", "/healthz")).json()
        assert health["session"]["namespace"] == NAMESPACE and health["session"]["agentID"] == AGENT
        init = json.loads(INITIALIZE)
        accept = {"Accept": "application/json, text/event-stream"}
        rebinding = httpx.post(url, json=init, headers={**accept, "Host": "evil.example"})
        assert rebinding.status_code == 403
        foreign_page = httpx.post(url, json=init, headers={**accept, "Origin": "https://evil.example"})
        assert foreign_page.status_code == 403
        local_page = httpx.post(url, json=init, headers={**accept, "Origin": "http://localhost:6274"})
        assert local_page.status_code == 200 and local_page.headers.get("mcp-session-id")


def test_proxy_refuses_bodies_over_4_mib_with_the_gateways_413(world: PlatformWorld) -> None:
    """The proxy reads at most 4 MiB (declared or chunked) and says why; nothing goes to the runtime."""
    big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"text": "x" * (5 * 1024 * 1024)}}}).encode()
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    with proxy(world) as url:
        for content in (big, chunked()):
            refused = httpx.post(url, content=content, headers=headers, timeout=30)
            assert refused.status_code == 413
            assert refused.json() == {"error": "request_too_large", "message": "the request body is larger than "
                                      f"{4 * 1024 * 1024} bytes; send smaller requests"}
        init = httpx.post(url, json=json.loads(INITIALIZE), headers=headers, timeout=30)
        assert init.status_code == 200 and init.headers.get("mcp-session-id")


def test_tutorial_step_6_another_team_connects_through_the_adapter(world: PlatformWorld, tmp_path: Path) -> None:
    """Bob of Globex calls Acme's payments server through the adapter under a cross-team grant; once the
    grant is deleted his next call is denied (multi-team tutorial, steps 5 to 7)."""
    globex = world.cli(["team", "create", "globex", "--name", "Globex", "-o", "json"], profile="admin")
    globex_id = json.loads(globex.stdout)["id"]
    world.cli(["team", "user", "create", "globex", "--username", "bob@globex.com", "--password", "bob-password-1",
               "--role", "owner"], profile="admin")
    grant_file = tmp_path / "grant-cross.yaml"
    world.cli(["access", "grant", "init", "payments-to-globex", "--server", SERVER, "--namespace", NAMESPACE,
               "--team-id", globex_id, "--agent-id", AGENT, "--tool", "echo", "--tool", "add",
               "--output", str(grant_file)])
    world.cli(["access", "grant", "apply", "--file", str(grant_file)])
    bob = tmp_path / "bob"
    world.login(bob, "bob@globex.com", "bob-password-1", "bob")

    async def main() -> None:
        async with stdio_session(world, "--auto-refresh", config_dir=bob) as session:
            assert {tool.name for tool in (await session.list_tools()).tools} == {"echo", "add"}
            assert text_of(await session.call_tool("add", {"a": 20, "b": 22})) == "42"
            world.cli(["access", "grant", "delete", "payments-to-globex", "--namespace", NAMESPACE])
            with pytest.raises(MCPError) as denied:
                await session.call_tool("echo", {"text": "no grant, no access"})
            assert denied.value.data["reason"] == "no_matching_grant"

    anyio.run(main)


# --- session lifetime ---------------------------------------------------------------------------------
def test_auto_refresh_keeps_calls_working_and_expiry_surfaces_without_it(world: PlatformWorld,
                                                                        tmp_path: Path) -> None:
    """5-second sessions for 20 s: with --auto-refresh every call succeeds (even with the platform login's
    access token already expired); without it the calls start failing with session_expired."""
    def stale_login(name: str) -> Path:
        """A login of its own (refresh tokens rotate) whose access token has already expired."""
        config_dir = tmp_path / name
        world.login(config_dir)
        config = json.loads((config_dir / "config.json").read_text())
        config["profiles"]["alice"].update({"accessToken": "expired", "accessExpiresAt": 0})
        (config_dir / "config.json").write_text(json.dumps(config))
        return config_dir

    outcomes: dict[str, list[str]] = {"auto-proxy": [], "auto-stdio": [], "plain-proxy": [], "plain-stdio": []}

    async def call(name: str, session: ClientSession) -> None:
        try:
            result = await session.call_tool("echo", {"text": name})
            outcomes[name].append("ok" if text_of(result) == name else "wrong")
        except MCPError as exc:
            outcomes[name].append((exc.data or {}).get("reason", exc.message))

    async def keep_calling(name: str, session: ClientSession, until: float) -> None:
        while time.monotonic() < until:
            await anyio.sleep(0.5)
            await call(name, session)

    stdio_login, proxy_login = stale_login("stdio-login"), stale_login("proxy-login")

    async def main(auto_url: str) -> None:
        async with contextlib.AsyncExitStack() as stack:
            sessions = {
                "auto-proxy": await stack.enter_async_context(http_session(auto_url)),
                "auto-stdio": await stack.enter_async_context(
                    stdio_session(world, "--ttl", "5s", "--auto-refresh", agent="auto-stdio", config_dir=stdio_login)),
            }
            # the plain ones last, each called at once: their 5 s start when the adapter gets the session
            plain_url = stack.enter_context(proxy(world, "--ttl", "5s", agent="plain-proxy"))
            sessions["plain-proxy"] = await stack.enter_async_context(http_session(plain_url))
            await call("plain-proxy", sessions["plain-proxy"])
            sessions["plain-stdio"] = await stack.enter_async_context(
                stdio_session(world, "--ttl", "5s", agent="plain-stdio"))
            await call("plain-stdio", sessions["plain-stdio"])
            until = time.monotonic() + 20
            async with anyio.create_task_group() as group:
                for name, session in sessions.items():
                    group.start_soon(keep_calling, name, session, until)

    with proxy(world, "--ttl", "5s", "--auto-refresh", agent="auto-proxy", config_dir=proxy_login) as auto_url:
        anyio.run(main, auto_url)

    for name in ("auto-proxy", "auto-stdio"):
        assert len(outcomes[name]) > 20 and set(outcomes[name]) == {"ok"}, (name, outcomes[name])
    for name in ("plain-proxy", "plain-stdio"):
        calls = outcomes[name]
        assert calls[0] == "ok", (name, calls)
        first_failure = calls.index("session_expired")
        assert set(calls[first_failure:]) == {"session_expired"}, (name, calls)
        assert set(calls[:first_failure]) == {"ok"}, (name, calls)


# --- clear errors -------------------------------------------------------------------------------------
def run_adapter(world: PlatformWorld, command: str, *args: str, config_dir: Path | None = None,
                input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mcp_runtime", "adapter", command, *args],
                          env=cli_env(config_dir or world.config_dir), input=input, capture_output=True, text=True,
                          timeout=timeout)


INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "initialize",
                         "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "raw", "version": "1"}}}) + "\n"


def stdio_first_answer(world: PlatformWorld, *args: str, config_dir: Path | None = None
                       ) -> tuple[dict[str, Any], str]:
    """Send `initialize` to `adapter stdio`, close stdin: its one stdout line (parsed) and its stderr."""
    done = run_adapter(world, "stdio", *args, config_dir=config_dir, input=INITIALIZE)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert done.returncode == 0 and len(lines) == 1, (done.stdout, done.stderr)
    return json.loads(lines[0]), done.stderr


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_not_logged_in(world: PlatformWorld, tmp_path: Path) -> None:
    empty = tmp_path / "nobody"
    line = one_line_error(run_adapter(world, "proxy", *adapter_args(world), "--listen", f"127.0.0.1:{free_port()}",
                                      config_dir=empty))
    assert "not logged in" in line and f"mcp-runtime auth login --api-url {world.url}" in line

    answer, stderr = stdio_first_answer(world, *adapter_args(world), config_dir=empty)
    assert answer["id"] == 7 and answer["error"]["data"]["reason"] == "not_logged_in"
    assert "auth login" in answer["error"]["message"]
    assert "not logged in" in stderr and "Traceback" not in stderr


def test_no_matching_grant(world: PlatformWorld) -> None:
    args = ["--runtime-url", world.runtime_url, "--server", SERVER, "--agent", "stranger"]
    line = one_line_error(run_adapter(world, "proxy", *args, "--listen", f"127.0.0.1:{free_port()}"))
    assert "no active grant" in line
    assert "mcp-runtime access grant init" in line and "&& mcp-runtime access grant apply --file" in line

    answer, stderr = stdio_first_answer(world, *args)
    assert answer["id"] == 7 and answer["error"]["data"]["reason"] == "no_matching_grant"
    assert "no active grant" in stderr


def test_revoked_session(world: PlatformWorld) -> None:
    agent = "revoked-agent"

    async def main() -> None:
        async with stdio_session(world, agent=agent) as session:
            assert text_of(await session.call_tool("echo", {"text": "before"})) == "before"
            sessions = world.api("GET", f"runtime/sessions?namespace={NAMESPACE}").json()["items"]
            name = next(s["metadata"]["name"] for s in sessions if s["metadata"]["name"].startswith(agent))
            world.cli(["access", "session", "revoke", name, "--namespace", NAMESPACE], profile="admin")
            with pytest.raises(MCPError) as revoked:
                await session.call_tool("echo", {"text": "after"})
            assert revoked.value.data["reason"] == "session_revoked"
            assert f"mcp-runtime access session unrevoke {name} --namespace {NAMESPACE}" in revoked.value.message

    anyio.run(main)
    # a new adapter is refused too: revocation is sticky until an admin unrevokes
    line = one_line_error(run_adapter(world, "proxy", *adapter_args(world, agent=agent),
                                      "--listen", f"127.0.0.1:{free_port()}"))
    assert "revoked" in line and "unrevoke" in line


def test_runtime_unreachable(world: PlatformWorld) -> None:
    dead = f"http://127.0.0.1:{free_port()}/{SERVER}/mcp"
    line = one_line_error(run_adapter(world, "proxy", *adapter_args(world, runtime_url=dead),
                                      "--listen", f"127.0.0.1:{free_port()}"))
    assert f"cannot reach the runtime at {dead}" in line

    answer, stderr = stdio_first_answer(world, *adapter_args(world, runtime_url=dead))
    assert answer["id"] == 7 and answer["error"]["data"]["reason"] == "runtime_unreachable"
    assert "cannot reach the runtime" in stderr


def test_proxy_refuses_to_listen_beyond_loopback(world: PlatformWorld) -> None:
    line = one_line_error(run_adapter(world, "proxy", *adapter_args(world), "--listen", "0.0.0.0:8099"))
    assert "--allow-remote" in line


# --- adapter config -----------------------------------------------------------------------------------
def test_config_snippets(world: PlatformWorld) -> None:
    stdio = run_adapter(world, "config", "--client", "claude-desktop", "--server", SERVER,
                        "--runtime-url", world.runtime_url, "--agent", AGENT)
    assert stdio.returncode == 0, stdio.stderr
    entry = json.loads(stdio.stdout)["mcpServers"][SERVER]
    assert entry["command"] == "mcp-runtime"
    assert entry["args"][:2] == ["adapter", "stdio"] and "--auto-refresh" in entry["args"]
    assert entry["args"][entry["args"].index("--runtime-url") + 1] == world.runtime_url

    http = run_adapter(world, "config", "--client", "vscode", "--server", SERVER, "--runtime-url", world.runtime_url,
                       "--agent", AGENT, "--mode", "http")
    assert http.returncode == 0, http.stderr
    assert "expires" in http.stderr
    server = json.loads(http.stdout)["servers"][SERVER]
    assert server["type"] == "http" and server["url"] == world.runtime_url
    answer = httpx.post(world.runtime_url, json=json.loads(INITIALIZE),
                        headers={**server["headers"], "Accept": "application/json, text/event-stream"})
    assert answer.status_code == 200, answer.text

    refused = run_adapter(world, "config", "--client", "claude-desktop", "--server", SERVER,
                          "--runtime-url", world.runtime_url, "--mode", "http")
    assert "--mode stdio" in one_line_error(refused)

