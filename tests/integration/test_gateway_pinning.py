"""Tool-definition pinning through the real gateway, with a real MCP server (official Python SDK) whose
tools change between runs, and the official SDK client: what a user of an MCP client would notice."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from fixtures.gateway import NAMESPACE, SERVER, EchoUpstream, PolicyKit, serve_app, serve_gateway
from fixtures.servers import REPO_ROOT, RunningServer, run_server_process
from mcp_runtime.gateway import Gateway, GatewayRoute, InProcessPolicySource
from mcp_runtime.gateway.credentials import SessionCredentials
from mcp_runtime.gateway.pinning import DriftReport
from mcp_runtime.policy.pinning import PinState
from mcp_runtime.resources import MCPServer
from mcp_runtime.resources.pinning import ToolPin
from mcp_runtime.runtime.discovery import discover_tools_sync

DRIFTING = REPO_ROOT / "tests" / "fixtures" / "drifting_server.py"


@contextlib.contextmanager
def drifting_server(variant: str, *, extra_tool: bool = False) -> Iterator[RunningServer]:
    env = {"TOOL_VARIANT": variant, "EXTRA_TOOL": "1" if extra_tool else "0"}
    with run_server_process([sys.executable, str(DRIFTING)], cwd=DRIFTING.parent, env=env) as server:
        yield server


def reviewed_pins() -> dict[str, dict[str, Any]]:
    """What `server init --from-server` pins: the tools as the reviewed server lists them."""
    with drifting_server("reviewed") as server:
        return {t.name: ToolPin.of(t.definition).to_wire() for t in discover_tools_sync(server.url)}


class PinnedKit(PolicyKit):
    """The drifting server's metadata: its tools with their pins, a pinning mode."""

    def __init__(self, pins: dict[str, dict[str, Any]], mode: str = "enforce") -> None:
        super().__init__()
        self.pins, self.pin_mode = dict(pins), mode
        self.grant("g-cursor", "cursor").session("s-cursor", "cursor")

    def server(self) -> MCPServer:
        tools = [{"name": n, "sideEffect": "read", **({"pin": self.pins[n]} if n in self.pins else {})}
                 for n in ("lookup", "greet", "export_all")]
        return MCPServer.model_validate({
            "metadata": {"name": SERVER, "namespace": NAMESPACE},
            "spec": {"image": "acme/drifting", "tools": tools, "pinning": {"mode": self.pin_mode}}})


async def _session(url: str, token: str, body: Any) -> Any:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        return await body(session)


def listed(url: str, kit: PinnedKit, token: str | None = None) -> list[str]:
    async def body(session: ClientSession) -> list[str]:
        return sorted(t.name for t in (await session.list_tools()).tools)
    return anyio.run(_session, url, token or kit.token("s-cursor", "cursor"), body)  # type: ignore[no-any-return]


def call(url: str, kit: PinnedKit, tool: str, arguments: dict[str, Any], token: str | None = None) -> Any:
    """The tool's text, or the denial's JSON-RPC error (`token`: another session's than s-cursor's)."""
    async def body(session: ClientSession) -> Any:
        try:
            result = await session.call_tool(tool, arguments)
        except MCPError as exc:
            return exc.error
        return result.content[0].text
    return anyio.run(_session, url, token or kit.token("s-cursor", "cursor"), body)


@pytest.fixture(scope="module")
def pins() -> dict[str, dict[str, Any]]:
    return reviewed_pins()


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_reviewed_tools_work_as_before(pins: dict[str, dict[str, Any]]) -> None:
    kit = PinnedKit(pins)
    with drifting_server("reviewed") as upstream, serve_gateway(upstream.url, kit) as (url, _gateway):
        assert listed(url, kit) == ["greet", "lookup"]
        assert call(url, kit, "lookup", {"customer_id": "c1"}) == "customer c1"


@pytest.mark.parametrize("variant", ["poisoned", "schema"])
def test_a_changed_tool_disappears_is_denied_and_comes_back_when_approved(
        pins: dict[str, dict[str, Any]], variant: str) -> None:
    kit = PinnedKit(pins)
    reports: list[DriftReport] = []
    source = InProcessPolicySource(kit.document())
    with drifting_server(variant) as upstream, \
            serve_gateway(upstream.url, kit, source=source) as (url, gateway):
        gateway.drift_listener = reports.append
        # the gateway's own listing at load (or this first list) finds the drift
        assert listed(url, kit) == ["greet"]
        denied = call(url, kit, "lookup", {"customer_id": "c1"})
        assert denied.code == -32001
        assert denied.data["reason"] == "tool_definition_changed"
        assert "server tools approve" in denied.message
        assert call(url, kit, "greet", {"name": "ann"}) == "hello ann"  # the unchanged tool is untouched
        wait_for(lambda: any(r.drift for r in reports))
        drift = next(r for r in reports if r.drift).drift
        assert [(d.name, d.state) for d in drift] == [("lookup", PinState.changed)]
        seen = next(r for r in reports if r.drift).tools["lookup"]["definition"]
        if variant == "poisoned":
            assert "id_rsa" in seen["description"]
        else:
            assert "include_notes" in seen["inputSchema"]["properties"]

        # an owner approves what the gateway saw: the new pin is pushed, and the tool is back
        kit.pins["lookup"] = ToolPin.of(seen).to_wire()
        started = time.perf_counter()
        source.push(kit.document())
        assert call(url, kit, "lookup", {"customer_id": "c2"}) == "customer c2"
        took = time.perf_counter() - started
        assert listed(url, kit) == ["greet", "lookup"]
        wait_for(lambda: reports[-1].drift == [])
        print(f"approve took effect (push to allowed call, client session included) in {took * 1000:.1f} ms")


def test_the_gateway_finds_drift_before_any_client_asks(pins: dict[str, dict[str, Any]]) -> None:
    kit = PinnedKit(pins)
    reports: list[DriftReport] = []
    source = InProcessPolicySource()
    with drifting_server("poisoned") as upstream, \
            serve_gateway(upstream.url, kit, source=source) as (url, gateway):
        gateway.drift_listener = reports.append
        source.push(kit.document())  # a policy with pins loads: the gateway lists the tools itself
        wait_for(lambda: any(r.drift for r in reports))
        assert [d.name for d in reports[-1].drift] == ["lookup"]
        # a client that calls without listing first is judged on what the gateway saw
        assert call(url, kit, "lookup", {"customer_id": "c1"}).data["reason"] == "tool_definition_changed"


def test_warn_mode_lets_a_changed_tool_through_but_reports_it(pins: dict[str, dict[str, Any]]) -> None:
    kit = PinnedKit(pins, mode="warn")
    reports: list[DriftReport] = []
    source = InProcessPolicySource()
    with drifting_server("poisoned") as upstream, \
            serve_gateway(upstream.url, kit, source=source) as (url, gateway):
        gateway.drift_listener = reports.append
        source.push(kit.document())
        assert listed(url, kit) == ["greet", "lookup"]
        assert call(url, kit, "lookup", {"customer_id": "c1"}) == "customer c1"
        wait_for(lambda: any(r.drift for r in reports))
        assert [(d.name, d.state) for d in reports[-1].drift] == [("lookup", PinState.changed)]


def test_a_new_unpinned_tool_is_hidden_and_denied(pins: dict[str, dict[str, Any]]) -> None:
    kit = PinnedKit(pins)  # export_all is declared (side effect read) but nobody pinned it
    with drifting_server("reviewed", extra_tool=True) as upstream, serve_gateway(upstream.url, kit) as (url, _g):
        assert listed(url, kit) == ["greet", "lookup"]
        denied = call(url, kit, "export_all", {})
        assert denied.data["reason"] == "tool_not_pinned"


def test_off_mode_and_unreviewed_servers_are_not_checked(pins: dict[str, dict[str, Any]]) -> None:
    for kit in (PinnedKit(pins, mode="off"), PinnedKit({})):
        with drifting_server("poisoned", extra_tool=True) as upstream, \
                serve_gateway(upstream.url, kit) as (url, _gateway):
            assert listed(url, kit) == ["export_all", "greet", "lookup"]
            assert call(url, kit, "lookup", {"customer_id": "c1"}) == "customer c1"


def test_the_gateway_lists_again_on_its_own_and_sees_a_restarted_server_change(
        pins: dict[str, dict[str, Any]]) -> None:
    kit = PinnedKit(pins)
    reports: list[DriftReport] = []
    source = InProcessPolicySource()
    with drifting_server("reviewed") as before, drifting_server("poisoned") as after, \
            serve_gateway(before.url, kit, source=source) as (_url, gateway):
        gateway.drift_listener = reports.append
        gateway.probe_interval = 0.2
        source.push(kit.document())
        wait_for(lambda: bool(reports) and "lookup" in reports[-1].tools)
        assert reports[-1].drift == []
        bound = next(iter(gateway.routes))
        bound.config.upstream = after.url  # the server came back changed; no client lists its tools
        wait_for(lambda: bool(reports[-1].drift))
        assert [(d.name, d.state) for d in reports[-1].drift] == [("lookup", PinState.changed)]


def test_a_remote_with_only_each_callers_credential_is_not_listed_by_the_gateway_itself(
        pins: dict[str, dict[str, Any]]) -> None:
    """A remote whose credential is each caller's own (`sessionToken`): the gateway has none of its own, so
    its own listing would only send the remote unauthenticated requests (seen in CI: an extra request in
    the remote's log); a route with a credential of its own is listed at once (the control)."""
    kit = PinnedKit(pins)
    per_caller, own = EchoUpstream(), EchoUpstream()
    with serve_app(per_caller) as per_caller_url, serve_app(own) as own_url:
        routes = [GatewayRoute(upstream=per_caller_url + "/mcp", policy=InProcessPolicySource(kit.document()),
                               keys=kit.keyring.public_keys(), path="/per-caller/mcp",
                               session_credentials=SessionCredentials("X-API-Key")),
                  GatewayRoute(upstream=own_url + "/mcp", policy=InProcessPolicySource(kit.document()),
                               keys=kit.keyring.public_keys(), path="/own/mcp", upstream_header=("X-API-Key", "k"))]
        with serve_app(Gateway(routes)):
            wait_for(lambda: bool(own.requests))
            time.sleep(1.0)  # the first probe goes at once, its retries after 0.5 s and 1 s
            assert per_caller.requests == []
