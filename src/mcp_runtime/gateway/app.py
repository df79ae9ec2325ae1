"""The gateway: a raw ASGI app. inspect -> authenticate -> authorize -> forward -> audit.

Raw ASGI rather than a framework because this is the hot path of every tool call: one pass over the
headers, one JSON parse of the body, a cached token check, the policy evaluator, and the upstream
bytes passed through (SSE chunk by chunk). Decisions are made only by `mcp_runtime.policy`; this
module turns them into HTTP and JSON-RPC answers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from mcp_runtime.gateway import jsonrpc
from mcp_runtime.gateway.audit import Auditor, tool_arguments, trace_id_from
from mcp_runtime.gateway.auth import Authenticated, extract_token
from mcp_runtime.gateway.keys_source import JwksFile
from mcp_runtime.gateway.lifespan import run_lifespan
from mcp_runtime.gateway.metrics import GatewayMetrics
from mcp_runtime.gateway.relay import (
    MAX_REWRITE,
    SSE,
    Receive,
    Scope,
    Send,
    denial_error,
    filter_tools,
    pass_through,
    response_headers,
    send_empty,
    send_json,
    send_raw,
    send_unauthorized,
    stream,
)
from mcp_runtime.gateway.routes import BoundRoute, GatewayRoute, RouteTable
from mcp_runtime.gateway.sse import SseRewriter, sse_event
from mcp_runtime.gateway.upstream import UpstreamError, UpstreamResponse
from mcp_runtime.policy import Decision, PolicyDocument, allowed_tools, evaluate, evaluate_access
from mcp_runtime.security import TokenError

log = logging.getLogger("mcp_runtime.gateway")

MAX_BODY = 1024 * 1024
"""Largest request body accepted (1 MiB); larger ones get 413 without being read."""

# Never forwarded upstream: hop-by-hop headers, the client's credentials and identity claims, the
# client's Host (the upstream's own is sent), lengths we recompute, encodings we could not rewrite.
_STRIP_REQUEST = frozenset({
    b"host", b"authorization", b"proxy-authorization", b"connection", b"keep-alive", b"proxy-connection",
    b"te", b"trailer", b"transfer-encoding", b"upgrade", b"content-length", b"expect", b"accept-encoding",
    b"x-mcp-human-id", b"x-mcp-agent-id", b"x-mcp-team-id", b"x-mcp-agent-session",
})
_KNOWN_METHODS = frozenset({"GET", "POST", "DELETE"})
_JSON = b"application/json"


class _TooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


def _is_json(content_type: bytes | None) -> bool:
    return content_type is not None and content_type.split(b";", 1)[0].strip().lower() == _JSON


class _Exchange:
    """Per-request bookkeeping for metrics and the audit record."""

    __slots__ = ("bytes_in", "bytes_out", "caller", "decisions", "denied_reason", "doc", "messages", "now",
                 "status", "trace_id")

    def __init__(self) -> None:
        self.status = 500
        self.bytes_in = 0
        self.bytes_out = 0
        self.doc: PolicyDocument | None = None
        self.caller: Authenticated | None = None
        self.messages: list[jsonrpc.RpcMessage] = []
        self.decisions: list[Decision | None] = []
        self.denied_reason: str | None = None
        self.trace_id: str | None = None
        self.now: datetime | None = None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Gateway:
    """An ASGI app governing one server (sidecar) or many (`/<server>/mcp`, process runtime)."""

    def __init__(self, routes: Iterable[GatewayRoute] = (), *, emitter: Any = None,
                 metrics: GatewayMetrics | None = None, max_body: int = MAX_BODY,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        """`clock` is the time decisions are made at (and events are stamped with); tests pass a
        fast-forwarded one to record a week of traffic without waiting a week."""
        self.clock = clock
        self.routes = RouteTable()
        self.metrics = metrics or GatewayMetrics(getattr(emitter, "registry", None))
        self.emitter = emitter
        self.auditor = Auditor(emitter)
        self.max_body = max_body
        self._started = False
        for route in routes:
            self._add(route)

    # -- routes and lifecycle ------------------------------------------------------------------------
    def _add(self, route: GatewayRoute) -> BoundRoute:
        bound = self.routes.add(route)
        bound.reload_listener = lambda ok: self.metrics.count_reload(bound.server, ok)
        route.policy.add_listener(bound.reload_listener)
        return bound

    async def add_route(self, route: GatewayRoute) -> BoundRoute:
        """Mount a server while running (process runtime); its policy source starts watching."""
        bound = self._add(route)
        if self._started:
            await self._start_route(bound)
        return bound

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.emitter is not None:
            await self.emitter.start()
        for bound in self.routes:
            await self._start_route(bound)

    @staticmethod
    async def _start_route(bound: BoundRoute) -> None:
        await bound.source.start()
        if isinstance(bound.config.keys, JwksFile):
            await bound.config.keys.start()

    @staticmethod
    async def _stop_route(bound: BoundRoute) -> None:
        await bound.source.stop()
        if isinstance(bound.config.keys, JwksFile):
            await bound.config.keys.stop()
        await bound.pool.aclose()

    async def remove_route(self, path: str) -> None:
        """Unmount a server; its policy source (which the caller may reuse) stops and forgets the route."""
        bound = self.routes.remove(path)
        if bound is not None:
            await self._stop_route(bound)
            if bound.reload_listener is not None:
                bound.source.remove_listener(bound.reload_listener)
            if isinstance(bound.config.keys, JwksFile):
                bound.config.keys.remove_listener(bound.set_keys)

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        for bound in self.routes:
            await self._stop_route(bound)
        if self.emitter is not None:
            await self.emitter.close()

    @property
    def ready(self) -> bool:
        return len(self.routes) > 0 and all(b.source.document is not None for b in self.routes)

    # -- ASGI ----------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            route = self.routes.get(path)
            if route is None and len(path) > 1 and path.endswith("/"):
                route = self.routes.get(path.rstrip("/"))
            if route is not None:
                await self._mcp(route, scope, receive, send)
            else:
                await self._platform_endpoint(path, scope, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await run_lifespan(receive, send, self.start, self.close, what="gateway")

    async def _platform_endpoint(self, path: str, scope: Scope, send: Send) -> None:
        if path == "/healthz":
            await send_json(send, 200, {"status": "ok"})
        elif path == "/readyz":
            ready = self.ready
            await send_json(send, 200 if ready else 503, {
                "status": "ready" if ready else "policy_unavailable",
                "routes": {b.path: b.source.document is not None for b in self.routes},
            })
        elif path == "/config/status":
            await send_json(send, 200, self.config_status())
        elif path == "/metrics":
            body = self.metrics.render()
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", CONTENT_TYPE_LATEST.encode()), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
        else:
            # Which servers exist is not told to anonymous callers.
            await send_json(send, 404, {"error": "not_found",
                                        "message": f"no MCP server is routed at {path}; MCP endpoints end in /mcp"})

    def config_status(self) -> dict[str, Any]:
        routes = [{"server": b.server, "namespace": b.namespace, "path": b.path, "upstream": b.config.upstream,
                   **b.source.status()} for b in self.routes]
        status: dict[str, Any] = {"ready": self.ready, "routes": routes}
        if len(routes) == 1:  # the sidecar case: its one policy at the top level
            status.update({k: routes[0][k] for k in ("server", "namespace", "revision", "loaded_at",
                                                      "last_error", "last_error_at", "source", "reloads")})
        return status

    # -- the MCP endpoint ----------------------------------------------------------------------------
    async def _mcp(self, route: BoundRoute, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        server = route.server
        inflight = self.metrics.inflight_for(server)
        inflight.inc()
        ex = _Exchange()
        method = scope["method"]
        try:
            if method == "POST":
                await self._post(route, scope, receive, send, ex)
            elif method in ("GET", "DELETE"):
                await self._get_or_delete(route, scope, receive, send, ex)
            else:
                ex.status = 405
                await send_json(send, 405, {"error": "method_not_allowed",
                                            "message": "MCP Streamable HTTP uses POST, GET and DELETE"},
                                [(b"allow", b"GET, POST, DELETE")])
        except _ClientGone:
            ex.status = 499
        finally:
            inflight.dec()
            elapsed = time.perf_counter() - started
            self.metrics.count_request(server, method if method in _KNOWN_METHODS else "other", ex.status)
            self.metrics.observe_duration(server, elapsed)
            if ex.messages:
                self._audit(route, ex, elapsed * 1000.0)

    def _audit(self, route: BoundRoute, ex: _Exchange, latency_ms: float) -> None:
        metrics = self.metrics
        server = route.server
        for msg, decision in zip(ex.messages, ex.decisions, strict=False):
            if decision is not None:
                metrics.count_decision(server, decision.allowed, str(decision.reason))
            elif ex.denied_reason:
                metrics.count_decision(server, False, ex.denied_reason)
            if not msg.is_request or not self.auditor.enabled:
                continue
            self.auditor.record(
                server=server, namespace=route.namespace, doc=ex.doc, caller=ex.caller,
                rpc_method=msg.method or "unknown", tool=msg.tool, decision=decision,
                denied_reason=ex.denied_reason, status=ex.status, latency_ms=latency_ms,
                bytes_in=ex.bytes_in, bytes_out=ex.bytes_out, trace_id=ex.trace_id, now=ex.now,
                arguments=tool_arguments(msg.raw) if msg.tool is not None else None,
            )

    async def _post(self, route: BoundRoute, scope: Scope, receive: Receive, send: Send, ex: _Exchange) -> None:
        doc = route.source.document
        content_type = authorization = alias = length = traceparent = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"authorization":
                authorization = value
            elif name == b"x-mcp-agent-session":
                alias = value
            elif name == b"content-length":
                length = value
            elif name == b"traceparent":
                traceparent = value
        if doc is None:
            ex.status = await self._policy_unavailable(route, send)
            return
        if not _is_json(content_type):
            ex.status = 415
            await send_json(send, 415, {
                "error": "unsupported_media_type",
                "message": "send JSON-RPC with 'Content-Type: application/json' "
                          f"(got {content_type.decode('latin-1') if content_type else 'none'})"})
            return
        try:
            body = await self._read_body(receive, length)
        except _TooLarge:
            ex.status = 413
            await send_json(send, 413, {
                "error": "request_too_large",
                "message": f"the request body is larger than {self.max_body} bytes; send smaller requests"},
                [(b"connection", b"close")])
            return
        ex.bytes_in = len(body)
        try:
            messages, is_batch = jsonrpc.parse_body(body)
        except jsonrpc.RpcInputError as exc:
            ex.status = 400
            await send_json(send, 400, jsonrpc.error_object(None, exc.code, exc.message))
            return
        ex.messages = messages
        ex.doc = doc
        ex.trace_id = trace_id_from(traceparent) if traceparent is not None else None
        now = ex.now = self.clock()

        # Authenticate: a presented token must verify; no token means "no identity" for the policy.
        caller: Authenticated | None = None
        token = extract_token(authorization, alias)
        if token is not None:
            try:
                caller = route.verifier.verify(token, route.audience(doc.revision), now)
            except TokenError as exc:
                ex.decisions = [None] * len(messages)
                ex.denied_reason = exc.reason
                ex.status = 401
                await send_unauthorized(send, exc.reason, str(exc))
                return
        ex.caller = caller
        identity = caller.identity if caller is not None else None

        # Authorize every message with the policy evaluator; the gateway never decides on its own.
        decisions: list[Decision | None] = []
        access: Decision | None = None
        for msg in messages:
            if msg.tool is not None:
                decision = evaluate(doc, identity, msg.tool, now)
            else:
                if access is None:
                    access = evaluate_access(doc, identity, now)
                decision = access
            decisions.append(decision)
            if decision.is_authentication_failure:
                ex.decisions = decisions + [decision] * (len(messages) - len(decisions))
                ex.status = 401
                await send_unauthorized(send, str(decision.reason), decision.message)
                return
        ex.decisions = decisions

        forward: list[jsonrpc.RpcMessage] = []
        denials: list[dict[str, Any]] = []
        list_ids: set[str] = set()
        for msg, verdict in zip(messages, decisions, strict=True):
            assert verdict is not None
            if verdict.allowed:
                forward.append(msg)
                if msg.method == "tools/list" and msg.has_id:
                    list_ids.add(jsonrpc.id_key(msg.id))
            elif msg.has_id:
                denials.append(denial_error(msg, verdict))

        if not forward:
            if not denials:
                ex.status = 202
                await send_empty(send, 202)
            else:
                ex.status = 200
                ex.bytes_out = await send_json(send, 200, denials if is_batch else denials[0])
            return

        upstream_body = body if len(forward) == len(messages) else jsonrpc.dumps([m.raw for m in forward])
        headers = self._upstream_headers(route, scope, caller)
        try:
            response = await route.pool.request(b"POST", self._target(route, scope), headers, upstream_body)
        except UpstreamError as exc:
            ex.status = await self._bad_gateway(route, send, exc)
            return
        ex.status = response.status
        await self._relay_post(route, response, send, receive, ex, doc, identity, now, list_ids, denials,
                               is_batch)

    async def _relay_post(self, route: BoundRoute, response: UpstreamResponse, send: Send, receive: Receive,
                          ex: _Exchange, doc: PolicyDocument, identity: Any, now: datetime,
                          list_ids: set[str], denials: list[dict[str, Any]], is_batch: bool) -> None:
        content_type = response.header(b"content-type") or b""
        rewrite = bool(list_ids or denials)
        if content_type.startswith(SSE):
            rewriter = None
            if list_ids:
                allowed = set(allowed_tools(doc, identity, now))
                rewriter = SseRewriter(lambda m: filter_tools(m, list_ids, allowed))
            tail = b"".join(sse_event(d) for d in denials)
            ex.bytes_out = await stream(response, send, receive, response.status,
                                        response_headers(response), rewriter, tail)
            return
        if not rewrite or not (200 <= response.status < 300):
            ex.bytes_out = await pass_through(response, send, receive)
            return
        try:
            data = await response.read(MAX_REWRITE)
        except UpstreamError as exc:
            ex.status = await self._bad_gateway(route, send, exc)
            return
        payload: Any
        if data.strip():
            try:
                payload = json.loads(data)
            except ValueError:
                ex.bytes_out = await send_raw(send, response.status, response_headers(response), data)
                return
        else:
            payload = None
        if list_ids:
            allowed = set(allowed_tools(doc, identity, now))
            if isinstance(payload, list):
                payload = [filter_tools(m, list_ids, allowed) or m for m in payload]
            elif payload is not None:
                payload = filter_tools(payload, list_ids, allowed) or payload
        if denials:
            if payload is None:
                payload = denials if is_batch else denials[0]
            elif isinstance(payload, list):
                payload = payload + denials
            else:
                payload = [payload, *denials]
        headers = [(k, v) for k, v in response_headers(response) if k != b"content-type"]
        headers.append((b"content-type", b"application/json"))
        status = 200 if response.status == 202 else response.status
        ex.status = status
        ex.bytes_out = await send_raw(send, status, headers, jsonrpc.dumps(payload))

    async def _get_or_delete(self, route: BoundRoute, scope: Scope, receive: Receive, send: Send,
                             ex: _Exchange) -> None:
        """GET opens the server's SSE stream; DELETE ends the MCP session. Both need the caller's access."""
        doc = route.source.document
        if doc is None:
            ex.status = await self._policy_unavailable(route, send)
            return
        authorization = alias = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-mcp-agent-session":
                alias = value
        now = self.clock()
        caller: Authenticated | None = None
        token = extract_token(authorization, alias)
        if token is not None:
            try:
                caller = route.verifier.verify(token, route.audience(doc.revision), now)
            except TokenError as exc:
                ex.status = 401
                self.metrics.count_decision(route.server, False, exc.reason)
                await send_unauthorized(send, exc.reason, str(exc))
                return
        decision = evaluate_access(doc, caller.identity if caller is not None else None, now)
        if not decision.allowed:
            ex.status = 401 if decision.is_authentication_failure else 403
            self.metrics.count_decision(route.server, False, str(decision.reason))
            if ex.status == 401:
                await send_unauthorized(send, str(decision.reason), decision.message)
            else:
                await send_json(send, 403, {"error": str(decision.reason), "message": decision.message})
            return
        method = scope["method"].encode()
        try:
            response = await route.pool.request(method, self._target(route, scope),
                                                self._upstream_headers(route, scope, caller), None)
        except UpstreamError as exc:
            ex.status = await self._bad_gateway(route, send, exc)
            return
        ex.status = response.status
        ex.bytes_out = await pass_through(response, send, receive)

    # -- helpers -------------------------------------------------------------------------------------
    async def _read_body(self, receive: Receive, length: bytes | None) -> bytes:
        limit = self.max_body
        if length is not None:
            try:
                if int(length) > limit:
                    raise _TooLarge
            except ValueError:
                pass  # the server has rejected a malformed length already
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        return parts[0] if len(parts) == 1 else b"".join(parts)

    @staticmethod
    def _target(route: BoundRoute, scope: Scope) -> bytes:
        query = scope.get("query_string", b"")
        path = route.pool.path.encode()
        return path + b"?" + query if query else path

    @staticmethod
    def _upstream_headers(route: BoundRoute, scope: Scope, caller: Authenticated | None) -> list[tuple[bytes, bytes]]:
        headers = [(k, v) for k, v in scope["headers"] if k not in _STRIP_REQUEST]
        if caller is not None:
            headers += caller.headers
        if route.config.upstream_token:
            headers.append((b"authorization", b"Bearer " + route.config.upstream_token.encode()))
        return headers

    async def _policy_unavailable(self, route: BoundRoute, send: Send) -> int:
        error = route.source.last_error
        message = f"no policy is loaded for {route.path} yet; requests are refused until one is"
        if error:
            message += f" (last error: {error})"
        await send_json(send, 503, {"error": "policy_unavailable", "message": message},
                        [(b"retry-after", b"1")])
        return 503

    async def _bad_gateway(self, route: BoundRoute, send: Send, exc: Exception) -> int:
        self.metrics.upstream_errors.labels(route.server).inc()
        log.warning("upstream %s failed: %s", route.config.upstream, exc)
        await send_json(send, 502, {"error": "upstream_unavailable",
                                    "message": f"the MCP server behind {route.path} did not answer: {exc}"})
        return 502
