"""The answers the gateway gives itself, when a request ends before (or instead of) reaching the upstream.

Any step raises a `Refusal`; the request path sends it and nothing after that step runs. Keeping every
one of them here keeps their wording (a stable `error` code and a sentence with the cause and the fix)
in one place, and gives every 401 the same `WWW-Authenticate` challenge: the route's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mcp_runtime.wire.jsonrpc import UPSTREAM_FAILED, error_object

if TYPE_CHECKING:
    from mcp_runtime.gateway.jsonrpc import RpcInputError, RpcMessage
    from mcp_runtime.gateway.routes import BoundRoute
    from mcp_runtime.gateway.upstream import UpstreamError
    from mcp_runtime.policy import Decision
    from mcp_runtime.wire import BodyTooLarge

Headers = Sequence[tuple[bytes, bytes]]


class Refusal(Exception):
    """An HTTP status and a JSON body for the client; the request goes no further."""

    def __init__(self, status: int, body: Any, headers: Headers = ()) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers


class Unauthorized(Refusal):
    """401: the credential is missing where one is needed, or is not valid. Sent with the route's challenge."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(401, {"error": reason, "message": message})
        self.reason = reason
        self.message = message


def envelope(status: int, error: str, message: str, headers: Headers = ()) -> Refusal:
    return Refusal(status, {"error": error, "message": message}, headers)


def policy_unavailable(route: BoundRoute) -> Refusal:
    """503 until the route has a policy: the gateway fails closed."""
    message = f"no policy is loaded for {route.path} yet; requests are refused until one is"
    error = route.source.last_error
    if error:
        message += f" (last error: {error})"
    return envelope(503, "policy_unavailable", message, ((b"retry-after", b"1"),))


def origin_not_allowed(origin: bytes) -> Refusal:
    """403: a browser page from another origin (DNS rebinding protection, MCP Streamable HTTP transport)."""
    shown = origin.decode("latin-1", "replace")[:200]
    return envelope(403, "origin_not_allowed",
                    f"requests from the web origin {shown} are not accepted here; an MCP client page must be "
                    "served from this server's own origin or a loopback address")


def unsupported_media_type(content_type: bytes | None) -> Refusal:
    got = content_type.decode("latin-1") if content_type else "none"
    return envelope(415, "unsupported_media_type",
                    f"send JSON-RPC with 'Content-Type: application/json' (got {got})")


def too_large(exc: BodyTooLarge) -> Refusal:
    return Refusal(exc.status, exc.envelope(), exc.headers)


def not_jsonrpc(exc: RpcInputError) -> Refusal:
    """400 with a JSON-RPC error object (id null): the body could not be read as JSON-RPC."""
    return Refusal(400, error_object(None, exc.code, exc.message))


def forbidden(decision: Decision) -> Refusal:
    """403: the caller is known but has no access to the server (GET and DELETE; calls get JSON-RPC errors)."""
    return envelope(403, str(decision.reason), decision.message)


def rate_limited(denials: Sequence[dict[str, Any]], is_batch: bool,
                 decisions: Sequence[Decision | None]) -> Refusal:
    """429 with `Retry-After`: every call of the request is over a rate limit (the body still carries
    the JSON-RPC errors, with `data.retryAfter`, for clients that read it)."""
    waits = [d.retry_after for d in decisions if d is not None and d.retry_after is not None]
    retry = str(max(1, math.ceil(max(waits, default=1.0)))).encode()
    body: Any = list(denials) if is_batch else (denials[0] if denials else
                                                {"error": "rate_limited", "message": "over a rate limit"})
    return Refusal(429, body, ((b"retry-after", retry),))


def method_not_allowed() -> Refusal:
    return envelope(405, "method_not_allowed", "MCP Streamable HTTP uses POST, GET and DELETE",
                    ((b"allow", b"GET, POST, DELETE"),))


def upstream_failed(route: BoundRoute, exc: UpstreamError, requests: Sequence[RpcMessage],
                    denials: Sequence[dict[str, Any]] = (), is_batch: bool = False) -> Refusal:
    """502 (504 for a timeout) when the server failed before its answer began. JSON-RPC requests each get
    an error with their id (with the request's denials, in one batch answer if it was a batch), so every
    MCP client can tell its caller what happened; a GET or DELETE gets the usual envelope."""
    errors = upstream_errors(route, exc, requests)
    if not errors:
        return envelope(exc.status, exc.reason, _failed(route, exc))
    answers = [*errors, *denials]
    return Refusal(exc.status, answers if is_batch else answers[0])


def upstream_errors(route: BoundRoute, exc: UpstreamError, requests: Sequence[RpcMessage]) -> list[dict[str, Any]]:
    """One JSON-RPC error per forwarded request (those with an id), saying what the server did wrong."""
    message = _failed(route, exc)
    data = {"reason": exc.reason, "server": route.server, "namespace": route.namespace}
    return [error_object(msg.id, UPSTREAM_FAILED, message, data) for msg in requests if msg.is_request]


def _failed(route: BoundRoute, exc: UpstreamError) -> str:
    """What the client reads: which server (by name and route) and what went wrong."""
    return f"the MCP server {route.server} behind {route.path} failed: {exc}"
