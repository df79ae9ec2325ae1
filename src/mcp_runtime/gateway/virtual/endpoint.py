"""`/v/<name>/mcp`: a virtual server's MCP endpoint (Streamable HTTP), one client session fanned out to
member sessions (docs/virtual-servers.md).

The caller authenticates once, with a session token for the virtual server (audience
`mcp-server:<namespace>/<virtual server>`). Every message that reaches a member is decided by that
member's policy document through the one evaluator (`govern.py`); the answer to a call is streamed
back as SSE with the member's ids mapped to the client's, and requests the member sends meanwhile
(elicitation, sampling, roots) are passed to the client under virtual ids and their answers routed
back. Messages are passed as JSON, never re-typed, so fields a member adds reach the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mcp_runtime.gateway import jsonrpc
from mcp_runtime.gateway.approval import ApprovalBroker
from mcp_runtime.gateway.audit import Auditor, call_arguments
from mcp_runtime.gateway.auth import Authenticated, TokenVerifier, bearer_challenge, extract_token
from mcp_runtime.gateway.keys_source import JwksFile
from mcp_runtime.gateway.metrics import GatewayMetrics
from mcp_runtime.gateway.relay import denial_error, send_empty, send_json
from mcp_runtime.gateway.resource_metadata import origin_allowed
from mcp_runtime.gateway.routes import BoundRoute
from mcp_runtime.gateway.sse import sse_event
from mcp_runtime.gateway.virtual import approve, catalog, forward, govern
from mcp_runtime.gateway.virtual.fanout import member_list
from mcp_runtime.gateway.virtual.mapping import (
    MemberKey,
    build_tool_map,
    cancelled_for,
    intersect_capabilities,
    resolve_name,
)
from mcp_runtime.gateway.virtual.session import VirtualSession
from mcp_runtime.policy import Decision
from mcp_runtime.resources import MCPVirtualServer, virtual_path
from mcp_runtime.security import PublicKeySet, TokenError, session_audience
from mcp_runtime.wire import BodyTooLarge, ClientDisconnected, read_body
from mcp_runtime.wire.asgi import Receive, Scope, Send
from mcp_runtime.wire.jsonrpc import DENIED, error_object

log = logging.getLogger("mcp_runtime.gateway.virtual")

MAX_BODY = 1024 * 1024
MAX_SESSIONS = 10_000
SESSION_IDLE = 1800.0
"""Seconds a client session may stay silent (no request, no open stream) before it and its member
sessions are closed; the client then gets 404 and initializes again, as MCP prescribes."""
PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26")
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
_METHODS = frozenset({"POST", "GET", "DELETE"})


@dataclass
class VirtualRoute:
    """A virtual server as the gateway serves it; `resolve` finds a member's governed route."""

    server: MCPVirtualServer
    keys: PublicKeySet | JwksFile
    resolve: Callable[[MemberKey], BoundRoute | None] = lambda key: None
    allowed_origins: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.server.metadata.name

    @property
    def namespace(self) -> str:
        return self.server.metadata.namespace or ""

    @property
    def path(self) -> str:
        return virtual_path(self.name)


class _Refused(Exception):
    def __init__(self, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or []


class VirtualEndpoint:
    """The ASGI handler of one virtual server."""

    def __init__(self, route: VirtualRoute, auditor: Auditor, clock: Callable[[], datetime],
                 metrics: GatewayMetrics | None = None, *, tools_seen: Callable[[BoundRoute], None] | None = None,
                 approvals: Callable[[], ApprovalBroker | None] = lambda: None) -> None:
        """`tools_seen`: told after a member's tools were listed (the gateway reports drift, as after its
        own route's list); `approvals`: the gateway's broker at the time of a call (approve.py)."""
        self.route = route
        self.tools_seen = tools_seen
        self.approvals = approvals
        self.metrics = metrics
        self.auditor = auditor
        self.clock = clock
        keys = route.keys.keys if isinstance(route.keys, JwksFile) else route.keys
        self.verifier = TokenVerifier(keys)
        self.sessions: dict[str, VirtualSession] = {}
        self.capabilities: dict[MemberKey, dict[str, Any]] = {}
        """Each member's capabilities as its last `initialize` answered (the intersection's inputs)."""

    @property
    def members(self) -> list[tuple[MemberKey, Any]]:
        namespace = self.route.namespace
        return [(m.key(namespace), m) for m in self.route.server.spec.members]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One HTTP request; counted in the gateway's metrics under the virtual server's name."""
        started = time.perf_counter()
        status = [500]

        async def counted(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.handle(scope, receive, counted)
        finally:
            if self.metrics is not None:
                name = f"v/{self.route.name}"
                self.metrics.count_request(name, scope["method"] if scope["method"] in _METHODS else "other",
                                           status[0])
                self.metrics.observe_duration(name, time.perf_counter() - started)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[bytes, bytes] = dict(scope["headers"])
        try:
            origin = headers.get(b"origin")
            if origin is not None and not origin_allowed(origin, self.route.allowed_origins):
                raise _Refused(403, {"error": "origin_not_allowed", "message": "requests from this web origin "
                                     "are not accepted; serve the client from a loopback address"})
            caller = self.authenticate(headers)
            method = scope["method"]
            if method == "POST":
                await self.post(headers, caller, receive, send)
            elif method == "GET":
                await self.stream(self.session_of(headers, caller), receive, send)
            elif method == "DELETE":
                session = self.session_of(headers, caller)
                self.sessions.pop(session.id, None)
                await session.close()
                await send_empty(send, 204)
            else:
                raise _Refused(405, {"error": "method_not_allowed", "message": "use POST, GET or DELETE"},
                               [(b"allow", b"GET, POST, DELETE")])
        except _Refused as refused:
            await send_json(send, refused.status, refused.body, refused.headers)
        except ClientDisconnected:
            return

    # -- authentication and sessions -----------------------------------------------------------------
    def authenticate(self, headers: dict[bytes, bytes]) -> Authenticated:
        """The caller, from a session token for this virtual server; none or a bad one is a 401."""
        token = extract_token(headers.get(b"authorization"), headers.get(b"x-mcp-agent-session"))
        reason, message = "missing_identity", "send a session token for this virtual server as a Bearer token"
        if token is not None:
            try:
                return self.verifier.verify(token, session_audience(self.route.namespace, self.route.name),
                                            self.clock())
            except TokenError as exc:
                reason, message = exc.reason, str(exc)
        raise _Refused(401, {"error": reason, "message": message},
                       [(b"www-authenticate", bearer_challenge(reason, message))])

    def session_of(self, headers: dict[bytes, bytes], caller: Authenticated) -> VirtualSession:
        raw = headers.get(b"mcp-session-id")
        session = self.sessions.get(raw.decode("latin-1")) if raw else None
        if session is not None and session.owned_by(caller):
            session.last_used = time.monotonic()
            return session
        raise _Refused(404 if raw else 400, {"error": "session_not_found" if raw else "missing_session_id",
                                             "message": "no such MCP session here; send initialize first"})

    # -- POST ----------------------------------------------------------------------------------------
    async def post(self, headers: dict[bytes, bytes], caller: Authenticated, receive: Receive, send: Send) -> None:
        content_type = headers.get(b"content-type") or b""
        if content_type.split(b";", 1)[0].strip().lower() != b"application/json":
            raise _Refused(415, {"error": "unsupported_media_type", "message": "send JSON-RPC with "
                                 f"'Content-Type: application/json' (got {content_type.decode('latin-1') or 'none'})"})
        try:
            body = await read_body(receive, MAX_BODY, headers.get(b"content-length"))
        except BodyTooLarge as exc:
            raise _Refused(exc.status, exc.envelope(), list(exc.headers)) from None
        try:
            messages, is_batch = jsonrpc.parse_body(body)
        except jsonrpc.RpcInputError as exc:
            raise _Refused(400, error_object(None, exc.code, exc.message)) from None
        if is_batch:
            raise _Refused(400, error_object(None, jsonrpc.INVALID_REQUEST,
                                             "Invalid Request: a virtual server takes one message per POST"))
        msg = messages[0]
        if msg.method == "initialize" and msg.is_request:
            await self.initialize(msg, caller, send)
            return
        session = self.session_of(headers, caller)
        if msg.is_request:
            await self.request(session, msg, receive, send)
        elif msg.is_notification:
            await self.notification(session, msg.raw)
            await send_empty(send, 202)
        else:
            await self.client_answer(session, msg.raw)
            await send_empty(send, 202)

    async def expire_idle(self) -> None:
        """Close the client sessions idle longer than `SESSION_IDLE` (swept whenever a session starts)."""
        now = time.monotonic()
        for session in [s for s in self.sessions.values() if s.idle_for(now) > SESSION_IDLE]:
            self.sessions.pop(session.id, None)
            await session.close()

    async def initialize(self, msg: jsonrpc.RpcMessage, caller: Authenticated, send: Send) -> None:
        await self.expire_idle()
        if len(self.sessions) >= MAX_SESSIONS:
            raise _Refused(503, {"error": "too_many_sessions", "message": "too many open sessions; retry later"},
                           [(b"retry-after", b"5")])
        raw_params = msg.raw.get("params")
        params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
        identity = govern.member_identity(caller.identity, self.route.namespace)
        self.refuse_if_unauthenticated(identity)
        session = VirtualSession(caller, identity, dict(params), self.route.resolve)
        self.sessions[session.id] = session
        asked = params.get("protocolVersion")
        version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
        await self.learn_capabilities(session)
        known = [self.capabilities[k] for k, _ in self.members if k in self.capabilities]
        result = {"protocolVersion": version, "capabilities": intersect_capabilities(known),
                  "serverInfo": {"name": self.route.name, "version": "virtual"},
                  "instructions": f"Virtual MCP server {self.route.name}: the tools of "
                                  f"{', '.join(k[1] for k, _ in self.members)}, each governed by its own "
                                  "server's policy."}
        body = jsonrpc.dumps({"jsonrpc": "2.0", "id": msg.id, "result": result})
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"mcp-session-id", session.id.encode()),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def refuse_if_unauthenticated(self, identity: Any) -> None:
        """401 when every member that decides says the caller's session is not valid (revoked, expired,
        unknown): each member's own document says so, through the same evaluator."""
        now = self.clock()
        decisions = [d for key, _ in self.members if (route := self.route.resolve(key)) is not None
                     and (d := govern.access(route, identity, now)) is not None]
        if decisions and all(d.is_authentication_failure for d in decisions):
            first = decisions[0]
            raise _Refused(401, {"error": str(first.reason), "message": first.message},
                           [(b"www-authenticate", bearer_challenge(str(first.reason), first.message))])

    async def learn_capabilities(self, session: VirtualSession) -> None:
        """Members whose capabilities are not known yet are opened for this session now (the first
        client session pays for it once; later sessions open members only when they need them)."""
        for key, _ in self.members:
            if key not in self.capabilities:
                link = await session.link(key)
                if link is not None:
                    self.capabilities[key] = link.capabilities

    async def notification(self, session: VirtualSession, raw: dict[str, Any]) -> None:
        method = raw.get("method")
        if method == "notifications/initialized":
            return
        if method == "notifications/cancelled":
            raw_params = raw.get("params")
            request_id = raw_params.get("requestId") if isinstance(raw_params, dict) else None
            entry = session.inflight.pop(jsonrpc.id_key(request_id), None)
            if entry is None:  # not forwarded: perhaps waiting for approval (approve.py), else nothing to do
                if session.waiting:
                    approve.cancel(session, request_id)
                return
            key, member_id, task = entry
            link = session.links.get(key)
            forwarded = cancelled_for(raw, lambda _: member_id)
            if link is not None and forwarded is not None:
                with contextlib.suppress(Exception):
                    await link.post(forwarded)
            task.cancel()
            return
        for link in list(session.links.values()):  # roots/list_changed and the like: every open member
            with contextlib.suppress(Exception):
                await link.post(raw)

    async def client_answer(self, session: VirtualSession, raw: dict[str, Any]) -> None:
        """The client answered a request a member sent it: back to that member, with the member's id (or
        one of the gateway's own approval questions: approve.py)."""
        if approve.answered(session, raw):
            return
        target = session.server_requests.back(raw.get("id"))
        if target is None:
            return
        key, member_id = target
        link = session.links.get(key)
        if link is not None:
            with contextlib.suppress(Exception):
                await link.post({**raw, "id": member_id})

    async def request(self, session: VirtualSession, msg: jsonrpc.RpcMessage, receive: Receive, send: Send) -> None:
        if msg.method == "ping":
            await send_json(send, 200, {"jsonrpc": "2.0", "id": msg.id, "result": {}})
        elif msg.method == "tools/list":
            tools = await self.list_tools(session, msg)
            await send_json(send, 200, {"jsonrpc": "2.0", "id": msg.id, "result": {"tools": tools}})
        elif msg.method == "tools/call":
            await self.call_tool(session, msg, receive, send)
        elif msg.method in catalog.METHODS:
            await send_json(send, 200, await catalog.answer(self, session, msg))
        else:
            await send_json(send, 200, error_object(msg.id, METHOD_NOT_FOUND,
                                                    "Method not found: a virtual server serves tools, resources "
                                                    f"and prompts; {msg.method} is not aggregated"))

    # -- tools -------------------------------------------------------------------------------------
    async def list_tools(self, session: VirtualSession, msg: jsonrpc.RpcMessage | None) -> list[dict[str, Any]]:
        """The union of what the caller may call on each available member, named for the client."""
        now = self.clock()
        listed: dict[MemberKey, list[Any]] = {}
        refused: list[Decision] = []
        for key, _ in self.members:
            route = self.route.resolve(key)
            decision = govern.access(route, session.identity, now) if route is not None else None
            if route is None or decision is None or not decision.allowed:
                if decision is not None:
                    refused.append(decision)
                    self.audit(session, key, route, "tools/list", None, decision, 200, now)
                continue
            tools = await member_list(session, key, "tools/list", "tools")
            if tools is not None:
                listed[key] = govern.visible(route, session.identity, now, tools)
                if self.tools_seen is not None:
                    self.tools_seen(route)  # drift first seen here is reported now, not at the next probe
        if refused and not listed and all(d.is_authentication_failure for d in refused):
            self.refuse_if_unauthenticated(session.identity)
        session.tool_map = build_tool_map(self.members, listed, self.route.server.spec.conflict_policy)
        for conflict in session.tool_map.conflicts:
            log.warning("virtual server %s: tool %s of %s hidden, %s has that name", self.route.name, conflict.name,
                        conflict.dropped[1], conflict.kept[1])
        return session.tool_map.tools

    def target_of(self, session: VirtualSession, name: str) -> tuple[MemberKey, str] | None:
        if session.tool_map is not None:
            found = session.tool_map.target(name)
            if found is not None:
                return found
        return resolve_name(self.members, self.route.server.spec.conflict_policy, name)

    async def call_tool(self, session: VirtualSession, msg: jsonrpc.RpcMessage, receive: Receive,
                        send: Send) -> None:
        """Judge the call by its member's policy; if allowed, stream the member's answer back."""
        now = self.clock()
        name = msg.tool or ""
        if session.tool_map is None:
            await self.list_tools(session, None)
        target = self.target_of(session, name)
        if target is None:
            await send_json(send, 200, error_object(msg.id, INVALID_PARAMS, f"Unknown tool: {name} is not a tool "
                                                    f"of virtual server {self.route.name}; tools/list shows them"))
            return
        key, tool = target
        route = self.route.resolve(key)
        if route is None or key in session.down:
            await self.member_unavailable(session, msg, key, send)
            return
        decision = govern.call_decision(route, session.identity, tool, call_arguments(msg.raw), now)
        if decision is not None and decision.needs_approval:  # waits for a person, as on the member's route
            send = approve.CallAnswer(send)
            decision = await approve.settle(self, session, key, route, tool, msg.raw, decision, receive, send, now)
        if decision is None or not decision.allowed:
            body = denial_error(msg, decision) if decision is not None else error_object(
                msg.id, DENIED, f"no policy is loaded for member {key[1]} yet", {"reason": "policy_unavailable"})
            if decision is not None:
                body["error"]["data"]["virtualServer"] = self.route.name
            self.audit(session, key, route, "tools/call", tool, decision, 200, now, msg.raw)
            await approve.respond(send, 200, body)
            return
        await self.forward_call(session, msg, key, route, tool, decision, now, receive, send)

    async def forward_call(self, session: VirtualSession, msg: jsonrpc.RpcMessage, key: MemberKey,
                           route: BoundRoute, tool: str, decision: Decision, now: datetime, receive: Receive,
                           send: Send) -> None:
        link = await session.link(key)
        if link is None:
            await self.member_unavailable(session, msg, key, send)
            return
        status = await forward.stream_answer(session, link, msg, tool, self.route.name, receive, send)
        self.audit(session, key, route, "tools/call", tool, decision, status, now, msg.raw)
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    def unavailable_error(self, session: VirtualSession, msg_id: Any, key: MemberKey) -> dict[str, Any]:
        return forward.unavailable_error(self.route.name, session, msg_id, key)

    async def member_unavailable(self, session: VirtualSession, msg: jsonrpc.RpcMessage, key: MemberKey,
                                 send: Send) -> None:
        await approve.respond(send, 200, self.unavailable_error(session, msg.id, key))  # on the stream if open

    # -- the client's stream -------------------------------------------------------------------------
    async def stream(self, session: VirtualSession, receive: Receive, send: Send) -> None:
        """GET: what members send outside answers (list changes, their requests), as SSE, until the
        client leaves. One stream per session."""
        if session.streaming:
            raise _Refused(409, {"error": "stream_open", "message": "this session has a stream open already"})
        session.streaming = True
        await send({"type": "http.response.start", "status": 200, "headers": list(forward.SSE_HEAD)})
        left = asyncio.ensure_future(forward.disconnected(receive))
        try:
            while True:
                got = asyncio.ensure_future(session.outbox.get())
                done, _ = await asyncio.wait({got, left}, return_when=asyncio.FIRST_COMPLETED)
                if left in done:
                    got.cancel()
                    return
                await send({"type": "http.response.body", "body": sse_event(got.result()), "more_body": True})
        except OSError:
            return
        finally:
            session.streaming = False
            left.cancel()

    # -- audit and lifecycle -------------------------------------------------------------------------
    def audit(self, session: VirtualSession, key: MemberKey, route: BoundRoute | None, method: str,
              tool: str | None, decision: Decision | None, status: int, now: datetime,
              raw: dict[str, Any] | None = None) -> None:
        if self.metrics is not None and decision is not None:
            self.metrics.count_decision(key[1], decision.allowed, str(decision.reason))
        if not self.auditor.enabled:
            return
        doc = route.source.document if route is not None else None
        self.auditor.record(server=key[1], namespace=key[0], doc=doc, caller=session.caller, rpc_method=method,
                            tool=tool, decision=decision, denied_reason=None, status=status, latency_ms=0.0,
                            bytes_in=0, bytes_out=0, trace_id=None, now=now,
                            arguments=(raw.get("params") or {}).get("arguments") if raw else None,
                            virtual_server=f"{self.route.namespace}/{self.route.name}",
                            identity=session.identity)

    async def close(self) -> None:
        sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            await session.close()

