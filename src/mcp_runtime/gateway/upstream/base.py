"""What the forward step talks to: a route's `Upstream`, the request it is given, the response it returns.

The request path knows only these three types. Today every route has an HTTP upstream (`http.py`: the
server's Streamable HTTP endpoint, on this machine or remote, with the upstream's own credential). A
stdio server behind a bridge, or a virtual server that fans one client session out to its member
servers, is another `Upstream`: it gets the already-authorized messages (parsed, so it can route by tool
without parsing again) and answers with an `UpstreamResponse`, streamed or whole. Nothing before or
after the forward step changes for them; `open_upstream` in this package picks the implementation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mcp_runtime.gateway.jsonrpc import RpcMessage

Headers = list[tuple[bytes, bytes]]


class UpstreamError(Exception):
    """The upstream could not be reached or broke off a response (answered with 502).

    `reason` is what the client reads in the JSON-RPC error's `data.reason`; `status` the HTTP status."""

    reason = "upstream_unavailable"
    status = 502


class UpstreamCredentialRejected(UpstreamError):
    """The upstream answered 401/403 to the credential the gateway sent it (a remote server's Secret is
    wrong or expired). Not the client's fault, so not passed on as a 401: the client's token is fine."""

    reason = "upstream_credential_rejected"


class UpstreamCredentialMissing(UpstreamError):
    """The remote wants each caller's own token and the caller's session names none (or its Secret is
    not set): the call is not sent without it."""

    reason = "upstream_credential_missing"
    status = 403


class UpstreamTimeout(UpstreamError):
    """The upstream did not connect, start answering, or go on answering within the route's timeouts."""

    reason = "upstream_timeout"
    status = 504


class UpstreamInvalidAnswer(UpstreamError):
    """The upstream answered something that is not HTTP, not the JSON it announced, or too large to relay."""

    reason = "upstream_invalid_answer"


class UpstreamRequest:
    """One request to forward: the client's method, query and headers (credentials already replaced by
    the verified identity) and the body holding only the messages the policy allowed."""

    __slots__ = ("body", "headers", "messages", "method", "query")

    def __init__(self, method: bytes, query: bytes, headers: Headers, body: bytes | None,
                 messages: Sequence[RpcMessage] = ()) -> None:
        self.method = method
        self.query = query
        self.headers = headers
        self.body = body
        self.messages = messages
        """The forwarded messages, parsed (empty for GET and DELETE)."""


class UpstreamResponse(Protocol):
    """An answer: status and headers first, the body as it arrives (SSE events are never held back)."""

    status: int
    headers: Headers

    def header(self, name: bytes) -> bytes | None:
        """The first value of header `name` (lower case), or None."""

    @property
    def complete(self) -> bool:
        """Whether the whole body has already arrived (a fast upstream's answer often comes in one
        segment with its head): the relay can then send it in one piece instead of streaming it."""

    def chunks(self) -> AsyncIterator[bytes]:
        """The body, chunk by chunk as it arrives; raises UpstreamError when the upstream breaks off, stays
        silent longer than the read timeout (answers to POSTs), or sends more than the answer limit."""

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body (at most `limit` bytes, else UpstreamError)."""

    def abort(self, reason: str = "the client went away") -> None:
        """Stop now (the client left): wake the reader, drop what feeds the body."""


class Upstream(Protocol):
    """Where a route's allowed requests go."""

    url: str
    """What `/config/status` and error messages name as the upstream."""

    async def start(self) -> None:
        """Called when the route starts serving (spawn a process, open member sessions, ...)."""

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Forward one request; return once the answer's head is known. Raises UpstreamError."""

    async def aclose(self) -> None:
        """Release connections or processes (the route was removed or the gateway stops)."""
