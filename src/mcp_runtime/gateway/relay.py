"""Answers to the client: small JSON bodies in one piece, upstream streams relayed as they arrive.

Everything here is per response and stateless; the request path (`pipeline.py`) decides what to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Sequence, Set
from typing import Any

from mcp_runtime.gateway import jsonrpc
from mcp_runtime.gateway.sse import SseRewriter
from mcp_runtime.gateway.upstream import UpstreamError, UpstreamResponse
from mcp_runtime.policy import Decision
from mcp_runtime.wire.asgi import Receive, Send
from mcp_runtime.wire.jsonrpc import DENIED

ToolFilter = Callable[[dict[str, Any]], bool]
"""Given one tool definition of a `tools/list` answer, whether the caller sees it."""

log = logging.getLogger("mcp_runtime.gateway")

MAX_REWRITE = 16 * 1024 * 1024
"""Largest JSON answer the gateway reads whole to rewrite (a filtered tools/list, a merged batch)."""
DISCONNECT_WATCH_AFTER = 0.5
"""Seconds a streamed answer runs before the gateway starts watching for the client to go away."""

_STRIP_RESPONSE = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"content-length", b"trailer",
    b"upgrade", b"te", b"server", b"date",
})
SSE = b"text/event-stream"


async def send_raw(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return len(body)


async def send_json(send: Send, status: int, obj: Any, extra: list[tuple[bytes, bytes]] | None = None) -> int:
    body = jsonrpc.dumps(obj)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return len(body)


async def send_empty(send: Send, status: int) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


def denial_error(msg: jsonrpc.RpcMessage, decision: Decision) -> dict[str, Any]:
    """The JSON-RPC error of a denied call: an actionable message and the why, for every MCP client."""
    data: dict[str, Any] = {
        "reason": str(decision.reason),
        "server": decision.server,
        "tool": decision.tool,
        "requiredTrust": str(decision.required_trust) if decision.required_trust is not None else None,
        "effectiveTrust": str(decision.effective_trust) if decision.effective_trust is not None else None,
        "policyRevision": decision.policy_revision,
    }
    if decision.retry_after is not None:  # rate_limited: when to try again, and which limit said no
        data["retryAfter"] = math.ceil(decision.retry_after)
        data["limit"] = decision.limits[0].scope if decision.limits else None
    if decision.condition is not None:
        data["condition"] = decision.condition
    return jsonrpc.error_object(msg.id, DENIED, decision.message, data)


def response_headers(response: UpstreamResponse) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in response.headers if k not in _STRIP_RESPONSE]


StreamFailed = Callable[[UpstreamError, bool], bytes]
"""Told that the upstream broke off a stream (and whether an answer seemed to have passed already);
returns what to send the client before the stream ends (JSON-RPC error events, or nothing)."""


async def pass_through(response: UpstreamResponse, send: Send, receive: Receive,
                       on_failure: StreamFailed | None = None) -> int:
    """Relay a response as is: small bodies in one piece, streams chunk by chunk."""
    headers = response_headers(response)
    length = response.header(b"content-length")
    content_type = response.header(b"content-type") or b""
    if length is not None and length.isdigit() and int(length) <= MAX_REWRITE and not content_type.startswith(SSE):
        try:
            data = await response.read(MAX_REWRITE)
        except UpstreamError as exc:
            log.warning("upstream broke off a response: %s", exc)
            data = b""
            headers.append((b"connection", b"close"))
        return await send_raw(send, response.status, headers, data)
    return await stream(response, send, receive, response.status, headers, None, b"", on_failure)


async def stream(response: UpstreamResponse, send: Send, receive: Receive, status: int,
                 headers: list[tuple[bytes, bytes]], rewriter: SseRewriter | None, tail: bytes,
                 on_failure: StreamFailed | None = None, *, one_answer: bool = False) -> int:
    """Relay a body as it arrives; stop (and drop the upstream connection) when the client leaves.

    When the upstream breaks off (dies, stalls past the read timeout, sends too much), the client gets
    what `on_failure` returns (the request path: an error event per unanswered request) and then a
    clean end of the stream, never a connection cut in the middle of a chunk.

    Fewer writes per answer (each is a system call, and they dominate the gateway's CPU): a body that
    is already whole when its head arrives goes out in one piece with a length; with `one_answer` (the
    client awaits exactly one answer, after which the server ends the stream) the chunk carrying that
    answer is held until the stream ends and sent together with its end.

    Most streams (a tool call's SSE answer) end within milliseconds, so the task that watches for
    the client going away is only started once a stream has lasted `DISCONNECT_WATCH_AFTER`.
    """
    if response.complete:
        return await _send_whole(response, send, status, headers, rewriter, tail)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    watch = _DisconnectWatch(receive, response)
    timer = asyncio.get_running_loop().call_later(DISCONNECT_WATCH_AFTER, watch.start)
    sent = 0
    held = b""  # the answer chunk kept back to go out with the end of the stream
    answered = False  # whether a JSON-RPC answer seems to have passed (a cheap byte search, no parsing)
    last: bytes | None = None  # what ends the stream; None when it ended in a way the client must not see
    try:
        async for chunk in response.chunks():
            if rewriter is not None:
                chunk = rewriter.feed(chunk)
            if not chunk:
                continue
            if held:
                await send({"type": "http.response.body", "body": held, "more_body": True})
                sent += len(held)
                held = b""
            if not answered and (b'"result"' in chunk or b'"error"' in chunk):
                answered = True
                if one_answer:
                    held = chunk
                    continue
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += len(chunk)
        last = held + (rewriter.flush() if rewriter is not None else b"") + tail
    except UpstreamError as exc:
        if not watch.client_left:
            log.warning("upstream stream ended abnormally: %s", exc)
            last = held + (on_failure(exc, answered) if on_failure is not None else b"") + tail
    except OSError:
        response.abort()
    finally:
        timer.cancel()
        await watch.stop()
    with contextlib.suppress(OSError):
        await send({"type": "http.response.body", "body": last or b"", "more_body": False})
        sent += len(last or b"")
    return sent


async def _send_whole(response: UpstreamResponse, send: Send, status: int, headers: list[tuple[bytes, bytes]],
                      rewriter: SseRewriter | None, tail: bytes) -> int:
    """A stream whose every byte has already arrived, sent with a length in one write."""
    body = await response.read()
    if rewriter is not None:
        body = rewriter.feed(body) + rewriter.flush()
    return await send_raw(send, status, headers, body + tail)


class _DisconnectWatch:
    """Waits for `http.disconnect` and then aborts the upstream stream (started on demand)."""

    __slots__ = ("_receive", "_response", "_task", "client_left")

    def __init__(self, receive: Receive, response: UpstreamResponse) -> None:
        self._receive = receive
        self._response = response
        self._task: asyncio.Task[None] | None = None
        self.client_left = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.client_left = True
                self._response.abort()
                return

    async def stop(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def filter_tools(message: Any, list_ids: Set[str], visible: ToolFilter) -> Any | None:
    """A `tools/list` answer with only the tools the caller sees; None when `message` is another."""
    if not isinstance(message, dict) or "id" not in message or jsonrpc.id_key(message["id"]) not in list_ids:
        return None
    result = message.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
        return None
    tools = [t for t in result["tools"] if isinstance(t, dict) and visible(t)]
    return {**message, "result": {**result, "tools": tools}}


def merge_answer(payload: Any, list_ids: Set[str], visible: ToolFilter | None,
                 denials: Sequence[dict[str, Any]], is_batch: bool) -> Any:
    """A JSON answer as the client gets it: `tools/list` results filtered, the gateway's denials added.

    `payload` is the upstream's parsed answer (None when it sent no body, e.g. 202 for notifications).
    """
    if visible is not None:
        if isinstance(payload, list):
            payload = [filter_tools(m, list_ids, visible) or m for m in payload]
        elif payload is not None:
            payload = filter_tools(payload, list_ids, visible) or payload
    if denials:
        if payload is None:
            payload = list(denials) if is_batch else denials[0]
        elif isinstance(payload, list):
            payload = payload + list(denials)
        else:
            payload = [payload, *denials]
    return payload
