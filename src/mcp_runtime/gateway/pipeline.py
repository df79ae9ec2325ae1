"""The request path of a governed server: admit -> parse -> authenticate -> authorize -> limit -> forward -> relay.

Why named steps: each feature of the gateway belongs to exactly one of them, and the two flows that
string them together (`RequestPath.post`, `RequestPath.stream_or_end`) stay a few lines that read like
the list above. The steps share one request context, `Exchange` (exchange.py); a step ends the request
early by raising a `Refusal` (refusal.py), which the flow sends. Metrics and the analytics event are
taken from the context when the request is over, however far it got (`RequestPath.finish`).

Where the features of this milestone plug in, without changing the flows:

- OAuth 2.1 access tokens bound to the server: `authenticate` asks `route.verifier`, which can accept a
  second kind of token; every 401 carries `route.challenge(...)` as `WWW-Authenticate`, the one place to
  add `resource_metadata=...`.
- Argument conditions: `authorize` hands the evaluator each call's arguments; the evaluator decides.
- Rate limits and quotas: the evaluator names the limits of an allowed call; the `limit` step counts
  them in the route's `Limiter` (limits.py) and refuses a spent one (`rate_limited`, 429).
- Tool-definition pinning: `authorize` denies a call whose tool changed; `visible_tools` hides such a
  tool from `tools/list` answers.
- Human approval: `authorize` is a coroutine: a call the evaluator says needs approval waits there
  (approval.py: MCP elicitation on the request's own SSE stream, or the route's `ApprovalBroker`), until
  decided, timed out, or ended by its caller (a disconnect, or a `notifications/cancelled` for it).
- Virtual servers, stdio and remote upstreams: `forward` only knows `route.upstream`, an `Upstream`
  (upstream/base.py) that gets the allowed messages already parsed.
- OpenTelemetry (tracing.py): a span per request, begun in `__call__`, made the upstream's parent in
  `forward`, ended with the decision before `finish`; `tracing` None (off) costs three `is None` tests.

Raw ASGI rather than a framework because this is the hot path of every tool call: one pass over the
headers, one JSON parse of the body, a cached token check, the evaluator, and the upstream's bytes
passed through (SSE chunk by chunk, parsed only when a `tools/list` answer must be filtered).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from itertools import zip_longest
from typing import TYPE_CHECKING, Any

from mcp_runtime.gateway import jsonrpc, refusal
from mcp_runtime.gateway.approval import ApprovalBroker, note_elicitation, remember_elicitation, settle, take_answers
from mcp_runtime.gateway.audit import Auditor, call_arguments, tool_arguments, trace_id_from
from mcp_runtime.gateway.auth import extract_token
from mcp_runtime.gateway.catch_up import catch_up
from mcp_runtime.gateway.credentials import SessionCredentials
from mcp_runtime.gateway.exchange import Exchange
from mcp_runtime.gateway.jsonrpc import RpcMessage
from mcp_runtime.gateway.metrics import GatewayMetrics
from mcp_runtime.gateway.refusal import Refusal, Unauthorized
from mcp_runtime.gateway.relay import (
    MAX_REWRITE,
    SSE,
    StreamFailed,
    ToolFilter,
    denial_error,
    filter_tools,
    is_json,
    is_json_answer,
    merge_answer,
    pass_through,
    response_headers,
    send_empty,
    send_json,
    send_raw,
    small_answer,
    stream,
)
from mcp_runtime.gateway.routes import BoundRoute
from mcp_runtime.gateway.sse import SseRewriter, sse_event
from mcp_runtime.gateway.upstream import (
    UpstreamCredentialMissing,
    UpstreamCredentialRejected,
    UpstreamError,
    UpstreamInvalidAnswer,
    UpstreamRequest,
)
from mcp_runtime.gateway.upstream.headers import upstream_headers
from mcp_runtime.policy import Decision, Reason, allowed_tools, evaluate, evaluate_access
from mcp_runtime.resources.common import utcnow
from mcp_runtime.security import TokenError
from mcp_runtime.wire import BodyTooLarge, ClientDisconnected, read_body
from mcp_runtime.wire.asgi import Receive, Scope, Send

if TYPE_CHECKING:
    from mcp_runtime.gateway.tracing import GatewayTracing

log = logging.getLogger("mcp_runtime.gateway")

MAX_BODY = 1024 * 1024
"""Largest request body accepted (1 MiB); larger ones get 413 without being read."""

_METHODS = {"POST": b"POST", "GET": b"GET", "DELETE": b"DELETE"}


class RequestPath:
    """Runs the steps for each request to a route; owns nothing per request (that is the `Exchange`)."""

    def __init__(self, metrics: GatewayMetrics, auditor: Auditor, *, max_body: int = MAX_BODY,
                 clock: Callable[[], datetime] = utcnow) -> None:
        """`clock` is the time decisions are made at (and events are stamped with); tests pass a
        fast-forwarded one to record a week of traffic without waiting a week."""
        self.clock = clock
        self.tools_seen: Callable[[BoundRoute], None] | None = None
        """Called after a `tools/list` answer was relayed (the gateway reports tool drift from it)."""
        self.approvals: ApprovalBroker | None = None
        """Where calls that need an out-of-band approval wait (None: they are refused `approval_unavailable`)."""
        self.metrics = metrics
        self.auditor = auditor
        self.max_body = max_body
        self.tracing: GatewayTracing | None = None
        """Set when traces are exported (gateway/tracing.py); None (off) costs an `is None` test per step."""

    async def __call__(self, route: BoundRoute, scope: Scope, receive: Receive, send: Send) -> None:
        """One request to a governed server, from arrival to metrics and audit record."""
        started = time.perf_counter()
        server = route.server
        inflight = self.metrics.inflight_for(server, route.upstream)
        inflight.inc()
        ex = Exchange(route, scope, receive, send)
        if self.tracing is not None:
            ex.span = self.tracing.request()
        method = scope["method"]
        try:
            if method == "POST":
                await self.post(ex)
            elif method == "GET" or method == "DELETE":
                await self.stream_or_end(ex)
            else:
                await self.refuse(ex, refusal.method_not_allowed())
        except ClientDisconnected:
            ex.status = 499
        finally:
            inflight.dec()
            if ex.span is not None:
                ex.span.end(ex)  # first: it names the trace the audit record carries
            self.finish(ex, server, method, time.perf_counter() - started)

    # -- the two flows -------------------------------------------------------------------------------
    async def post(self, ex: Exchange) -> None:
        """JSON-RPC messages: each is judged; the allowed go upstream, the denied are answered here."""
        try:
            self.admit(ex)
            await self.parse(ex)
            self.authenticate(ex)
            await catch_up(ex)  # a session issued a moment ago may not be in this gateway's policy yet
            await self.authorize(ex)
            self.limit(ex)
            if ex.forward:
                await self.forward(ex)
                if ex.elicits:
                    remember_elicitation(ex)
                await self.relay(ex)
            else:
                await self.answer_here(ex)
        except Refusal as answer:
            await self.refuse(ex, answer)

    async def stream_or_end(self, ex: Exchange) -> None:
        """GET opens the server's SSE stream, DELETE ends the MCP session: no messages to judge, but the
        caller needs access to the server, decided as for any request that is not a tool call."""
        try:
            self.admit(ex)
            self.authenticate(ex)
            await catch_up(ex)
            self.authorize_access(ex)
            await self.forward(ex)
            await self.relay(ex)
        except Refusal as answer:
            await self.refuse(ex, answer)

    # -- the steps -----------------------------------------------------------------------------------
    def admit(self, ex: Exchange) -> None:
        """Take the route's policy document once, so one request is judged by one revision, and the time
        every decision of the request is made at. No document yet: 503, the gateway fails closed."""
        if ex.origin is not None and not ex.route.origin_allowed(ex.origin):
            raise refusal.origin_not_allowed(ex.origin)
        doc = ex.route.source.document
        if doc is None:
            raise refusal.policy_unavailable(ex.route)
        ex.doc = doc
        ex.now = self.clock()

    async def parse(self, ex: Exchange) -> None:
        """A POST must be JSON-RPC: JSON content type, at most `max_body` bytes, well-formed messages.
        Anything else is answered here with its cause (415, 413, 400) and never reaches the server."""
        if not is_json(ex.content_type):
            raise refusal.unsupported_media_type(ex.content_type)
        try:
            body = await read_body(ex.receive, self.max_body, ex.content_length)
        except BodyTooLarge as exc:
            raise refusal.too_large(exc) from None
        ex.body = body
        ex.bytes_in = len(body)
        try:
            ex.messages, ex.is_batch = jsonrpc.parse_body(body)
        except jsonrpc.RpcInputError as exc:
            raise refusal.not_jsonrpc(exc) from None
        if ex.traceparent is not None:
            ex.trace_id = trace_id_from(ex.traceparent)

    @staticmethod
    def authenticate(ex: Exchange) -> None:
        """Who is calling, from the token presented (`Authorization: Bearer` or `X-MCP-Agent-Session`),
        verified locally with the route's keys; identity headers a client sets are never believed. No
        token is not an error here: it means "no identity", and the policy says whether that is enough.
        A token that does not verify is a 401 at once."""
        token = extract_token(ex.authorization, ex.alias)
        if token is None:
            return
        route = ex.route
        assert ex.doc is not None and ex.now is not None
        try:
            ex.caller = route.verifier.verify(token, route.audience(ex.doc.revision), ex.now)
        except TokenError as exc:
            ex.denied_reason = exc.reason
            raise Unauthorized(exc.reason, str(exc)) from None

    async def authorize(self, ex: Exchange) -> None:
        """The policy evaluator judges every message; the gateway never decides on its own. A failed
        authentication (no identity, revoked or expired session) refuses the whole request with 401; other
        denials become JSON-RPC errors for their messages while the allowed ones go on. A call the evaluator
        says needs a person's approval waits for it here (approval.py); no other call pays for that."""
        doc, identity, now = ex.doc, ex.identity, ex.now
        assert doc is not None and now is not None
        messages = ex.messages
        decisions: list[Decision | None] = []
        ex.decisions = decisions
        access: Decision | None = None
        observed = ex.route.tools.observation(doc)
        waits = False
        ours: list[RpcMessage] = []
        for msg in messages:
            if msg.tool is not None:
                decision = evaluate(doc, identity, msg.tool, now, call_arguments(msg.raw), observed=observed)
                if not decision.allowed and decision.approval is not None:
                    waits = True
            else:
                if access is None:
                    access = evaluate_access(doc, identity, now)
                decision = access
                method = msg.method
                if method is None or method == "initialize" or method == "notifications/cancelled":
                    note_elicitation(ex, msg, ours)  # approval.py: its capability, an answer to us, a cancel
            decisions.append(decision)
            if decision.is_authentication_failure:
                decisions.extend([decision] * (len(messages) - len(decisions)))
                raise Unauthorized(str(decision.reason), decision.message)
        if waits:
            await settle(ex, decisions, self.approvals)
        _sort_messages(ex, decisions)
        if ours:
            take_answers(ex, ours, access)

    def limit(self, ex: Exchange) -> None:
        """Count each allowed call against the rate limits the evaluator named for it (gateway/limits.py);
        over a limit, the call is denied `rate_limited` with when to retry. When that leaves nothing to
        forward and nothing else to answer, the whole request is refused: 429 with `Retry-After`."""
        decisions: list[Decision | None] = ex.decisions  # type: ignore[assignment]  # authorize's list
        refused_any = False
        for index, decision in enumerate(decisions):
            if decision is None or not decision.limits or not decision.allowed:
                continue
            assert ex.now is not None
            refused = ex.route.limiter.take(decision.limits, ex.now)
            if refused is None:
                continue
            refused_any = True
            decisions[index] = replace(decision, allowed=False, reason=Reason.rate_limited,
                                       limits=(refused.limit,), retry_after=refused.retry_after)
            self.metrics.count_rate_limited(ex.route.server, refused.limit.scope)
        if refused_any:
            _sort_messages(ex, decisions)
            if not ex.forward:
                raise refusal.rate_limited(ex.denials, ex.is_batch, decisions)

    @staticmethod
    def authorize_access(ex: Exchange) -> None:
        """GET and DELETE carry no messages: the caller needs access to the server (401 or 403 if not)."""
        assert ex.doc is not None and ex.now is not None
        decision = evaluate_access(ex.doc, ex.identity, ex.now)
        if not decision.allowed:
            ex.denied_reason = str(decision.reason)
            if decision.is_authentication_failure:
                raise Unauthorized(str(decision.reason), decision.message)
            raise refusal.forbidden(decision)

    async def forward(self, ex: Exchange) -> None:
        """Send what the policy allowed to the route's upstream: the client's headers without its
        credentials and identity claims, the identity its token proved, only the allowed messages."""
        messages, allowed = ex.messages, ex.forward
        if not messages:
            body = None  # GET, DELETE
        elif len(allowed) == len(messages):
            body = ex.body  # the client's bytes, untouched
        else:
            body = jsonrpc.dumps([m.raw for m in allowed])
        scope = ex.scope
        route = ex.route
        headers = upstream_headers(scope, ex.caller)
        if ex.span is not None:
            headers, body = ex.span.propagate(ex, headers, body)
        per_caller = route.config.session_credentials
        if per_caller is not None:
            headers = self.caller_credential(ex, per_caller, headers)
        request = UpstreamRequest(_METHODS[scope["method"]], scope.get("query_string", b""), headers, body, allowed)
        try:
            response = await route.upstream.send(request)
        except UpstreamError as exc:
            raise self.upstream_failed(ex, exc) from None
        if response.status in (401, 403) and (route.config.upstream_header or per_caller) is not None:
            response.abort("the upstream refused its credential")
            raise self.upstream_failed(ex, UpstreamCredentialRejected(
                f"it refused the platform's credential (HTTP {response.status}); check the value of the Secret "
                "its remote.headerSecret names")) from None
        ex.response = response
        ex.status = response.status

    async def relay(self, ex: Exchange) -> None:
        """Stream the upstream's answer back. Only when the gateway must change it (a `tools/list` answer to
        filter, denials to add) is an SSE event or a JSON body parsed; everything else passes as it comes."""
        response = ex.response
        assert response is not None
        content_type = response.header(b"content-type") or b""
        if content_type.startswith(SSE):
            list_ids = ex.list_ids
            rewriter = None
            if list_ids:
                visible = visible_tools(ex)
                rewriter = SseRewriter(lambda m: filter_tools(m, list_ids, visible))
            tail = b"".join(sse_event(d) for d in ex.denials)
            one_answer = not ex.is_batch and ex.has_requests  # one request: its answer ends the stream
            ex.bytes_out = await stream(response, ex.send, ex.receive, response.status,
                                        response_headers(response), rewriter, tail, self.stream_failed(ex),
                                        one_answer=one_answer)
        elif (ex.list_ids or ex.denials) and 200 <= response.status < 300:
            await self.relay_rewritten(ex)
        elif ex.forward and 200 <= response.status < 300 and small_answer(response):
            await self.relay_checked(ex)
        else:
            ex.bytes_out = await pass_through(response, ex.send, ex.receive, self.stream_failed(ex))

    async def relay_checked(self, ex: Exchange) -> None:
        """A small JSON answer to JSON-RPC messages, passed as the server's bytes once they are whole and
        are JSON: a server that breaks off or answers something else gets its callers an error each."""
        response = ex.response
        assert response is not None
        try:
            data = await response.read(MAX_REWRITE)
            if ex.has_requests and not is_json_answer(response, data):
                raise UpstreamInvalidAnswer(f"the answer is not JSON-RPC: {data[:80]!r}")
        except UpstreamError as exc:
            raise self.upstream_failed(ex, exc) from None
        ex.bytes_out = await send_raw(ex.send, response.status, response_headers(response), data)

    async def relay_rewritten(self, ex: Exchange) -> None:
        """A JSON answer the gateway changes: read whole (bounded), filtered, denials merged, sent."""
        response = ex.response
        assert response is not None
        try:
            data = await response.read(MAX_REWRITE)
        except UpstreamError as exc:
            raise self.upstream_failed(ex, exc) from None
        payload: Any = None
        if data.strip():
            try:
                payload = json.loads(data)
            except (ValueError, RecursionError):
                raise self.upstream_failed(ex, UpstreamInvalidAnswer(
                    f"the answer is not JSON-RPC: {data[:80]!r}")) from None
        visible = visible_tools(ex) if ex.list_ids else None
        payload = merge_answer(payload, ex.list_ids, visible, ex.denials, ex.is_batch)
        headers = [(k, v) for k, v in response_headers(response) if k != b"content-type"]
        headers.append((b"content-type", b"application/json"))
        ex.status = 200 if response.status == 202 else response.status
        ex.bytes_out = await send_raw(ex.send, ex.status, headers, jsonrpc.dumps(payload))

    @staticmethod
    async def answer_here(ex: Exchange) -> None:
        """Nothing was allowed to go upstream: the denials are the answer (202 if there were only
        notifications and responses, which need none)."""
        denials = ex.denials
        if not denials:
            ex.status = 202
            await send_empty(ex.send, 202)
        else:
            ex.status = 200
            ex.bytes_out = await send_json(ex.send, 200, list(denials) if ex.is_batch else denials[0])

    @staticmethod
    async def refuse(ex: Exchange, answer: Refusal) -> None:
        """Send a step's refusal; a 401 carries the route's `WWW-Authenticate` challenge."""
        ex.status = answer.status
        headers = list(answer.headers)
        if isinstance(answer, Unauthorized):
            headers.append((b"www-authenticate", ex.route.challenge(answer.reason, answer.message)))
        await send_json(ex.send, answer.status, answer.body, headers)

    def caller_credential(self, ex: Exchange, credentials: SessionCredentials,
                          headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The caller's own credential for the remote (by the verified session), in place of any header of
        that name the client sent; none: the call is refused rather than sent without it."""
        session = ex.caller.claims.session_id if ex.caller is not None else None
        value = credentials.value_for(session)
        if value is None:
            raise self.upstream_failed(ex, UpstreamCredentialMissing(
                f"it needs each caller's own token and session {session or '(none)'} has none: set "
                "upstreamTokenSecretRef on the session and the Secret it names"))
        name = credentials.header
        return [*((k, v) for k, v in headers if k != name), (name, value)]

    def upstream_failed(self, ex: Exchange, exc: UpstreamError) -> Refusal:
        """The server failed before its answer began: an error for each forwarded request (502, 504)."""
        route = ex.route
        self.metrics.upstream_errors.labels(route.server).inc()
        log.warning("upstream %s failed: %s", route.upstream.url, exc)
        return refusal.upstream_failed(route, exc, ex.forward, ex.denials, ex.is_batch)

    def stream_failed(self, ex: Exchange) -> StreamFailed:
        """What to send when the server breaks off an answer already under way: an SSE error event for
        each forwarded request when no answer seems to have passed yet, then the stream ends cleanly.
        The request is recorded with the failure's status (502, 504), whatever the client saw first."""
        def failed(exc: UpstreamError, answered: bool) -> bytes:
            route = ex.route
            self.metrics.upstream_errors.labels(route.server).inc()
            ex.status = exc.status
            response = ex.response
            sse = response is not None and (response.header(b"content-type") or b"").startswith(SSE)
            if answered or not sse:
                return b""
            return b"".join(sse_event(e) for e in refusal.upstream_errors(route, exc, ex.forward))
        return failed

    # -- when the request is over --------------------------------------------------------------------
    def finish(self, ex: Exchange, server: str, method: str, elapsed: float) -> None:
        """Metrics for every request; decisions counted by reason; one analytics event per JSON-RPC request."""
        metrics = self.metrics
        metrics.count_request(server, method if method in _METHODS else "other", ex.status)
        metrics.observe_duration(server, elapsed)
        if ex.messages:
            self.audit(ex, server, elapsed * 1000.0)
            if ex.list_ids and self.tools_seen is not None:
                self.tools_seen(ex.route)
        elif ex.denied_reason:  # a GET or DELETE refused
            metrics.count_decision(server, False, ex.denied_reason)

    def audit(self, ex: Exchange, server: str, latency_ms: float) -> None:
        metrics = self.metrics
        auditor = self.auditor
        route = ex.route
        # Messages refused before the evaluator judged them (a bad token) have no decision.
        for msg, decision in zip_longest(ex.messages, ex.decisions):
            if decision is not None:
                metrics.count_decision(server, decision.allowed, str(decision.reason))
            elif ex.denied_reason:
                metrics.count_decision(server, False, ex.denied_reason)
            if not msg.is_request or not auditor.enabled:
                continue
            auditor.record(
                server=server, namespace=route.namespace, doc=ex.doc, caller=ex.caller,
                rpc_method=msg.method or "unknown", tool=msg.tool, decision=decision,
                denied_reason=ex.denied_reason, status=ex.status, latency_ms=latency_ms,
                bytes_in=ex.bytes_in, bytes_out=ex.bytes_out, trace_id=ex.trace_id, now=ex.now,
                arguments=tool_arguments(msg.raw) if msg.tool is not None else None,
            )


def _sort_messages(ex: Exchange, decisions: list[Decision | None]) -> None:
    """Allowed messages go upstream (noting the `tools/list` requests, whose answers get filtered);
    denied requests get a JSON-RPC error (but a call its client cancelled while it waited for approval gets
    none); denied notifications and responses are dropped."""
    allowed = []
    denials = []
    list_ids: set[str] = set()
    for msg, verdict in zip(ex.messages, decisions, strict=True):
        assert verdict is not None
        if verdict.allowed:
            allowed.append(msg)
            if msg.method == "tools/list" and msg.has_id:
                list_ids.add(jsonrpc.id_key(msg.id))
        elif msg.has_id and verdict.reason is not Reason.approval_cancelled:  # a cancelled call: no answer
            denials.append(denial_error(msg, verdict))
    ex.forward = allowed
    ex.denials = denials
    if list_ids:
        ex.list_ids = list_ids


def visible_tools(ex: Exchange) -> ToolFilter:
    """Which tools of a `tools/list` answer the caller sees: those the evaluator lets it call, so list and
    call always agree; on a pinned server, each entry's definition is judged against its pin as well
    (and remembered for the calls that follow: gateway/pinning.py)."""
    assert ex.doc is not None and ex.now is not None
    allowed = set(allowed_tools(ex.doc, ex.identity, ex.now))
    return ex.route.tools.filter(ex.doc, ex.identity, ex.now, allowed)
