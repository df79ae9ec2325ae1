"""A member's answer to a tool call, streamed to the client as SSE (the virtual endpoint's `tools/call`).

The member's own requests meanwhile (elicitation, sampling, roots) reach the client under virtual ids;
the answer carries the client's id. A client that leaves or cancels stops the member's work too (a
`notifications/cancelled` under the member's id); a member that fails mid-answer is marked down and the
client gets a JSON-RPC error naming it, while the other members keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from mcp_runtime.gateway import jsonrpc
from mcp_runtime.gateway.sse import sse_event
from mcp_runtime.gateway.upstream import UpstreamError
from mcp_runtime.gateway.virtual.mapping import MemberKey, rename_call
from mcp_runtime.gateway.virtual.member import MemberLink
from mcp_runtime.gateway.virtual.session import VirtualSession
from mcp_runtime.wire.asgi import Receive, Send
from mcp_runtime.wire.jsonrpc import UPSTREAM_FAILED, error_object

log = logging.getLogger("mcp_runtime.gateway.virtual")

SSE_HEAD = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def stream_answer(session: VirtualSession, link: MemberLink, msg: jsonrpc.RpcMessage, tool: str,
                        virtual_name: str, receive: Receive, send: Send) -> int:
    """Start the SSE answer, relay the member's messages until its answer (or the client leaves); the
    HTTP status to record (200, 499 for a client that left or cancelled, 502 for a failed member). The
    caller ends the body."""
    member_id = link.ids.out(msg.id)
    outgoing = {**rename_call(msg.raw, tool), "id": member_id}
    await send({"type": "http.response.start", "status": 200, "headers": list(SSE_HEAD)})
    relay = asyncio.ensure_future(relay_answer(session, link, outgoing, msg.id, send))
    session.inflight[jsonrpc.id_key(msg.id)] = (link.key, member_id, relay)
    left = asyncio.ensure_future(disconnected(receive))
    status = 200
    try:
        await asyncio.wait({relay, left}, return_when=asyncio.FIRST_COMPLETED)
        if not relay.done():  # the client went away: the member stops working on it too
            status = 499
            relay.cancel()
            with contextlib.suppress(Exception):
                await link.post({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                 "params": {"requestId": member_id, "reason": "the client went away"}})
        else:
            await relay
    except asyncio.CancelledError:
        status = 499  # cancelled by the client (notifications/cancelled): per MCP, no answer follows
    except OSError:
        status = 499  # the client's connection broke while its answer was sent
    except Exception as exc:
        status = 502
        if not isinstance(exc, UpstreamError | TimeoutError):
            log.exception("virtual server %s: relaying a call to %s failed", virtual_name, link.key[1])
        session.mark_down(link.key, str(exc) or type(exc).__name__)
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "more_body": True,
                        "body": sse_event(unavailable_error(virtual_name, session, msg.id, link.key))})
    finally:
        left.cancel()
        session.inflight.pop(jsonrpc.id_key(msg.id), None)
        link.ids.back(member_id)
    return status


async def relay_answer(session: VirtualSession, link: MemberLink, outgoing: dict[str, Any], client_id: Any,
                       send: Send) -> None:
    """The member's answer stream to the client: its requests under virtual ids, the answer with the
    client's id; progress notifications as they come (their token is the client's own)."""
    member_id = outgoing["id"]
    async for message in link.request(outgoing):
        if message.get("method") == "notifications/tools/list_changed":
            session.tool_map = None  # listed again on the next tools/list or call
        if "method" in message and "id" in message:
            message = {**message, "id": session.server_requests.out(link.key, message["id"])}
        elif "method" not in message:
            if message.get("id") != member_id:
                continue
            message = {**message, "id": client_id}
        await send({"type": "http.response.body", "body": sse_event(message), "more_body": True})


def unavailable_error(virtual_name: str, session: VirtualSession, msg_id: Any, key: MemberKey) -> dict[str, Any]:
    """The JSON-RPC error for a call to a member that is down: which one, why, and that the rest still work."""
    reason = session.down.get(key, "it is not available")
    return error_object(msg_id, UPSTREAM_FAILED,
                        f"member {key[1]} (namespace {key[0]}) of virtual server {virtual_name} is "
                        f"unavailable: {reason}; the other members keep working",
                        {"reason": "member_unavailable", "server": key[1], "namespace": key[0],
                         "virtualServer": virtual_name})


async def disconnected(receive: Receive) -> None:
    """Returns once the client's connection is gone."""
    while (await receive())["type"] != "http.disconnect":
        pass
