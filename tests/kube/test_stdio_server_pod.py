"""A stdio package server (`pypi:mcp-server-time`) running for real on the test cluster behind the bridge.

The image is what `server build image` makes of the package spec, the same pinned version the podman test
builds (tests/platform/test_podman_stdio.py): the platform image this checkout builds plus the package's
wheels and `uv`, so `uvx` installs offline and nothing downloads at pod start. It is pushed to the loopback
registry and pulled by the node's containerd. The operator renders the MCPServer's `stdio` form with the
bridge (`mcp-runtime bridge stdio ... -- uvx mcp-server-time==...`) as the app container's command, under
the pod's restricted security context (non-root, read-only root filesystem, /tmp an emptyDir). The pod gets
2/2 Ready with its `mcp-gateway` sidecar; the official SDK client through the Service sees only the granted
tool, gets the real time from it, and the ungranted one is denied with the policy's reason. Two concurrent
MCP sessions get two server processes (the bridge logs each process it starts, with its pid, to the
container's log), ending a session stops its process, and deleting the pod with a session open stops that
session's process (the bridge is PID 1 and handles the kubelet's SIGTERM) well inside the grace period.
"""

from __future__ import annotations

import contextlib
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from fixtures.kube_cluster import KubeCluster
from fixtures.kube_images import PLATFORM_IMAGE, LocalRegistry
from fixtures.kube_servers import PodServer, operator_process
from fixtures.package_images import TIME_PACKAGE, TIME_TOOLS, build_package_image
from mcp_runtime.runtime.base_image import source_digest, source_root

NAME = "time"
STARTED = re.compile(r"\[session (\w+)\] started pid (\d+): uvx ")
STOPPED = re.compile(r"\[session (\w+)\] pid (\d+) stopped")


@pytest.fixture(scope="module")
def kube_time_image(kube_registry: LocalRegistry, kube_platform_image: str,
                    tmp_path_factory: pytest.TempPathFactory) -> str:
    """`server build image time` FROM the platform image the sidecars run (this checkout's bridge), tagged
    with the sources' digest, pushed to the cluster's registry; rebuilt only when the platform image is newer."""
    tag = f"src-{source_digest(source_root())[:16]}"
    built = build_package_image(tmp_path_factory.mktemp("time"), NAME, TIME_PACKAGE, registry="localhost", tag=tag,
                                base=PLATFORM_IMAGE, reuse_newer_than=PLATFORM_IMAGE)
    started = time.monotonic()
    ref = kube_registry.push(built.reference, f"acme/{NAME}:{tag}")
    build = "reused" if built.build_seconds is None else f"built in {built.build_seconds:.1f}s"
    print(f"\n[stdio pod] {ref}: {build}, pushed in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return ref


@contextlib.asynccontextmanager
async def _client(url: str, token: str) -> AsyncIterator[ClientSession]:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), ClientSession(read, write) as session:
        yield session


async def _now(session: ClientSession) -> dict[str, Any]:
    result = await session.call_tool("get_current_time", {"timezone": "UTC"})
    assert not result.is_error, result  # type: ignore[union-attr]
    answer: dict[str, Any] = json.loads(result.content[0].text)  # type: ignore[union-attr]
    return answer


async def _governed(url: str, token: str, calls: int) -> dict[str, Any]:
    """One MCP session: open it, list tools, call the granted tool `calls` times, call the denied one."""
    seen: dict[str, Any] = {}
    started = time.perf_counter()
    async with _client(url, token) as session:
        await session.initialize()  # the bridge starts this session's `uvx` here
        seen["initialize"] = time.perf_counter() - started
        seen["tools"] = sorted(t.name for t in (await session.list_tools()).tools)
        latencies = []
        for _ in range(calls):
            call = time.perf_counter()
            seen["now"] = await _now(session)
            latencies.append(time.perf_counter() - call)
        seen["latencies"] = latencies
        try:
            await session.call_tool("convert_time", {"source_timezone": "UTC", "time": "12:00",
                                                     "target_timezone": "Europe/Paris"})
            seen["convert"] = "allowed"
        except MCPError as exc:
            seen["convert"] = (exc.error.message, (exc.error.data or {}).get("reason"))
    return seen


async def _two_sessions(url: str, token: str, logs: Any) -> tuple[list[dict[str, Any]], str]:
    """Two sessions open at once, each calling the tool; the container's log read while both are open."""
    async with _client(url, token) as first, _client(url, token) as second:
        await first.initialize()
        await second.initialize()
        answers = [await _now(first), await _now(second)]
        during = await anyio.to_thread.run_sync(logs)
    return answers, during


def _initialize(url: str, token: str) -> str:
    """A session opened with a bare `initialize` POST and never ended (no DELETE); returns its id."""
    answer = httpx.post(url, timeout=60, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "left-open", "version": "1"}}},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"})
    assert answer.status_code == 200 and "mcp-time" in answer.text, answer.text
    return answer.headers["mcp-session-id"]


def _sessions(pattern: re.Pattern[str], text: str) -> dict[str, str]:
    """session tag -> pid, for each log line the pattern matches."""
    return {m.group(1): m.group(2) for m in pattern.finditer(text)}


def test_a_stdio_package_server_runs_as_a_pod_behind_the_bridge_and_is_governed(
        kube_pods_cluster: KubeCluster, platform_crds: list[str], kube_namespace: str, jwks_namespace: str,
        kube_platform_image: str, kube_time_image: str, tmp_path: Path) -> None:
    cluster, ns = kube_pods_cluster, kube_namespace
    log = tmp_path / "operator.log"
    with operator_process(cluster, [ns, jwks_namespace], jwks_namespace, log, kube_platform_image):
        server = PodServer(cluster, ns, jwks_namespace, kube_time_image, name=NAME, tools=TIME_TOOLS,
                           granted=("get_current_time",), stdio={"package": TIME_PACKAGE})
        started = time.monotonic()
        server.apply_all()
        server.wait_ready(log)
        ready = time.monotonic() - started
        print(f"\n[stdio pod] {NAME} Ready 2/2 {ready:.1f}s after apply", file=sys.stderr)

        containers = {c["name"]: c for c in server.pod()["spec"]["containers"]}
        app = containers["mcp-server"]
        assert app["image"] == kube_time_image
        assert app["command"][:3] == ["mcp-runtime", "bridge", "stdio"], app["command"]  # the bridge is the entrypoint
        assert app["command"][-2:] == ["uvx", TIME_PACKAGE.removeprefix("pypi:")], app["command"]
        assert app["securityContext"]["readOnlyRootFilesystem"] is True
        assert containers["mcp-gateway"]["image"] == kube_platform_image

        url, token = server.url(), server.token()
        seen = anyio.run(_governed, url, token, 10)
        assert seen["tools"] == ["get_current_time"]  # convert_time is filtered out of tools/list
        assert seen["now"]["timezone"] == "UTC"
        answered = datetime.fromisoformat(seen["now"]["datetime"])
        assert abs((answered - datetime.now(UTC)).total_seconds()) < 300, seen["now"]  # the pod's real clock
        message, reason = seen["convert"]
        assert reason == "tool_not_granted", seen["convert"]
        assert "convert_time" in message, message
        latencies = sorted(seen["latencies"])
        print(f"[stdio pod] session open (initialize, starts uvx) {seen['initialize'] * 1000:.0f} ms; "
              f"get_current_time p50 {statistics.median(latencies) * 1000:.1f} ms, "
              f"max {latencies[-1] * 1000:.1f} ms over {len(latencies)} calls", file=sys.stderr)

        def app_logs() -> str:
            return cluster.kubectl("-n", ns, "logs", server.pod()["metadata"]["name"], "-c", "mcp-server").stdout

        before = _sessions(STARTED, app_logs())
        answers, during = anyio.run(_two_sessions, url, token, app_logs)
        assert all(a["timezone"] == "UTC" for a in answers), answers
        opened = {tag: pid for tag, pid in _sessions(STARTED, during).items() if tag not in before}
        assert len(opened) == 2 and len(set(opened.values())) == 2, during[-3000:]  # two processes, two pids
        # the clients' DELETE ends each session, and its process with it
        cluster.wait_for("both sessions' processes to stop", lambda: set(opened) <= set(_sessions(STOPPED, app_logs())),
                         timeout=30)

        # a session left open when the pod stops: the bridge (PID 1) gets SIGTERM and stops its process
        left_open = _initialize(url, token)
        pod = server.pod()["metadata"]["name"]
        follow = subprocess.Popen([str(cluster.kubectl_bin), "--kubeconfig", str(cluster.kubeconfig), "-n", ns, "logs",
                                   "-f", pod, "-c", "mcp-server"], stdout=subprocess.PIPE, text=True)
        deleting = time.monotonic()
        cluster.kubectl("-n", ns, "delete", "pod", pod, "--wait=true", timeout=90)
        stopped_in = time.monotonic() - deleting
        final = follow.communicate(timeout=30)[0]
        assert left_open[:8] in _sessions(STOPPED, final), final[-3000:]
        assert "Finished server process" in final, final[-3000:]
        assert stopped_in < 20, stopped_in  # well inside the 30s grace period: nothing waited for SIGKILL
        print(f"[stdio pod] pod with an open session deleted in {stopped_in:.1f}s", file=sys.stderr)
        cluster.kubectl("-n", ns, "delete", "mcpservers", "--all", "--timeout=60s", timeout=90)


def _rpc(url: str, token: str, session: str, message: dict[str, Any]) -> httpx.Response:
    return httpx.post(url, json=message, timeout=60, headers={
        "Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
        "Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-06-18"})


def _answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC answer of a POST (a JSON body, or the `data:` line of an SSE one)."""
    text = response.text
    data = next((line[5:] for line in text.splitlines() if line.startswith("data:")), text)
    answer: dict[str, Any] = json.loads(data)
    return answer


def _open(url: str, token: str) -> tuple[httpx.Response, str | None]:
    """A session opened by hand and left open: initialize, then the initialized notification."""
    answer = httpx.post(url, timeout=60, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "held", "version": "1"}}},
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"})
    session = answer.headers.get("mcp-session-id")
    if answer.status_code == 200 and session:
        _rpc(url, token, session, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    return answer, session


def test_a_stdio_pod_at_its_memory_limit_refuses_a_session_instead_of_being_oom_killed(
        kube_pods_cluster: KubeCluster, platform_crds: list[str], kube_namespace: str, jwks_namespace: str,
        kube_platform_image: str, kube_time_image: str, tmp_path: Path) -> None:
    """Every session is a process: under a 256Mi limit a few `uvx` servers fill the container. Without the
    bridge's memory check the next one got the container OOM-killed, ending every session in it (seen on this
    cluster under the team namespaces' default 512Mi at the 8th session). Now that session gets a 503 that
    says why, the open ones go on, and ending one makes room again. Six clients arrive at once: sessions still
    starting count at the average, so the burst does not overshoot the limit either."""
    cluster, ns = kube_pods_cluster, kube_namespace
    log = tmp_path / "operator.log"
    with operator_process(cluster, [ns, jwks_namespace], jwks_namespace, log, kube_platform_image):
        server = PodServer(cluster, ns, jwks_namespace, kube_time_image, name=NAME, tools=TIME_TOOLS,
                           granted=("get_current_time",), stdio={"package": TIME_PACKAGE},
                           resources={"limits": {"memory": "256Mi"}, "requests": {"memory": "256Mi"}})
        server.apply_all()
        server.wait_ready(log)
        url, token = server.url(), server.token()
        # six clients at once against the fresh pod: starting sessions count too, so the burst cannot overshoot
        with ThreadPoolExecutor(6) as pool:
            opened = list(pool.map(lambda _: _open(url, token), range(6)))
        held = [session for answer, session in opened if answer.status_code == 200 and session]
        refusals = [answer for answer, _ in opened if answer.status_code != 200]
        assert held and refusals and {r.status_code for r in refusals} == {503}, [(a.status_code, a.text)
                                                                                for a, _ in opened]
        message = _answer(refusals[0])["error"]["message"]
        assert "Not enough memory for another server process" in message, message
        print(f"\n[stdio pod] 256Mi limit, 6 clients at once: {len(held)} sessions open, {len(refusals)} refused: "
              f"{message}", file=sys.stderr)
        statuses = {s["name"]: s for s in server.pod()["status"]["containerStatuses"]}
        assert statuses["mcp-server"]["restartCount"] == 0, statuses["mcp-server"]  # not OOM-killed
        for session in held:  # the open sessions go on
            call = _rpc(url, token, session, {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                "name": "get_current_time", "arguments": {"timezone": "UTC"}}})
            assert call.status_code == 200 and "UTC" in _answer(call)["result"]["content"][0]["text"], call.text
        ended = httpx.delete(url, timeout=30, headers={"Authorization": f"Bearer {token}",
                                                       "Mcp-Session-Id": held[-1]})
        assert ended.status_code < 300, ended.text
        cluster.wait_for("a new session to fit again after one ended",
                         lambda: _open(url, token)[0].status_code == 200, timeout=60, interval=1)
        cluster.kubectl("-n", ns, "delete", "mcpservers", "--all", "--timeout=60s", timeout=90)
