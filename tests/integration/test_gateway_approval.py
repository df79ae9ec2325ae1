"""Approval by MCP elicitation through the real gateway: the official Python SDK client, with its
`elicitation_callback`, calls a destructive tool of a real MCP server (the data-utility example).

The gateway asks the person on the request's own SSE stream (`elicitation/create`, showing the server,
the tool and the arguments); accept runs the call, decline and cancel refuse it with `approval_declined`.
A client without the capability gets the out-of-band path (here no broker: `approval_unavailable`), and
calls that need no approval never see any of it. The client cancelling the call while it is asked
(`notifications/cancelled`, sent by the SDK when the call's cancel scope is cancelled) ends the wait at once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import httpx
import pytest
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from fixtures.approvals import sdk_call
from fixtures.gateway import NAMESPACE, SERVER, TOOLS, EchoUpstream, PolicyKit, serve_app, serve_gateway
from fixtures.servers import run_data_utility_server
from mcp_runtime.gateway import Gateway, jsonrpc
from mcp_runtime.gateway.elicitation import Elicitations, is_our_answer
from mcp_runtime.gateway.jsonrpc import RpcMessage
from mcp_runtime.resources import MCPServer

# reverse is declared destructive: every call of it needs the caller's approval (the default)
APPROVAL_TOOLS = [{**t, "sideEffect": "destructive"} if t["name"] == "reverse" else t for t in TOOLS]


class ApprovalKit(PolicyKit):
    def server(self) -> MCPServer:
        return MCPServer.model_validate({
            "metadata": {"name": SERVER, "namespace": NAMESPACE},
            "spec": {"image": "team-data/data-utility", "tools": APPROVAL_TOOLS,
                     "policy": {"approvalTimeout": "3s"}}})


@pytest.fixture(scope="module", params=["sse", "json"])
def world(request: pytest.FixtureRequest) -> Iterator[tuple[str, ApprovalKit, Gateway]]:
    kit = ApprovalKit()
    kit.grant("g-cursor", "cursor", tools=["echo", "reverse"]).session("s-cursor", "cursor")
    with run_data_utility_server(json_response=request.param == "json") as upstream, \
            serve_gateway(upstream.url, kit) as (url, gateway):
        yield url, kit, gateway


def call(world: tuple[str, ApprovalKit, Gateway], tool: str, arguments: dict[str, Any],
         answer: str | None) -> tuple[Any, list[types.ElicitRequestParams]]:
    url, kit, _ = world
    asked: list[types.ElicitRequestParams] = []
    outcome = anyio.run(sdk_call, url, kit.token("s-cursor", "cursor"), tool, arguments, answer, asked)
    return outcome, asked


def test_accept_runs_exactly_the_call_shown(world: tuple[str, ApprovalKit, Gateway]) -> None:
    outcome, asked = call(world, "reverse", {"text": "stressed"}, "accept")
    assert outcome == "desserts"
    assert len(asked) == 1
    message = asked[0].message
    assert SERVER in message and "reverse" in message and '{"text":"stressed"}' in message


@pytest.mark.parametrize("answer", ["decline", "cancel"])
def test_decline_and_cancel_refuse_the_call(world: tuple[str, ApprovalKit, Gateway], answer: str) -> None:
    outcome, asked = call(world, "reverse", {"text": "stressed"}, answer)
    assert outcome == "approval_declined" and len(asked) == 1


def test_large_arguments_are_shown_by_their_digest(world: tuple[str, ApprovalKit, Gateway]) -> None:
    text = "x" * 5000
    outcome, asked = call(world, "reverse", {"text": text}, "accept")
    assert outcome == text
    assert text not in asked[0].message and "SHA-256" in asked[0].message


def test_calls_that_need_no_approval_are_not_asked(world: tuple[str, ApprovalKit, Gateway]) -> None:
    outcome, asked = call(world, "echo", {"text": "hi"}, "decline")
    assert outcome == "hi" and asked == []


def test_without_elicitation_nor_an_approver_the_call_fails_closed(world: tuple[str, ApprovalKit, Gateway]) -> None:
    outcome, asked = call(world, "reverse", {"text": "stressed"}, None)
    assert outcome == "approval_unavailable" and asked == []


def test_nobody_answering_is_a_timeout(world: tuple[str, ApprovalKit, Gateway]) -> None:
    started = time.monotonic()
    outcome, asked = call(world, "reverse", {"text": "stressed"}, "never")
    assert outcome == "approval_timeout" and len(asked) == 1
    assert time.monotonic() - started < 6  # the policy's approvalTimeout (3 s), not the client's pace


def test_an_answer_counts_only_from_the_session_that_was_asked() -> None:
    elicitations = Elicitations()
    loop = asyncio.new_event_loop()
    try:
        answer: asyncio.Future[dict[str, Any]] = loop.create_future()
        elicitations.waiting["mcp-runtime-approval-q1"] = (b"mcp-a", "s-bob", answer)
        msg = RpcMessage({"jsonrpc": "2.0", "id": "mcp-runtime-approval-q1", "result": {"action": "accept"}})
        assert is_our_answer(msg)
        assert not elicitations.answer(msg, b"mcp-b", "s-bob")  # another MCP session
        assert not elicitations.answer(msg, b"mcp-a", "s-mallory")  # another caller in that session
        assert not answer.done()
        assert elicitations.answer(msg, b"mcp-a", "s-bob") and answer.result()["result"]["action"] == "accept"
    finally:
        loop.close()


def _cancelled(gateway: Gateway) -> float:
    """How many calls the gateway recorded as `approval_cancelled` (its decision metric)."""
    value = gateway.metrics.registry.get_sample_value(
        "mcp_gateway_decisions_total", {"server": SERVER, "decision": "deny", "reason": "approval_cancelled"})
    return value or 0.0


async def _cancel_while_asked(url: str, token: str, asked: list[types.ElicitRequestParams], gateway: Gateway,
                              before: float) -> None:
    """Call `reverse`, and cancel the call (the SDK's cancel scope: it sends `notifications/cancelled` for
    it) once the person is asked; the gateway must end the wait while the client is still connected."""
    question, withdrawn = anyio.Event(), anyio.Event()

    async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params)
        question.set()
        try:
            await anyio.sleep(30)  # the person never answers: only the cancellation can end the wait
        except anyio.get_cancelled_exc_class():
            withdrawn.set()  # the gateway withdrew its question (notifications/cancelled for it)
            raise
        return types.ElicitResult(action="accept")

    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write, elicitation_callback=on_elicit) as session:
        await session.initialize()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tasks:
                async def cancel_when_asked() -> None:
                    await question.wait()
                    scope.cancel()
                tasks.start_soon(cancel_when_asked)
                await session.call_tool("reverse", {"text": "stressed"})
        assert scope.cancelled_caught
        deadline = time.monotonic() + 2.5  # well inside the policy's approvalTimeout (3 s from the call)
        while _cancelled(gateway) == before and time.monotonic() < deadline:
            await anyio.sleep(0.02)
        assert _cancelled(gateway) == before + 1, "the cancellation did not end the wait"
        with anyio.fail_after(2):
            await withdrawn.wait()  # the person is not left looking at a question nobody waits for


def test_the_client_cancelling_a_call_it_is_asked_about_ends_the_wait(
        world: tuple[str, ApprovalKit, Gateway]) -> None:
    url, kit, gateway = world
    before = _cancelled(gateway)
    asked: list[types.ElicitRequestParams] = []
    started = time.monotonic()
    anyio.run(_cancel_while_asked, url, kit.token("s-cursor", "cursor"), asked, gateway, before)
    assert len(asked) == 1
    assert time.monotonic() - started < 3  # not the timeout (which would be counted approval_timeout)
    assert all(not route.elicitations.calls and not route.elicitations.waiting for route in gateway.routes)


def test_a_cancellation_counts_only_from_the_waiting_calls_own_session_and_caller() -> None:
    elicitations = Elicitations()

    def cancel(request_id: Any) -> RpcMessage:
        return RpcMessage({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}})

    async def run() -> None:
        waiting = elicitations.hold((b"mcp-a", "s-bob", jsonrpc.id_key(7)))
        assert not elicitations.cancel(cancel(7), b"mcp-b", "s-bob")  # another MCP session
        assert not elicitations.cancel(cancel(7), b"mcp-a", "s-mallory")  # another caller in that session
        assert not elicitations.cancel(cancel("7"), b"mcp-a", "s-bob")  # another request ("7" is not 7)
        assert not elicitations.cancel(cancel(7), None, "s-bob")  # no MCP session to bind it to
        assert not waiting.done()
        assert elicitations.cancel(cancel(7), b"mcp-a", "s-bob") and waiting.done()
        elicitations.release((b"mcp-a", "s-bob", jsonrpc.id_key(7)), waiting)
        assert not elicitations.calls  # a cancel for it now is forwarded as any other (no longer ours)
        assert not elicitations.cancel(cancel(7), b"mcp-a", "s-bob")

    asyncio.run(run())


class HeldBroker:
    """An out-of-band approval channel nobody answers: records what waits and what was withdrawn."""

    def __init__(self) -> None:
        self.waiting: list[str] = []
        self.withdrawn: list[str] = []

    async def decide(self, call: Any) -> Any:
        self.waiting.append(call.arguments)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.withdrawn.append(call.arguments)
            raise
        raise AssertionError("nobody decides")


def test_a_cancelled_call_is_never_forwarded_and_other_cancellations_still_are() -> None:
    """Through a real gateway in front of an upstream that records what reaches it: only the waiting call's
    own client (its MCP session and its caller) can cancel it; then the call never reaches the upstream and
    its POST ends with an empty SSE stream. Cancellations of anything else are forwarded as before."""
    kit = ApprovalKit()
    kit.grant("g-cursor", "cursor", tools=["echo", "reverse"]).session("s-cursor", "cursor") \
        .session("s-other", "cursor")
    upstream, broker = EchoUpstream(), HeldBroker()

    def post(session: str, mcp_session: str, body: Any, timeout: float = 10) -> httpx.Response:
        return httpx.post(url, json=body, timeout=timeout, headers={
            "Authorization": f"Bearer {kit.token(session, 'cursor')}", "Mcp-Session-Id": mcp_session,
            "Accept": "application/json, text/event-stream"})

    def cancel(request_id: Any) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}

    def reached(method: str) -> list[Any]:
        bodies = [json.loads(r["body"]) for r in upstream.requests if r["body"]]
        flat = [m for b in bodies for m in (b if isinstance(b, list) else [b])]
        return [m for m in flat if m.get("method") == method]

    def waits_for(count: int) -> None:
        deadline = time.monotonic() + 10
        while len(broker.waiting) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(broker.waiting) == count

    reverse = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "reverse", "arguments": {"text": "stressed"}}}
    with serve_app(upstream) as upstream_url, serve_gateway(upstream_url + "/mcp", kit) as (url, gateway), \
            ThreadPoolExecutor(2) as pool:
        gateway.request_path.approvals = broker
        waiting = pool.submit(post, "s-cursor", "mcp-a", reverse, 30)
        waits_for(1)
        assert post("s-cursor", "mcp-a", cancel(99)).status_code == 202  # not a waiting call: forwarded
        assert post("s-cursor", "mcp-b", cancel(1)).status_code == 202  # another MCP session: forwarded
        assert post("s-other", "mcp-a", cancel(1)).status_code == 202  # another caller: forwarded
        assert [m["params"]["requestId"] for m in reached("notifications/cancelled")] == [99, 1, 1]
        time.sleep(0.2)
        assert not waiting.done() and broker.withdrawn == []  # none of those ended the wait

        cancelled_at = time.monotonic()
        assert post("s-cursor", "mcp-a", cancel(1)).status_code == 202
        answer = waiting.result(timeout=5)
        assert time.monotonic() - cancelled_at < 2
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        assert answer.text == ""  # MCP: a cancelled request gets no answer
        assert broker.withdrawn == ['{"text":"stressed"}']
        assert len(reached("notifications/cancelled")) == 3  # the gateway's own: not forwarded
        assert reached("tools/call") == []  # the call never reached the server

        # in a batch, the cancelled call gets no answer and the rest goes on
        batch = pool.submit(post, "s-cursor", "mcp-a", [
            {**reverse, "params": {"name": "reverse", "arguments": {"text": "batch"}}},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {}}}], 30)
        waits_for(2)
        post("s-cursor", "mcp-a", cancel(1))
        events = [json.loads(line[5:]) for line in batch.result(timeout=5).text.splitlines()
                  if line.startswith("data:")]
        assert [e["id"] for e in events] == [2] and "result" in events[0]
        assert [m["params"]["name"] for m in reached("tools/call")] == ["echo"]
    assert _cancelled(gateway) == 2
