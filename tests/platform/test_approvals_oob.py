"""Out-of-band approval, end to end: a real gateway (with the platform's pending approvals in process, as
in `mcp-runtime up`), a real MCP server (the data-utility example), the platform API and the CLI.

A call that needs approval waits in the gateway as a pending approval bound to the digest of its exact
arguments, its caller and its session. `access approvals list|approve|deny` decides it; approving one call
never lets another (other arguments) run; nobody deciding is `approval_timeout`; the caller going away,
or their client cancelling the call (`notifications/cancelled`), cancels it; of two approvers racing, one
wins and the other hears "already decided"; every decision is in the audit log and the call's analytics
event carries the outcome.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from dashboard_support import LiveSite, serve_site
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from platform_support import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORDS, platform_settings
from test_dashboard import _api, _token

from fixtures.cli import run_cli
from fixtures.gateway import TOOLS, PolicyKit, serve_app
from fixtures.servers import run_data_utility_server
from mcp_runtime.compose.approvals import InProcessApprovals
from mcp_runtime.gateway import Gateway, GatewayRoute, InProcessPolicySource
from mcp_runtime.gateway.approval_client import HttpApprovals
from mcp_runtime.resources import MCPServer
from mcp_runtime.resources.approval import arguments_digest
from mcp_runtime.sentinel.emitter import Emitter
from mcp_runtime.sentinel.store import UsageFilter
from mcp_runtime.store.sql import sqlite_url

NS = "mcp-team-acme"
SERVER = "utility"
# reverse: destructive, so the caller's approval (out of band: these callers do not elicit);
# upper: its metadata asks for the owners' approval
APPROVAL_TOOLS = [{**t, "sideEffect": "destructive"} if t["name"] == "reverse" else
                  {**t, "requiresApproval": True, "approver": "owners"} if t["name"] == "upper" else t for t in TOOLS]


class Kit(PolicyKit):
    timeout = "30s"

    def server(self) -> MCPServer:
        return MCPServer.model_validate({
            "metadata": {"name": SERVER, "namespace": NS},
            "spec": {"image": "acme/utility", "tools": APPROVAL_TOOLS, "policy": {"approvalTimeout": self.timeout}}})

    def document(self) -> Any:
        for resource in (*self.grants, *self.sessions):  # the fixture's grants name its own server
            resource["metadata"]["namespace"], resource["spec"]["serverRef"] = NS, {"name": SERVER}
        return super().document()

    def token(self, session: str, agent: str, **kw: Any) -> str:  # type: ignore[override]
        return super().token(session, agent, server=SERVER, namespace=NS, **kw)


@dataclass
class World:
    site: LiveSite
    url: str
    kit: Kit
    source: InProcessPolicySource
    config_dir: Path
    upstream: str

    def cli(self, *args: str, profile: str = "", ok: bool = True) -> Any:
        done = run_cli(list(args), env={"MCP_RUNTIME_CONFIG_DIR": str(self.config_dir),
                                        "MCP_PLATFORM_API_PROFILE": profile})
        assert (done.returncode == 0) == ok, done.stdout + done.stderr
        return done

    def pending(self, tool: str, count: int = 1) -> list[dict[str, Any]]:
        """The pending approvals of `tool` once `count` of them wait (as the owner sees them)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = [a.to_json() for a in self.site.platform.approvals.pending() if a.call.tool == tool]
            if len(rows) >= count:
                return rows
            time.sleep(0.05)
        raise AssertionError(f"no pending approval of {tool}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("approvals")
    (base / "data").mkdir()
    kit = Kit()
    kit.grant("g-cursor", "cursor", tools=["echo", "reverse", "upper"]).session("s-cursor", "cursor")
    kit.grant("g-claude", "claude", tools=["reverse"]).session("s-claude", "claude", human="dave@globex.com")
    with serve_site(platform_settings(base / "data", sqlite_url(base / "data"))) as site, \
            run_data_utility_server(json_response=True) as upstream:
        admin = _token(site, ADMIN_EMAIL, ADMIN_PASSWORD)
        _api(site, admin, "POST", "/teams", {"slug": "acme", "name": "Acme Corp"})
        for email, role in (("alice@acme.com", "owner"), ("carol@acme.com", "member")):
            _api(site, admin, "POST", "/teams/acme/users",
                 {"username": email, "password": PASSWORDS[email], "role": role})
        emitter = Emitter(ingest_url=f"{site.url}/api/v1/ingest/events", api_key=site.platform.ingest_keys.local_key,
                          spool_path=base / "spool")
        source = InProcessPolicySource(kit.document())
        gateway = Gateway([GatewayRoute(upstream=upstream.url, policy=source, keys=kit.keyring.public_keys(),
                                        path="/mcp")], emitter=emitter)
        gateway.request_path.approvals = InProcessApprovals(site.platform.approvals)
        with serve_app(gateway) as gateway_url:
            world = World(site, gateway_url + "/mcp", kit, source, base / "config", upstream.url)
            for email, profile in (("alice@acme.com", "alice"), ("carol@acme.com", "carol")):
                world.cli("auth", "login", "--api-url", site.url, "--email", email, "--password", PASSWORDS[email],
                          "--profile", profile)
            yield world


def analytics_reasons(world: World, arguments: dict[str, Any], reason: str) -> set[str]:
    """The reasons of the analytics events of calls with `arguments`, once one says `reason` (20 s at most)."""
    digest = arguments_digest(arguments).removeprefix("sha256:")
    deadline = time.monotonic() + 20
    reasons: set[str] = set()
    while time.monotonic() < deadline and reason not in reasons:
        events = world.site.platform.events.recent(UsageFilter(server=SERVER), limit=500)
        reasons = {e.reason for e in events if e.arguments_digest == digest and e.reason}
        time.sleep(0.1)
    return reasons


class Caller:
    """A raw MCP client (no elicitation capability): initialize, then one tool call per `call`."""

    def __init__(self, world: World, session: str = "s-cursor", agent: str = "cursor", **token: Any) -> None:
        self.url = world.url
        self.headers = {"Authorization": f"Bearer {world.kit.token(session, agent, **token)}",
                        "Accept": "application/json, text/event-stream"}
        answer = httpx.post(self.url, headers=self.headers, timeout=30, json={
            "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        assert answer.status_code == 200, answer.text
        self.headers["Mcp-Session-Id"] = answer.headers["mcp-session-id"]
        httpx.post(self.url, headers=self.headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call(self, tool: str, arguments: dict[str, Any], timeout: float = 60) -> str:
        """The tool's text, or the reason of the denial."""
        answer = httpx.post(self.url, headers=self.headers, timeout=timeout, json={
            "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
        body = answer.json()
        if "error" in body:
            return str(body["error"]["data"]["reason"])
        return str(body["result"]["content"][0]["text"])

    def in_background(self, tool: str, arguments: dict[str, Any]) -> Callable[[], str]:
        pool = ThreadPoolExecutor(1)
        future = pool.submit(self.call, tool, arguments)
        pool.shutdown(wait=False)
        return lambda: future.result(timeout=60)


def test_the_cli_lists_and_approves_exactly_that_call(world: World) -> None:
    caller = Caller(world)
    result = caller.in_background("reverse", {"text": "stressed"})
    [row] = world.pending("reverse")
    listed = world.cli("access", "approvals", "list", profile="alice").stdout
    assert row["id"] in listed and "reverse" in listed and '{"text":"stressed"}' in listed and "caller" in listed
    shown = json.loads(world.cli("access", "approvals", "list", "-o", "json", profile="alice").stdout)
    assert [a["argumentsDigest"] for a in shown if a["id"] == row["id"]] == [row["argumentsDigest"]]
    assert shown[0]["caller"]["humanID"] == "bob@globex.com" and shown[0]["caller"]["sessionID"] == "s-cursor"
    # a team member sees nothing to decide and may not decide it
    assert "no calls are waiting" in world.cli("access", "approvals", "list", profile="carol").stdout
    refused = world.cli("access", "approvals", "approve", row["id"], profile="carol", ok=False)
    assert "owners" in refused.stderr or "not" in refused.stderr
    approved = world.cli("access", "approvals", "approve", row["id"], profile="alice").stdout
    assert "approved" in approved
    assert result() == "desserts"
    again = world.cli("access", "approvals", "deny", row["id"], profile="alice", ok=False)
    assert "already decided: approved by alice@acme.com" in again.stderr
    audit = world.site.platform.store.list_audit(limit=50, kind="Approval")
    assert any(e.action == "approval_approved" and e.actor == "alice@acme.com" and e.after["id"] == row["id"]
               for e in audit)
    assert "approved" in analytics_reasons(world, {"text": "stressed"}, "approved")  # the call's event


def test_an_approval_never_applies_to_other_arguments_or_another_caller(world: World) -> None:
    bob, dave = Caller(world), Caller(world, "s-claude", "claude", human="dave@globex.com")
    first = bob.in_background("reverse", {"text": "drawer"})
    world.pending("reverse", 1)
    second = bob.in_background("reverse", {"text": "live"})
    third = dave.in_background("reverse", {"text": "drawer"})  # same arguments, another caller
    rows = world.pending("reverse", 3)
    by_args = {(r["arguments"], r["caller"]["sessionID"]): r for r in rows}
    assert len({r["argumentsDigest"] for r in rows}) == 2  # same arguments, same digest ...
    assert len({r["id"] for r in rows}) == 3  # ... but one approval per waiting call
    alice = _token(world.site, "alice@acme.com", PASSWORDS["alice@acme.com"])
    drawer = by_args[('{"text":"drawer"}', "s-cursor")]["id"]
    _api(world.site, alice, "POST", f"/runtime/approvals/{drawer}/approve")
    assert first() == "reward"
    still = {r["id"] for r in world.pending("reverse", 2)}
    assert still == {by_args[('{"text":"live"}', "s-cursor")]["id"], by_args[('{"text":"drawer"}', "s-claude")]["id"]}
    for approval_id in still:
        _api(world.site, alice, "POST", f"/runtime/approvals/{approval_id}/deny")
    assert second() == "approval_denied" and third() == "approval_denied"
    assert analytics_reasons(world, {"text": "live"}, "approval_denied") == {"approval_denied"}


def test_the_owners_approve_what_the_metadata_reserves_for_them(world: World) -> None:
    result = Caller(world).in_background("upper", {"text": "abc"})
    [row] = world.pending("upper")
    assert row["approver"] == "owners"
    alice = _token(world.site, "alice@acme.com", PASSWORDS["alice@acme.com"])
    _api(world.site, alice, "POST", f"/runtime/approvals/{row['id']}/approve")
    assert result() == "ABC"


def test_two_approvers_racing_one_wins_the_other_hears_already_decided(world: World) -> None:
    result = Caller(world).in_background("reverse", {"text": "race"})
    [row] = world.pending("reverse")
    tokens = [_token(world.site, e, p) for e, p in ((ADMIN_EMAIL, ADMIN_PASSWORD),
                                                    ("alice@acme.com", PASSWORDS["alice@acme.com"]))]
    barrier = threading.Barrier(2)

    def decide(token: str, action: str) -> httpx.Response:
        barrier.wait()
        return httpx.post(f"{world.site.url}/api/v1/runtime/approvals/{row['id']}/{action}", timeout=30,
                          headers={"Authorization": f"Bearer {token}"})

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(decide, tokens, ["approve", "deny"]))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 409], [a.text for a in answers]
    loser = next(a for a in answers if a.status_code == 409).json()
    winner = next(a for a in answers if a.status_code == 200).json()
    assert loser["error"] == "already_decided" and f"{winner['status']} by {winner['decidedBy']}" in loser["message"]
    assert result() == ("ecar" if winner["status"] == "approved" else "approval_denied")


def test_nobody_deciding_is_a_timeout(world: World) -> None:
    world.kit.timeout = "1s"
    world.source.push(world.kit.document())
    try:
        started = time.monotonic()
        assert Caller(world).call("reverse", {"text": "late"}) == "approval_timeout"
        assert time.monotonic() - started < 10
    finally:
        world.kit.timeout = "30s"
        world.source.push(world.kit.document())
    decided = world.site.platform.approvals.decided()
    assert any(a.call.arguments == '{"text":"late"}' and a.status == "timeout" for a in decided)
    assert analytics_reasons(world, {"text": "late"}, "approval_timeout") == {"approval_timeout"}


def test_the_caller_going_away_cancels_the_approval(world: World) -> None:
    caller = Caller(world)
    with pytest.raises(httpx.ReadTimeout):
        caller.call("reverse", {"text": "gone"}, timeout=1.0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        mine = [a for a in world.site.platform.approvals.decided() if a.call.arguments == '{"text":"gone"}']
        if mine:
            break
        time.sleep(0.05)
    assert [a.status for a in mine] == ["cancelled"]
    alice = _token(world.site, "alice@acme.com", PASSWORDS["alice@acme.com"])
    late = httpx.post(f"{world.site.url}/api/v1/runtime/approvals/{mine[0].id}/approve", timeout=30,
                      headers={"Authorization": f"Bearer {alice}"})
    assert late.status_code == 409 and "cancelled" in late.json()["message"]
    assert analytics_reasons(world, {"text": "gone"}, "approval_cancelled") == {"approval_cancelled"}
    audit = world.site.platform.store.list_audit(limit=100, kind="Approval")
    assert any(e.action == "approval_cancelled" and e.after["id"] == mine[0].id for e in audit)


def test_a_sidecar_gateway_waits_through_the_api(world: World) -> None:
    """A sidecar (podman, Kubernetes) has no platform in process: it opens the approval with its ingest key
    and long-polls it; the owner's decision reaches the call within that poll."""
    key = world.site.platform.ingest_keys.local_key
    sidecar = Gateway([GatewayRoute(upstream=world.upstream, policy=InProcessPolicySource(world.kit.document()),
                                    keys=world.kit.keyring.public_keys(), path="/mcp")])
    sidecar.request_path.approvals = HttpApprovals(f"{world.site.url}/api/v1/ingest/approvals", key)
    with serve_app(sidecar) as base:
        result = Caller(replace(world, url=base + "/mcp")).in_background("reverse", {"text": "sidecar"})
        [row] = world.pending("reverse")
        alice = _token(world.site, "alice@acme.com", PASSWORDS["alice@acme.com"])
        decided = time.monotonic()
        _api(world.site, alice, "POST", f"/runtime/approvals/{row['id']}/approve")
        assert result() == "racedis"
        assert time.monotonic() - decided < 5  # the long poll answers at once, it does not wait its 20 s
    forged = httpx.post(f"{world.site.url}/api/v1/ingest/approvals", json={}, timeout=10,
                        headers={"Authorization": "Bearer not-a-key"})
    assert forged.status_code == 401


def cancelled_approval(world: World, arguments: str) -> Any:
    """The decided approval of the call with `arguments` (10 s at most)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        mine = [a for a in world.site.platform.approvals.decided() if a.call.arguments == arguments]
        if mine:
            return mine
        time.sleep(0.05)
    raise AssertionError(f"no decided approval of {arguments}")


def test_the_client_cancelling_the_call_withdraws_the_approval(world: World) -> None:
    """MCP cancellation (`notifications/cancelled`, a later POST of the same MCP session): the pending approval
    is withdrawn at once, the waiting POST ends with no answer, and approving it afterwards is refused. A
    cancellation from another MCP session, or from another caller, ends nobody's wait."""
    bob, bob_elsewhere = Caller(world), Caller(world)
    dave = Caller(world, "s-claude", "claude", human="dave@globex.com")
    pool = ThreadPoolExecutor(1)
    waiting = pool.submit(httpx.post, bob.url, headers=bob.headers, timeout=60, json={
        "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "reverse",
                                                                     "arguments": {"text": "withdrawn"}}})
    pool.shutdown(wait=False)
    [row] = world.pending("reverse")
    cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1, "reason": "stop"}}
    httpx.post(bob.url, headers=bob_elsewhere.headers, json=cancel, timeout=10)  # bob, another MCP session
    httpx.post(bob.url, headers={**dave.headers, "Mcp-Session-Id": bob.headers["Mcp-Session-Id"]}, json=cancel,
               timeout=10)  # bob's MCP session, another caller
    time.sleep(0.3)
    assert not waiting.done() and [r["id"] for r in world.pending("reverse")] == [row["id"]]

    cancelled_at = time.monotonic()
    assert httpx.post(bob.url, headers=bob.headers, json=cancel, timeout=10).status_code == 202
    answer = waiting.result(timeout=10)
    assert time.monotonic() - cancelled_at < 2
    assert answer.status_code == 200 and answer.text == ""  # an SSE stream that ends without an answer
    assert [a.status for a in cancelled_approval(world, '{"text":"withdrawn"}')] == ["cancelled"]
    assert row["id"] not in world.cli("access", "approvals", "list", profile="alice").stdout
    alice = _token(world.site, "alice@acme.com", PASSWORDS["alice@acme.com"])
    late = httpx.post(f"{world.site.url}/api/v1/runtime/approvals/{row['id']}/approve", timeout=30,
                      headers={"Authorization": f"Bearer {alice}"})
    assert late.status_code == 409 and "cancelled" in late.json()["message"]
    assert analytics_reasons(world, {"text": "withdrawn"}, "approval_cancelled") == {"approval_cancelled"}
    audit = world.site.platform.store.list_audit(limit=100, kind="Approval")
    assert any(e.action == "approval_cancelled" and e.after["id"] == row["id"] for e in audit)


def test_the_official_sdk_cancelling_a_waiting_call_withdraws_it(world: World) -> None:
    """The SDK client sends `notifications/cancelled` when the call's cancel scope is cancelled."""
    async def run() -> None:
        token = world.kit.token("s-cursor", "cursor")
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
                streamable_http_client(world.url, http_client=http) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tasks:
                    async def cancel_once_pending() -> None:
                        await anyio.to_thread.run_sync(world.pending, "reverse")
                        scope.cancel()
                    tasks.start_soon(cancel_once_pending)
                    await session.call_tool("reverse", {"text": "sdk-cancel"})
            assert scope.cancelled_caught
            # withdrawn while the client is still connected: the cancellation's doing, not a disconnect's
            mine = await anyio.to_thread.run_sync(cancelled_approval, world, '{"text":"sdk-cancel"}')
            assert [a.status for a in mine] == ["cancelled"]
            assert (await session.call_tool("echo", {"text": "still here"})).content[0].text == "still here"  # type: ignore[union-attr]

    anyio.run(run)
    assert not world.site.platform.approvals.pending()
    assert analytics_reasons(world, {"text": "sdk-cancel"}, "approval_cancelled") == {"approval_cancelled"}


def test_a_sidecar_gateway_withdraws_a_cancelled_call_through_the_api(world: World) -> None:
    """The sidecar's approval is the platform's over HTTP: the client's cancellation withdraws it there too."""
    key = world.site.platform.ingest_keys.local_key
    sidecar = Gateway([GatewayRoute(upstream=world.upstream, policy=InProcessPolicySource(world.kit.document()),
                                    keys=world.kit.keyring.public_keys(), path="/mcp")])
    sidecar.request_path.approvals = HttpApprovals(f"{world.site.url}/api/v1/ingest/approvals", key)
    with serve_app(sidecar) as base, ThreadPoolExecutor(1) as pool:
        caller = Caller(replace(world, url=base + "/mcp"))
        waiting = pool.submit(httpx.post, caller.url, headers=caller.headers, timeout=60, json={
            "jsonrpc": "2.0", "id": "call-1", "method": "tools/call",
            "params": {"name": "reverse", "arguments": {"text": "sidecar-cancel"}}})
        [row] = world.pending("reverse")
        httpx.post(caller.url, headers=caller.headers, timeout=10, json={
            "jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "call-1"}})
        answer = waiting.result(timeout=10)
        assert answer.status_code == 200 and answer.text == ""
    assert [a.status for a in cancelled_approval(world, '{"text":"sidecar-cancel"}')] == ["cancelled"]
    assert row["id"] not in [r["id"] for r in (a.to_json() for a in world.site.platform.approvals.pending())]
