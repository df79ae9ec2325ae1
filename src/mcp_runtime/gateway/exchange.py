"""The request context: one `Exchange` per MCP request, read and extended by every step of the request path.

Steps talk to each other only through it (parse fills `messages`, authenticate `caller`, authorize
`decisions` and `forward`, forward `response`), and when the request is over the metrics and the audit
record are taken from it, however far it got. A feature that must carry something from one step to a
later one (an OAuth token's scopes, a rate-limit reservation, an approval, a tracing span) adds a slot
here. Slots, not a dict: this object is built on every call.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from mcp_runtime.wire.asgi import Receive, Scope, Send

if TYPE_CHECKING:
    from mcp_runtime.gateway.auth import Authenticated
    from mcp_runtime.gateway.jsonrpc import RpcMessage
    from mcp_runtime.gateway.routes import BoundRoute
    from mcp_runtime.gateway.upstream import UpstreamResponse
    from mcp_runtime.policy import Decision, Identity, PolicyDocument

_NO_IDS: Set[str] = frozenset()


class RequestSpan(Protocol):
    """The trace span of one request (gateway/tracing.py); a protocol so this module needs no tracing import."""

    def propagate(self, ex: Exchange, headers: list[tuple[bytes, bytes]],
                  body: bytes | None) -> tuple[list[tuple[bytes, bytes]], bytes | None]: ...

    def end(self, ex: Exchange) -> None: ...


class Exchange:
    """One request as it goes through the steps; see `pipeline.py` for who sets what."""

    __slots__ = (
        "alias", "authorization", "body", "bytes_in", "bytes_out", "caller", "content_length", "content_type",
        "decisions", "denials", "denied_reason", "doc", "elicits", "forward", "is_batch", "list_ids", "messages", "now",
        "origin", "receive", "response", "route", "scope", "send", "span", "status", "trace_id", "traceparent",
    )

    def __init__(self, route: BoundRoute, scope: Scope, receive: Receive, send: Send) -> None:
        self.route = route
        self.scope = scope
        self.receive = receive
        self.send = send
        # The request headers the steps need. A dict built in C beats a Python loop over the list; like
        # the loop it would be, it keeps the last value of a repeated header.
        headers: dict[bytes, bytes] = dict(scope["headers"])
        self.content_type = headers.get(b"content-type")
        self.authorization = headers.get(b"authorization")
        self.alias = headers.get(b"x-mcp-agent-session")
        self.content_length = headers.get(b"content-length")
        self.traceparent = headers.get(b"traceparent")
        self.origin = headers.get(b"origin")
        # admit
        self.doc: PolicyDocument | None = None
        self.now: datetime | None = None
        # parse
        self.body = b""
        self.bytes_in = 0
        self.messages: Sequence[RpcMessage] = ()
        self.is_batch = False
        self.trace_id: str | None = None
        # authenticate
        self.caller: Authenticated | None = None
        # authorize
        self.decisions: Sequence[Decision | None] = ()
        self.denied_reason: str | None = None
        """Why the request was refused before the evaluator judged a message (a bad token, no access)."""
        self.forward: Sequence[RpcMessage] = ()
        self.denials: Sequence[dict[str, Any]] = ()
        """JSON-RPC errors for the denied requests, answered by the gateway itself."""
        self.list_ids: Set[str] = _NO_IDS
        """Ids (`jsonrpc.id_key`) of the forwarded `tools/list` requests, whose answers are filtered."""
        self.elicits = False
        """An `initialize` declaring the `elicitation` capability: its MCP session may be asked to approve."""
        # forward and relay
        self.response: UpstreamResponse | None = None
        self.status = 500
        self.bytes_out = 0
        self.span: RequestSpan | None = None
        """The request's trace span when tracing is on (gateway/tracing.py)."""

    @property
    def has_requests(self) -> bool:
        """Whether a forwarded message expects an answer (a request, not only notifications or responses)."""
        return any(msg.is_request for msg in self.forward)

    @property
    def mcp_session(self) -> bytes | None:
        """The `Mcp-Session-Id` the client sent (read only when an approval needs it, not per request)."""
        return next((v for k, v in self.scope["headers"] if k == b"mcp-session-id"), None)

    @property
    def identity(self) -> Identity | None:
        """Who the policy sees: the verified caller, or no one."""
        caller = self.caller
        return caller.identity if caller is not None else None
