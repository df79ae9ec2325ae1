"""Which MCP sessions of a route can be asked to approve a call, the questions in flight, and the calls
waiting for approval that their client may cancel.

A client that declared the `elicitation` capability at `initialize` can be asked (by the gateway, on
the SSE stream of the request that waits: approval.py); its answer comes back as a JSON-RPC response
in a later POST, with an id only the gateway hands out, and counts only from the same MCP session and
the same caller's session. A `notifications/cancelled` for a waiting call ends its wait under the same
binding (MCP session, caller's session, request id). The first two tables are bounded; the third holds
only calls that wait, which the broker and the question table bound already.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from mcp_runtime.gateway.jsonrpc import id_key

if TYPE_CHECKING:
    from mcp_runtime.gateway.jsonrpc import RpcMessage

WaitKey = tuple[bytes, str | None, str]
"""A waiting call: its MCP session, its caller's session, the `jsonrpc.id_key` of its request id."""

ELICIT_PREFIX = "mcp-runtime-approval-"
"""The id of every `elicitation/create` the gateway sends: a client's response with it is the gateway's."""
MAX_CLIENTS = 10_000
MAX_WAITING = 1_000


class Elicitations:
    """Per route: which MCP sessions can be asked (declared `elicitation`), and the questions in flight."""

    def __init__(self) -> None:
        self.clients: OrderedDict[bytes, str | None] = OrderedDict()  # MCP session id -> caller's session
        self.waiting: dict[str, tuple[bytes, str | None, asyncio.Future[dict[str, Any]]]] = {}
        self.calls: dict[WaitKey, asyncio.Future[None]] = {}
        """Calls waiting for approval, each with the future their client's `notifications/cancelled` sets."""

    def remember(self, mcp_session: bytes, caller_session: str | None) -> None:
        self.clients[mcp_session] = caller_session
        self.clients.move_to_end(mcp_session)
        while len(self.clients) > MAX_CLIENTS:
            self.clients.popitem(last=False)

    def can_ask(self, mcp_session: bytes | None, caller_session: str | None) -> bool:
        return mcp_session is not None and mcp_session in self.clients and \
            self.clients[mcp_session] == caller_session and len(self.waiting) < MAX_WAITING

    def answer(self, msg: RpcMessage, mcp_session: bytes | None, caller_session: str | None) -> bool:
        """A client's response to one of our questions: resolve it (only from the session that was asked)."""
        held = self.waiting.get(msg.id)
        if held is None or held[0] != mcp_session or held[1] != caller_session:
            return False
        if not held[2].done():
            held[2].set_result(msg.raw)
        return True


    def hold(self, key: WaitKey) -> asyncio.Future[None]:
        """A waiting call's cancellation future (set when its own client cancels it: `cancel`)."""
        cancelled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.calls[key] = cancelled
        return cancelled

    def release(self, key: WaitKey, cancelled: asyncio.Future[None]) -> None:
        if self.calls.get(key) is cancelled:  # a later call reusing the id keeps its own
            del self.calls[key]

    def cancel(self, msg: RpcMessage, mcp_session: bytes | None, caller_session: str | None) -> bool:
        """A `notifications/cancelled` for a call that waits here, from its own MCP session and caller: the
        wait ends (True: the notification is the gateway's, not the server's, which never saw the call)."""
        params = msg.raw.get("params")
        request_id = params.get("requestId") if isinstance(params, dict) else None
        if mcp_session is None or request_id is None:
            return False
        cancelled = self.calls.get((mcp_session, caller_session, id_key(request_id)))
        if cancelled is None:
            return False
        if not cancelled.done():
            cancelled.set_result(None)
        return True


def declares_elicitation(msg: RpcMessage) -> bool:
    """Whether an `initialize` request declares the client's `elicitation` capability."""
    params = msg.raw.get("params")
    caps = params.get("capabilities") if isinstance(params, dict) else None
    return isinstance(caps, dict) and caps.get("elicitation") is not None


def is_our_answer(msg: RpcMessage) -> bool:
    return msg.method is None and isinstance(msg.id, str) and msg.id.startswith(ELICIT_PREFIX)


