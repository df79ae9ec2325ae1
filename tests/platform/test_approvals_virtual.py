"""Human approval of a call made through a virtual server (`/v/<name>/mcp`): the member's policy says the
tool needs approval, so the call waits, exactly as on the member's own route, and never reaches the
member without a person's yes.

A real gateway with the platform's pending approvals in process (as in `mcp-runtime up`), a real member
(the data-utility example, `reverse` destructive: the caller approves; `upper`: the owners do) behind a
virtual server, and the official MCP SDK client: with the elicitation capability it is asked on the call's
own stream; without it the call waits as a pending approval that the owner decides through the API. The
client cancelling a waiting call (`notifications/cancelled`, in the same virtual session) ends the wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from dashboard_support import serve_site
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from platform_support import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORDS, platform_settings
from test_approvals_oob import NS, SERVER, Kit, analytics_reasons
from test_approvals_oob import World as OobWorld
from test_dashboard import _api, _token

from fixtures.gateway import PolicyKit, serve_app, virtual_session
from fixtures.servers import run_data_utility_server
from mcp_runtime.compose.approvals import InProcessApprovals
from mcp_runtime.gateway import Gateway, GatewayRoute, InProcessPolicySource
from mcp_runtime.gateway.virtual.endpoint import VirtualRoute
from mcp_runtime.policy import PolicyDocument, compile_policy
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPVirtualServer
from mcp_runtime.sentinel.emitter import Emitter
from mcp_runtime.sentinel.store import UsageFilter
from mcp_runtime.store.sql import sqlite_url

VIRTUAL = "toolbox"


class VirtualKit(Kit):
    """The member's document with the virtual server's session compiled in (as the platform does)."""

    def document(self) -> PolicyDocument:
        super().document()  # points the fixture's grants and sessions at the member
        return compile_policy(self.server(), [MCPAccessGrant.model_validate(g) for g in self.grants],
                              [MCPAgentSession.model_validate(s) for s in self.sessions],
                              [virtual_session(namespace=NS, virtual=VIRTUAL)])


@dataclass
class World(OobWorld):
    gateway: Gateway | None = None

    @property
    def token(self) -> str:
        return PolicyKit.token(self.kit, "vs-cursor", "cursor", server=VIRTUAL, namespace=NS)

    def owner(self) -> str:
        return _token(self.site, "alice@acme.com", PASSWORDS["alice@acme.com"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("virtual-approvals")
    (base / "data").mkdir()
    kit = VirtualKit()
    kit.grant("g-cursor", "cursor", tools=["echo", "reverse", "upper"]).session("s-cursor", "cursor")
    with serve_site(platform_settings(base / "data", sqlite_url(base / "data"))) as site, \
            run_data_utility_server(json_response=True) as upstream:
        admin = _token(site, ADMIN_EMAIL, ADMIN_PASSWORD)
        _api(site, admin, "POST", "/teams", {"slug": "acme", "name": "Acme Corp"})
        _api(site, admin, "POST", "/teams/acme/users",
             {"username": "alice@acme.com", "password": PASSWORDS["alice@acme.com"], "role": "owner"})
        source = InProcessPolicySource(kit.document())
        keys = kit.keyring.public_keys()
        emitter = Emitter(ingest_url=f"{site.url}/api/v1/ingest/events", api_key=site.platform.ingest_keys.local_key,
                          spool_path=base / "spool")
        gateway = Gateway([GatewayRoute(upstream=upstream.url, policy=source, keys=keys, server=SERVER,
                                        namespace=NS)], emitter=emitter)
        gateway.request_path.approvals = InProcessApprovals(site.platform.approvals)
        spec = MCPVirtualServer.model_validate({"metadata": {"name": VIRTUAL, "namespace": NS}, "spec": {
            "members": [{"serverRef": {"name": SERVER}, "prefix": "u_"}]}})
        anyio.run(gateway.add_virtual, VirtualRoute(spec, keys))
        with serve_app(gateway) as gateway_url:
            yield World(site, f"{gateway_url}/v/{VIRTUAL}/mcp", kit, source, Path(base / "config"), upstream.url,
                        gateway)


Asked = list[types.ElicitRequestParams]


def call(world: World, tool: str, arguments: dict[str, Any], answer: str | None = None,
         asked: Asked | None = None) -> str:
    """The tool's text, or the denial's reason (with `virtualServer` checked); `answer` None: the client does
    not declare elicitation, else it answers the question so."""
    async def on_elicit(_context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        (asked if asked is not None else []).append(params)
        return types.ElicitResult(action=answer)  # type: ignore[arg-type]

    async def run() -> str:
        callbacks: dict[str, Any] = {"elicitation_callback": on_elicit} if answer is not None else {}
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {world.token}"}) as http, \
                streamable_http_client(world.url, http_client=http) as (read, write), \
                ClientSession(read, write, **callbacks) as session:
            await session.initialize()
            try:
                result = await session.call_tool(tool, arguments)
            except MCPError as exc:
                assert exc.error.data["virtualServer"] == VIRTUAL
                return str(exc.error.data["reason"])
            return str(result.content[0].text)  # type: ignore[union-attr]

    return anyio.run(run)


def in_background(world: World, tool: str, arguments: dict[str, Any]) -> Callable[[], str]:
    pool = ThreadPoolExecutor(1)
    future = pool.submit(call, world, tool, arguments)
    pool.shutdown(wait=False)
    return lambda: future.result(timeout=60)


def test_a_call_through_the_virtual_server_waits_for_the_owner_and_runs_only_once_approved(world: World) -> None:
    result = in_background(world, "u_reverse", {"text": "stressed"})
    [row] = world.pending("reverse")
    # bound to the member, the exact arguments, and the caller's virtual-server session
    assert (row["namespace"], row["server"], row["arguments"]) == (NS, SERVER, '{"text":"stressed"}')
    assert row["caller"]["sessionID"] == f"{NS}/vs-cursor" and row["caller"]["humanID"] == "bob@globex.com"
    time.sleep(0.3)
    assert world.pending("reverse") == [row]  # still waiting: nothing ran without the approval
    _api(world.site, world.owner(), "POST", f"/runtime/approvals/{row['id']}/approve")
    assert result() == "desserts"
    # the decision is the member's analytics event of the call, marked as made through the virtual server
    assert "approved" in analytics_reasons(world, {"text": "stressed"}, "approved")
    events = world.site.platform.events.recent(UsageFilter(server=SERVER), limit=500)
    assert any(e.reason == "approved" and e.virtual_server == f"{NS}/{VIRTUAL}" for e in events)
    audit = world.site.platform.store.list_audit(limit=50, kind="Approval")
    assert any(e.action == "approval_approved" and e.after["id"] == row["id"] for e in audit)


def test_denied_or_unanswered_calls_through_the_virtual_server_never_run(world: World) -> None:
    owners_tool = in_background(world, "u_upper", {"text": "abc"})
    [row] = world.pending("upper")
    assert row["approver"] == "owners"
    _api(world.site, world.owner(), "POST", f"/runtime/approvals/{row['id']}/deny")
    assert owners_tool() == "approval_denied"

    world.kit.timeout = "1s"
    world.source.push(world.kit.document())
    try:
        assert call(world, "u_reverse", {"text": "late"}) == "approval_timeout"
    finally:
        world.kit.timeout = "30s"
        world.source.push(world.kit.document())


def test_the_caller_is_asked_by_elicitation_through_the_virtual_server(world: World) -> None:
    asked: Asked = []
    assert call(world, "u_reverse", {"text": "stressed"}, "accept", asked) == "desserts"
    [question] = asked
    assert f"Server: {SERVER}" in question.message and "Tool: reverse" in question.message
    assert '{"text":"stressed"}' in question.message
    assert call(world, "u_reverse", {"text": "drawer"}, "decline") == "approval_declined"
    assert call(world, "u_reverse", {"text": "drawer"}, "cancel") == "approval_declined"
    assert not world.site.platform.approvals.pending()  # nothing waited out of band
    # the owners' approval is never the caller's to give: asked out of band even of an eliciting client
    owners_tool = in_background(world, "u_upper", {"text": "xyz"})
    [row] = world.pending("upper")
    _api(world.site, world.owner(), "POST", f"/runtime/approvals/{row['id']}/approve")
    assert owners_tool() == "XYZ"


def test_the_caller_going_away_withdraws_the_approval(world: World) -> None:
    initialize = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    headers = {"Authorization": f"Bearer {world.token}", "Accept": "application/json, text/event-stream"}
    opened = httpx.post(world.url, json=initialize, headers=headers, timeout=30)
    headers["Mcp-Session-Id"] = opened.headers["mcp-session-id"]
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(world.url, headers=headers, timeout=1.0, json={
            "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "u_reverse",
                                                                          "arguments": {"text": "gone"}}})
    deadline = time.monotonic() + 10
    mine: list[Any] = []
    while not mine and time.monotonic() < deadline:
        mine = [a for a in world.site.platform.approvals.decided() if a.call.arguments == '{"text":"gone"}']
        time.sleep(0.05)
    assert [a.status for a in mine] == ["cancelled"]


def test_without_an_approval_channel_the_call_is_refused(world: World) -> None:
    """A gateway without the platform's approvals (no broker) fails closed: `approval_unavailable`."""
    assert world.gateway is not None
    broker, world.gateway.request_path.approvals = world.gateway.request_path.approvals, None
    try:
        assert call(world, "u_reverse", {"text": "x"}) == "approval_unavailable"
    finally:
        world.gateway.request_path.approvals = broker
    assert call(world, "u_echo", {"text": "x"}) == "x"  # a call that needs no approval never waits


def decided(world: World, arguments: str) -> list[Any]:
    deadline = time.monotonic() + 10
    mine: list[Any] = []
    while not mine and time.monotonic() < deadline:
        mine = [a for a in world.site.platform.approvals.decided() if a.call.arguments == arguments]
        time.sleep(0.05)
    return mine


async def cancelled_call(world: World, arguments: dict[str, Any], elicit: bool) -> tuple[set[str], str]:
    """Call `u_reverse` with the official SDK client and cancel the call (its cancel scope: the SDK sends
    `notifications/cancelled`) once it waits; the call's analytics reasons, taken while the client is still
    connected (so not the disconnect's doing), and then `u_echo`'s answer in the same session."""
    asked, withdrawn = anyio.Event(), anyio.Event()

    async def on_elicit(_context: Any, _params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.set()
        try:
            await anyio.sleep(30)  # nobody answers: only the cancellation ends the wait
        except anyio.get_cancelled_exc_class():
            withdrawn.set()  # the gateway withdrew its question too
            raise
        return types.ElicitResult(action="accept")

    async def waits() -> None:
        if elicit:
            await asked.wait()
        else:
            await anyio.to_thread.run_sync(world.pending, "reverse")

    callbacks: dict[str, Any] = {"elicitation_callback": on_elicit} if elicit else {}
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {world.token}"}) as http, \
            streamable_http_client(world.url, http_client=http) as (read, write), \
            ClientSession(read, write, **callbacks) as session:
        await session.initialize()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tasks:
                async def cancel_once_waiting() -> None:
                    await waits()
                    scope.cancel()
                tasks.start_soon(cancel_once_waiting)
                await session.call_tool("u_reverse", arguments)
        assert scope.cancelled_caught
        reasons = await anyio.to_thread.run_sync(analytics_reasons, world, arguments, "approval_cancelled")
        if elicit:
            with anyio.fail_after(2):
                await withdrawn.wait()
        return reasons, str((await session.call_tool("u_echo", {"text": "on"})).content[0].text)  # type: ignore[union-attr]


@pytest.mark.parametrize("elicit", [False, True], ids=["out-of-band", "elicitation"])
def test_the_client_cancelling_a_waiting_call_through_the_virtual_server_ends_it(world: World, elicit: bool) -> None:
    text = f"cancel-{'asked' if elicit else 'pending'}"
    started = time.monotonic()
    reasons, after = anyio.run(cancelled_call, world, {"text": text}, elicit)
    assert reasons == {"approval_cancelled"} and after == "on"  # the session goes on
    assert time.monotonic() - started < 20  # not the policy's approvalTimeout (30 s)
    if not elicit:
        assert [a.status for a in decided(world, f'{{"text":"{text}"}}')] == ["cancelled"]
    assert not world.site.platform.approvals.pending()
    events = world.site.platform.events.recent(UsageFilter(server=SERVER), limit=500)
    assert any(e.reason == "approval_cancelled" and e.virtual_server == f"{NS}/{VIRTUAL}" for e in events)


def test_a_cancellation_from_another_virtual_session_or_caller_ends_nobodys_wait(world: World) -> None:
    initialize = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}

    def session() -> dict[str, str]:
        headers = {"Authorization": f"Bearer {world.token}", "Accept": "application/json, text/event-stream"}
        headers["Mcp-Session-Id"] = httpx.post(world.url, json=initialize, headers=headers,
                                               timeout=30).headers["mcp-session-id"]
        return headers

    mine, other = session(), session()
    pool = ThreadPoolExecutor(1)
    waiting = pool.submit(httpx.post, world.url, headers=mine, timeout=60, json={
        "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "u_reverse",
                                                                     "arguments": {"text": "bound"}}})
    pool.shutdown(wait=False)
    [row] = world.pending("reverse")
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
    assert httpx.post(world.url, headers=other, json=cancel, timeout=10).status_code == 202  # same caller
    stranger = PolicyKit.token(world.kit, "vs-mallory", "cursor", server=VIRTUAL, namespace=NS)
    refused = httpx.post(world.url, json=cancel, timeout=10,
                         headers={**mine, "Authorization": f"Bearer {stranger}"})  # another caller, my session
    assert refused.status_code == 404
    time.sleep(0.3)
    assert not waiting.done() and [r["id"] for r in world.pending("reverse")] == [row["id"]]
    assert httpx.post(world.url, headers=mine, json=cancel, timeout=10).status_code == 202
    answer = waiting.result(timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text == ""  # MCP: a cancelled request gets no answer
    assert [a.status for a in decided(world, '{"text":"bound"}')] == ["cancelled"]
