"""`adapter proxy`: a local MCP Streamable HTTP endpoint that forwards to the runtime with a session token.

Clients talk to `http://127.0.0.1:8099/mcp` (or `/`) with no credentials; the proxy sends each
request to the runtime URL with `Authorization: Bearer <session token>` and passes the answer back
as it arrives (SSE chunk by chunk, never buffered whole). A client's own `Authorization` and
identity headers are never forwarded: only the MCP headers and content negotiation are.

When the runtime refuses a request (401 `session_expired`, `session_revoked`, ...) or cannot be
reached, every request in the body gets a JSON-RPC error with its id (HTTP 200), so the client shows
the reason. The proxy injects credentials, so a browser page must not be able to use it: requests
whose Host or Origin is not this machine are refused unless the proxy was started with `--allow-remote`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from starlette.types import Message, Receive, Scope, Send

from mcp_runtime.adapter import jsonrpc
from mcp_runtime.adapter.config import is_loopback
from mcp_runtime.adapter.session import EXPIRED_REASONS, AdapterError, SessionManager
from mcp_runtime.adapter.tracing import AdapterTracing
from mcp_runtime.wire.body import BodyTooLarge, ClientDisconnected, read_body

if TYPE_CHECKING:
    from mcp_runtime.telemetry import Telemetry

log = logging.getLogger("mcp_runtime.adapter.proxy")

MCP_PATHS = ("/mcp", "/")
MAX_BODY = 4 * 1024 * 1024
FORWARDED_HEADERS = frozenset({"accept", "content-type", "last-event-id", "traceparent", "tracestate",
                               "user-agent"})
FAILURE_STATUS = {"not_logged_in": 401, "session_revoked": 401, "session_expired": 401, "no_matching_grant": 403,
                  "namespace_ambiguous": 409, "missing_token": 401}
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "trailers", "transfer-encoding", "upgrade", "date", "server"})


def upstream_timeout() -> httpx.Timeout:
    """No read timeout: a GET stream or a long tool call may stay quiet for minutes."""
    return httpx.Timeout(30.0, read=None)


class AdapterProxy:
    """The proxy as an ASGI app; its lifespan owns the upstream client and the session refresher."""

    def __init__(self, sessions: SessionManager, *, allow_remote: bool = False,
                 telemetry: Telemetry | None = None) -> None:
        self.sessions = sessions
        self.tracing = AdapterTracing(telemetry) if telemetry is not None else None
        self.runtime_url = sessions.settings.runtime_url
        self.allow_remote = allow_remote
        self.http: httpx.AsyncClient | None = None
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.http = httpx.AsyncClient(timeout=upstream_timeout(), follow_redirects=False)
        if self.sessions.auto_refresh:
            self._refresher = asyncio.create_task(self.sessions.refresher())

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self.http is not None:
            await self.http.aclose()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if not self.allow_remote and not _local_request(scope):
            await _json(send, 403, {"error": "forbidden", "message": "the adapter proxy only serves this machine "
                                    "(Host and Origin must be localhost); start it with --allow-remote to change that"})
            return
        path = scope.get("path", "")
        if path == "/healthz":
            await _json(send, 200, {"status": "ok", **self.sessions.describe()})
        elif path in MCP_PATHS:
            if scope["method"] not in ("POST", "GET", "DELETE"):
                await _json(send, 405, {"error": "method_not_allowed", "message": "use POST, GET or DELETE"},
                            [(b"allow", b"GET, POST, DELETE")])
                return
            await self._forward(scope, receive, send)
        else:
            await _json(send, 404, {"error": "not_found", "message": "the MCP endpoint is /mcp"})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # forwarding ---------------------------------------------------------------------------------
    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await read_body(receive, MAX_BODY, _header(scope, b"content-length"))
        except BodyTooLarge as exc:
            await _json(send, exc.status, exc.envelope(), list(exc.headers))
            return
        except ClientDisconnected:
            return
        method = scope["method"]
        messages = jsonrpc.parse_messages(body) if method == "POST" else []
        ids = jsonrpc.request_ids(messages)
        headers = _upstream_headers(scope)
        if self.tracing is None:
            await self._send_upstream(scope, body, ids, headers, send, receive)
            return
        with self.tracing.span(method, messages, headers) as traced:
            await self._send_upstream(scope, body, ids, traced, send, receive)

    async def _send_upstream(self, scope: Scope, body: bytes, ids: list[Any], headers: dict[str, str], send: Send,
                             receive: Receive) -> None:
        """Forward with the session token; renew it once when the runtime says it expired."""
        method = scope["method"]
        query = scope.get("query_string", b"").decode("latin-1")
        url = self.runtime_url + (("&" if "?" in self.runtime_url else "?") + query if query else "")
        assert self.http is not None
        token: str | None = None
        for attempt in (1, 2):
            try:
                token = await self.sessions.token()
                request = self.http.build_request(method, url, content=body or None,
                                                  headers={**headers, "authorization": f"Bearer {token}"})
                response = await self.http.send(request, stream=True)
            except AdapterError as exc:
                await self._fail(send, ids, exc)
                return
            except httpx.TransportError as exc:
                await self._fail(send, ids, self.sessions.unreachable(exc))
                return
            if response.status_code < 400:
                await self._relay(response, send, receive)
                return
            data = await _read_closed(response)
            envelope = jsonrpc.gateway_envelope(data)
            if envelope is not None and response.status_code == 401 and envelope[0] in EXPIRED_REASONS \
                    and self.sessions.auto_refresh and attempt == 1:
                try:
                    await self.sessions.renew(token)
                except AdapterError as exc:
                    await self._fail(send, ids, exc)
                    return
                continue
            if envelope is not None and (ids or response.status_code in (401, 403)):
                # e.g. 401 session_revoked, 503 policy_unavailable: the client gets the reason, not a bare status
                await self._fail(send, ids, self.sessions.runtime_refusal(response.status_code, *envelope),
                                 status=response.status_code)
                return
            await _raw(send, response.status_code, _response_headers(response), data)
            return

    async def _fail(self, send: Send, ids: list[Any], error: AdapterError, *, status: int | None = None) -> None:
        """Requests get JSON-RPC errors with their ids; anything else (GET, DELETE, notifications) the envelope."""
        log.warning("%s", error.line())
        status = status or FAILURE_STATUS.get(error.reason, 502)
        if ids:
            errors = [jsonrpc.error_response(i, error.reason, error.line(), server=self.sessions.settings.server)
                      for i in ids]
            await _json(send, 200, errors if len(errors) > 1 else errors[0])
        else:
            await _json(send, status, {"error": error.reason, "message": error.line()})

    async def _relay(self, response: httpx.Response, send: Send, receive: Receive) -> None:
        """Pass the answer through chunk by chunk; stop reading upstream when the client goes away."""
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": _response_headers(response)})
            gone = asyncio.create_task(_wait_disconnect(receive))
            try:
                async for chunk in _chunks_until(response, gone):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            finally:
                gone.cancel()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (httpx.TransportError, OSError) as exc:
            log.info("upstream stream ended early: %s", type(exc).__name__)
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()


async def _chunks_until(response: httpx.Response, gone: asyncio.Task[None]) -> Any:
    """Raw chunks as they arrive, ending early when `gone` (the client disconnected) completes."""
    iterator = response.aiter_raw().__aiter__()
    while True:
        next_chunk = asyncio.ensure_future(iterator.__anext__())
        done, _ = await asyncio.wait({next_chunk, gone}, return_when=asyncio.FIRST_COMPLETED)
        if next_chunk not in done:
            next_chunk.cancel()
            with contextlib.suppress(BaseException):
                await next_chunk
            return
        try:
            chunk = next_chunk.result()
        except StopAsyncIteration:
            return
        if chunk:
            yield chunk


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


async def _read_closed(response: httpx.Response) -> bytes:
    try:
        return await response.aread()
    finally:
        await response.aclose()


def _upstream_headers(scope: Scope) -> dict[str, str]:
    """Only what MCP needs: content negotiation and the `Mcp-*` headers; never credentials or identity."""
    headers: dict[str, str] = {"accept-encoding": "identity"}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        if name in FORWARDED_HEADERS or name.startswith("mcp-"):
            headers[name] = raw_value.decode("latin-1")
    return headers


def _response_headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    return [(k.lower(), v) for k, v in response.headers.raw if k.lower().decode("latin-1") not in HOP_BY_HOP]


def _local_request(scope: Scope) -> bool:
    """Host (and Origin, when a browser sends one) name this machine: no DNS rebinding, no foreign pages."""
    host = origin = None
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1")
        elif name == b"origin":
            origin = value.decode("latin-1")
    if host is not None and not is_loopback(_hostname(host)):
        return False
    if origin is not None and origin != "null":
        return is_loopback(urlsplit(origin).hostname or "")
    return True


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _json(send: Send, status: int, payload: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(payload).encode()
    await _raw(send, status, [(b"content-type", b"application/json"), *(extra or [])], body)


async def _raw(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [(k, v) for k, v in headers if k not in (b"content-length",)]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
