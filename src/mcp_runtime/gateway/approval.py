"""Human approval in the request path: a call the evaluator marked `approval_required` waits here.

Two ways to ask, both bound to exactly the call that waits (nothing is remembered that another call, with
other arguments or from another caller, could reuse):

- **Elicitation**, when the approver is the caller and their client declared the `elicitation` capability
  at `initialize`: the gateway answers the POST with an SSE stream, sends an `elicitation/create` request
  on it (the MCP way for a server to ask during a request), and waits for the client's answer, which
  arrives as a JSON-RPC response in a later POST of the same MCP session and caller. `accept` forwards
  the call, `decline`/`cancel` refuse it (`approval_declined`). The upstream's answer then follows on the
  same stream (`StreamedAnswer`).
- **Out of band** otherwise (or when the approver is the server's owners): the route's `ApprovalBroker`
  (the platform's pending approvals, in process in `mcp-runtime up`, over HTTP for a sidecar) holds the
  call until someone approves or denies it, or the timeout passes.

Either way the caller going away ends the wait (`approval_cancelled`), and so does their client's
`notifications/cancelled` for the call (MCP cancellation, a later POST of the same MCP session and caller):
the approval is withdrawn, the call never forwarded, and its stream ends with no answer, as MCP says a
cancelled request gets none. A call that needs no approval never reaches this module: `authorize` only
calls `settle` when a decision says `approval_required`, and looks at a `notifications/cancelled` only
while some call of the route waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from mcp_runtime.gateway.audit import tool_arguments
from mcp_runtime.gateway.elicitation import ELICIT_PREFIX, declares_elicitation, is_our_answer
from mcp_runtime.gateway.jsonrpc import id_key
from mcp_runtime.gateway.sse import sse_event
from mcp_runtime.policy import Decision, Identity, Reason
from mcp_runtime.resources.approval import Approver, arguments_digest
from mcp_runtime.wire import ClientDisconnected

if TYPE_CHECKING:
    from mcp_runtime.gateway.exchange import Exchange
    from mcp_runtime.gateway.jsonrpc import RpcMessage
    from mcp_runtime.wire.asgi import Message, Receive, Send

MAX_SHOWN_ARGUMENTS = 1024
"""Arguments longer than this (as JSON) are shown to the person by their SHA-256 digest instead."""


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A call waiting for approval, as an `ApprovalBroker` sees it."""

    namespace: str
    server: str
    tool: str
    arguments: str  # canonical JSON (the digest covers it whole)
    digest: str
    identity: Identity
    approver: Approver
    timeout: float


@dataclass(frozen=True, slots=True)
class Verdict:
    reason: Reason  # approved, approval_denied, approval_timeout, approval_unavailable
    by: str | None = None


class CallCancelled(ClientDisconnected):
    """The client cancelled the waiting call (`notifications/cancelled`): it ends as if the caller had gone
    away (audited `approval_cancelled`, status 499), except that its stream is closed cleanly first."""


class ApprovalBroker(Protocol):
    """Holds a call until a person decides; cancelled when the caller goes away (then it withdraws it)."""

    async def decide(self, call: PendingCall) -> Verdict: ...


def note_elicitation(ex: Exchange, msg: RpcMessage, ours: list[RpcMessage]) -> None:
    """An `initialize` declaring `elicitation` (its MCP session may be asked), an answer to our question, or
    a `notifications/cancelled` while calls of the route wait (it may be for one of them)."""
    if is_our_answer(msg):
        ours.append(msg)
    elif msg.method == "notifications/cancelled":
        if ex.route.elicitations.calls:
            ours.append(msg)
    elif msg.method is not None and declares_elicitation(msg):
        ex.elicits = True


def remember_elicitation(ex: Exchange) -> None:
    """The MCP session an `initialize` with the `elicitation` capability opened may be asked to approve."""
    response = ex.response
    sid = response.header(b"mcp-session-id") if response is not None else None
    if sid is not None and response is not None and 200 <= response.status < 300:
        ex.route.elicitations.remember(sid, ex.identity.session_id if ex.identity is not None else None)


def take_answers(ex: Exchange, ours: list[RpcMessage], access: Decision | None) -> None:
    """A client's answers to the gateway's own approval questions: resolved here, never forwarded. Its
    cancellation of a call waiting here ends that wait and goes no further (the server never saw the
    call); any other `notifications/cancelled` is forwarded as usual."""
    allowed = access is not None and access.allowed
    session = ex.identity.session_id if ex.identity is not None else None
    elicitations, mcp_session = ex.route.elicitations, ex.mcp_session
    taken = []
    for msg in ours:
        if msg.method is None:
            taken.append(msg)
            if allowed:
                elicitations.answer(msg, mcp_session, session)
        elif allowed and elicitations.cancel(msg, mcp_session, session):
            taken.append(msg)
    if taken:
        ex.forward = [m for m in ex.forward if all(m is not t for t in taken)]


def pending_call(ex: Exchange, msg: RpcMessage, decision: Decision) -> PendingCall:
    assert ex.doc is not None and decision.approval is not None
    return pending_call_of(ex.route.namespace, ex.route.server, msg.tool or "", msg.raw, ex.identity or Identity(),
                           decision.approval, ex.doc.approval_timeout)


def pending_call_of(namespace: str, server: str, tool: str, raw: dict[str, Any], identity: Identity,
                    approver: Approver, timeout: float) -> PendingCall:
    """The call as it waits, bound to the digest of its exact arguments (a virtual server's call too)."""
    arguments = tool_arguments(raw)
    shown = json.dumps({} if arguments is None else arguments, sort_keys=True, separators=(",", ":"),
                       ensure_ascii=False)
    return PendingCall(namespace=namespace, server=server, tool=tool, arguments=shown,
                       digest=arguments_digest(arguments), identity=identity, approver=approver, timeout=timeout)


async def settle(ex: Exchange, decisions: list[Decision | None], broker: ApprovalBroker | None) -> None:
    """Ask about each call that needs approval, one after another; replace its decision with the outcome.
    A call its client cancels meanwhile is `approval_cancelled` and gets no answer: alone in its request, the
    request ends (CallCancelled); in a batch, the batch goes on without it."""
    caller_session = ex.identity.session_id if ex.identity is not None else None
    mcp_session = ex.mcp_session
    elicitations = ex.route.elicitations
    for index, (msg, decision) in enumerate(zip(ex.messages, decisions, strict=False)):
        if decision is None or not decision.needs_approval:
            continue
        call = pending_call(ex, msg, decision)
        key = (mcp_session, caller_session, id_key(msg.id)) if mcp_session is not None and msg.has_id else None
        cancelled = elicitations.hold(key) if key is not None else None
        try:
            if call.approver == Approver.caller and elicitations.can_ask(mcp_session, caller_session):
                verdict = await until_disconnect(ex.receive, _elicit(ex, call, caller_session), cancelled)
            elif broker is not None:
                verdict = await until_disconnect(ex.receive, broker.decide(call), cancelled)
            else:
                verdict = Verdict(Reason.approval_unavailable)
        except ClientDisconnected as gone:
            decisions[index] = replace(decision, reason=Reason.approval_cancelled)
            if not isinstance(gone, CallCancelled):
                raise
            stream = await open_stream(ex)  # a request's POST is answered by a stream; this one ends empty
            if not ex.is_batch:
                await stream.end()
                raise
            continue
        finally:
            if key is not None and cancelled is not None:
                elicitations.release(key, cancelled)
        decisions[index] = replace(decision, allowed=verdict.reason is Reason.approved, reason=verdict.reason,
                                   approved_by=verdict.by)


async def until_disconnect(receive: Receive, asking: Any, cancelled: asyncio.Future[None] | None = None) -> Verdict:
    """The verdict, unless the caller goes away (ClientDisconnected) or their client cancels the call
    (CallCancelled, when `cancelled` is set) first: then the question is withdrawn and the request ends."""
    task: asyncio.Task[Verdict] = asyncio.ensure_future(asking)
    watch = asyncio.ensure_future(_disconnected(receive))
    waits: set[asyncio.Future[Any]] = {task, watch} if cancelled is None else {task, watch, cancelled}
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, watch):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending
    if task in done:
        return task.result()
    if cancelled is not None and cancelled in done:
        raise CallCancelled()
    raise ClientDisconnected()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _elicit(ex: Exchange, call: PendingCall, caller_session: str | None) -> Verdict:
    """Ask the caller on the request's own SSE stream and wait for their answer (or the timeout)."""
    elicitations = ex.route.elicitations
    question_id = ELICIT_PREFIX + secrets.token_urlsafe(12)
    answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    assert ex.mcp_session is not None
    elicitations.waiting[question_id] = (ex.mcp_session, caller_session, answer)
    try:
        stream = await open_stream(ex)
        return await ask_by_elicitation(call, question_id, answer, stream.event)
    finally:
        elicitations.waiting.pop(question_id, None)


async def ask_by_elicitation(call: PendingCall, question_id: str, reply: asyncio.Future[dict[str, Any]],
                             send: Callable[[dict[str, Any]], Awaitable[None]]) -> Verdict:
    """Ask the caller about `call` (MCP elicitation, sent by `send` on the call's own open stream) and turn
    their answer, or the timeout, into a verdict; a wait that is cancelled withdraws the question. The
    caller registers `reply` under `question_id` where the client's answer is routed, and removes it."""
    await send({"jsonrpc": "2.0", "id": question_id, "method": "elicitation/create", "params": question(call)})
    try:
        answer = await asyncio.wait_for(reply, call.timeout)
    except TimeoutError:
        return Verdict(Reason.approval_timeout)
    except asyncio.CancelledError:  # the call was cancelled (or its caller left): so is the question
        with contextlib.suppress(Exception):
            await send(withdrawal(question_id))
        raise
    result = answer.get("result")
    if isinstance(result, dict) and result.get("action") == "accept":
        who = call.identity.human_id or call.identity.agent_id or "the caller"
        return Verdict(Reason.approved, f"{who} (elicitation)")
    return Verdict(Reason.approval_declined)


def withdrawal(question_id: str) -> dict[str, Any]:
    """MCP's cancellation of the gateway's own question: the client may stop asking the person (the SDK
    cancels its elicitation callback)."""
    return {"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": question_id, "reason": "the call this question was about was cancelled"}}


def question(call: PendingCall) -> dict[str, Any]:
    """The `elicitation/create` params that ask the person about exactly this call."""
    shown = call.arguments if len(call.arguments) <= MAX_SHOWN_ARGUMENTS else \
        f"({len(call.arguments)} bytes, SHA-256 {call.digest.removeprefix('sha256:')})"
    message = (f"Approve this call?\nServer: {call.server} (namespace {call.namespace})\nTool: {call.tool}\n"
               f"Arguments: {shown}\nAccept runs exactly this call; decline or cancel refuses it.")
    return {"mode": "form", "message": message, "requestedSchema": {"type": "object", "properties": {}}}


async def open_stream(ex: Exchange) -> StreamedAnswer:
    """Answer the POST with an SSE stream now (once); what the request path sends later goes on it."""
    if isinstance(ex.send, StreamedAnswer):
        return ex.send
    await ex.send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache, no-transform")]})
    stream = StreamedAnswer(ex.send)
    ex.send = stream
    return stream


class StreamedAnswer:
    """`send` for a request whose SSE stream the gateway opened itself: the later answer (the upstream's
    SSE bytes as they come, or a JSON body turned into one event per message) goes on that stream."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._sse = False
        self._buffer = b""

    async def event(self, message: dict[str, Any]) -> None:
        """One event of the gateway's own (an `elicitation/create`) on the open stream."""
        await self._send({"type": "http.response.body", "body": sse_event(message), "more_body": True})

    async def end(self) -> None:
        """Close the stream with nothing more on it (a cancelled call: MCP sends it no answer)."""
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers", ()))
            self._sse = (headers.get(b"content-type") or b"").startswith(b"text/event-stream")
            return
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if self._sse:
            await self._send({"type": "http.response.body", "body": body, "more_body": more})
            return
        self._buffer += body
        if more:
            return
        events = b""
        if self._buffer.strip():
            try:
                payload = json.loads(self._buffer)
            except ValueError:
                payload = None
            for item in payload if isinstance(payload, list) else [payload]:
                if isinstance(item, dict):
                    events += sse_event(item)
        self._buffer = b""
        await self._send({"type": "http.response.body", "body": events, "more_body": False})
