"""Which MCP sessions of a route can be asked to approve a call, and the questions in flight.

A client that declared the `elicitation` capability at `initialize` can be asked (by the gateway, on
the SSE stream of the request that waits: approval.py); its answer comes back as a JSON-RPC response
in a later POST, with an id only the gateway hands out, and counts only from the same MCP session and
the same caller's session. Both tables are bounded.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp_runtime.gateway.jsonrpc import RpcMessage

ELICIT_PREFIX = "mcp-runtime-approval-"
"""The id of every `elicitation/create` the gateway sends: a client's response with it is the gateway's."""
MAX_CLIENTS = 10_000
MAX_WAITING = 1_000


class Elicitations:
    """Per route: which MCP sessions can be asked (declared `elicitation`), and the questions in flight."""

    def __init__(self) -> None:
        self.clients: OrderedDict[bytes, str | None] = OrderedDict()  # MCP session id -> caller's session
        self.waiting: dict[str, tuple[bytes, str | None, asyncio.Future[dict[str, Any]]]] = {}

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


def declares_elicitation(msg: RpcMessage) -> bool:
    """Whether an `initialize` request declares the client's `elicitation` capability."""
    params = msg.raw.get("params")
    caps = params.get("capabilities") if isinstance(params, dict) else None
    return isinstance(caps, dict) and caps.get("elicitation") is not None


def is_our_answer(msg: RpcMessage) -> bool:
    return msg.method is None and isinstance(msg.id, str) and msg.id.startswith(ELICIT_PREFIX)


