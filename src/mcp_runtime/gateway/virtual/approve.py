"""Human approval of a call made through a virtual server: the member's policy said `approval_required`,
so the call waits here, exactly as it would on the member's own route (gateway/approval.py), and is
forwarded only once a person approved exactly that call.

- **Elicitation**, when the approver is the caller and the client declared the `elicitation` capability
  at `initialize`: the virtual endpoint answers the POST with an SSE stream, asks on it
  (`elicitation/create`, an id only the gateway hands out), and the client's answer comes back in a later
  POST of the same virtual session (`answered`). The member's answer then follows on the same stream.
- **Out of band** otherwise (or when the member's owners must approve): the gateway's `ApprovalBroker`
  (the platform's pending approvals), bound to the member, the tool, the digest of the arguments, the
  caller and the virtual server's session (its qualified name, as the member's document knows it).
- No broker (a gateway without the platform): `approval_unavailable`; the call never reaches the member.

The caller going away while the call waits withdraws the question (`approval_cancelled`), and so does
their client's `notifications/cancelled` for the call (a later POST of the same virtual session, hence the
same caller: endpoint.py hands it to `cancel`); the call's stream then ends with no answer.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from mcp_runtime.gateway.approval import (
    ApprovalBroker,
    CallCancelled,
    PendingCall,
    Verdict,
    ask_by_elicitation,
    pending_call_of,
    until_disconnect,
)
from mcp_runtime.gateway.elicitation import ELICIT_PREFIX
from mcp_runtime.gateway.jsonrpc import id_key
from mcp_runtime.gateway.relay import send_json
from mcp_runtime.gateway.routes import BoundRoute
from mcp_runtime.gateway.sse import sse_event
from mcp_runtime.gateway.virtual import govern
from mcp_runtime.gateway.virtual.mapping import MemberKey
from mcp_runtime.gateway.virtual.session import VirtualSession
from mcp_runtime.policy import Decision, Reason
from mcp_runtime.resources.approval import Approver
from mcp_runtime.wire import ClientDisconnected
from mcp_runtime.wire.asgi import Message, Receive, Send

MAX_QUESTIONS = 100
"""Questions one virtual session may have open at once; past that, calls wait out of band instead."""
_SSE_HEAD = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


class CallAnswer:
    """`send` for a call that waited for approval: a plain response until an elicitation opened the SSE
    stream; after that, the member's streamed answer (or a denial) goes on that stream."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.streaming = False

    async def open(self) -> None:
        if not self.streaming:
            await self._send({"type": "http.response.start", "status": 200, "headers": list(_SSE_HEAD)})
            self.streaming = True

    async def event(self, message: dict[str, Any], *, last: bool = False) -> None:
        await self._send({"type": "http.response.body", "body": sse_event(message), "more_body": not last})

    async def end(self) -> None:
        """The call was cancelled: its stream (opened now if need be) ends with no answer, as MCP says."""
        await self.open()
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start" and self.streaming:
            return  # the stream is open already: the member's answer continues it
        await self._send(message)


async def respond(send: Send, status: int, body: dict[str, Any]) -> None:
    """A JSON-RPC answer: as JSON, or as the last event when the call's stream is open already."""
    if isinstance(send, CallAnswer) and send.streaming:
        await send.event(body, last=True)
    else:
        await send_json(send, status, body)


def answered(session: VirtualSession, raw: dict[str, Any]) -> bool:
    """A client's response to one of the gateway's own questions in this session: resolve it."""
    question_id = raw.get("id")
    waiting = session.questions.get(question_id) if isinstance(question_id, str) else None
    if waiting is None:
        return False
    if not waiting.done():
        waiting.set_result(raw)
    return True


def cancel(session: VirtualSession, request_id: Any) -> bool:
    """The client's `notifications/cancelled` for a call of this session that waits for approval: end the wait."""
    cancelled = session.cancels.get(id_key(request_id))
    if cancelled is None:
        return False
    if not cancelled.done():
        cancelled.set_result(None)
    return True


class Endpoint(Protocol):
    """What settling needs of the virtual endpoint (endpoint.py)."""

    approvals: Callable[[], ApprovalBroker | None]

    def audit(self, session: VirtualSession, key: MemberKey, route: BoundRoute | None, method: str,
              tool: str | None, decision: Decision | None, status: int, now: datetime,
              raw: dict[str, Any] | None = None) -> None: ...


async def settle(endpoint: Endpoint, session: VirtualSession, key: MemberKey, route: BoundRoute, tool: str,
                 raw: dict[str, Any], decision: Decision, receive: Receive, answer: CallAnswer,
                 now: datetime) -> Decision:
    """The outcome of asking a person about this call (allowed only when approved, then rate-limited as
    any allowed call). The caller going away or cancelling the call meanwhile is audited
    `approval_cancelled` and ends the request (ClientDisconnected, CallCancelled): nothing is answered,
    nothing forwarded."""
    doc = route.source.document
    assert doc is not None and decision.approval is not None
    call = pending_call_of(key[0], key[1], tool, raw, session.identity, decision.approval, doc.approval_timeout)
    broker = endpoint.approvals()
    request = id_key(raw.get("id"))
    cancelled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    session.cancels[request] = cancelled
    session.waiting += 1
    try:
        if call.approver == Approver.caller and session.elicits and len(session.questions) < MAX_QUESTIONS:
            verdict = await until_disconnect(receive, _elicit(session, call, answer), cancelled)
        elif broker is not None:
            verdict = await until_disconnect(receive, broker.decide(call), cancelled)
        else:
            verdict = Verdict(Reason.approval_unavailable)
    except ClientDisconnected as gone:
        withdrawn = replace(decision, reason=Reason.approval_cancelled)
        endpoint.audit(session, key, route, "tools/call", tool, withdrawn, 499, now, raw)
        if isinstance(gone, CallCancelled):
            await answer.end()
        raise
    finally:
        session.waiting -= 1
        if session.cancels.get(request) is cancelled:  # a later call reusing the id keeps its own
            del session.cancels[request]
    settled = replace(decision, allowed=verdict.reason is Reason.approved, reason=verdict.reason,
                      approved_by=verdict.by)
    return govern.count_limits(route, settled, now)


async def _elicit(session: VirtualSession, call: PendingCall, answer: CallAnswer) -> Verdict:
    """Ask the caller on the call's own SSE stream; wait for their answer or the timeout."""
    question_id = ELICIT_PREFIX + secrets.token_urlsafe(12)
    reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    session.questions[question_id] = reply
    try:
        await answer.open()
        return await ask_by_elicitation(call, question_id, reply, answer.event)
    finally:
        session.questions.pop(question_id, None)
