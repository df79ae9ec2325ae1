"""The gateway: a raw ASGI app that mounts one route per governed server and serves its own endpoints.

Requests to a route's path go through the request path (`pipeline.py`: admit -> parse -> authenticate
-> authorize -> forward -> relay); this module owns the routes and their lifecycle (policy sources, key
files, upstreams) and the endpoints of the gateway itself (`/healthz`, `/readyz`, `/config/status`,
`/metrics`). Decisions are made only by `mcp_runtime.policy`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST

from mcp_runtime.gateway.audit import Auditor
from mcp_runtime.gateway.keys_source import JwksFile
from mcp_runtime.gateway.lifespan import run_lifespan
from mcp_runtime.gateway.metrics import GatewayMetrics
from mcp_runtime.gateway.pinning import DriftListener, drift_events
from mcp_runtime.gateway.pipeline import MAX_BODY, RequestPath
from mcp_runtime.gateway.probe import list_server_tools
from mcp_runtime.gateway.quota_metrics import QuotaCollector
from mcp_runtime.gateway.relay import send_json
from mcp_runtime.gateway.resource_metadata import RESOURCE_METADATA_PREFIX, metadata_document, route_for_metadata
from mcp_runtime.gateway.routes import BoundRoute, GatewayRoute, RouteTable
from mcp_runtime.gateway.upstream import tls_context
from mcp_runtime.gateway.virtual.endpoint import VirtualEndpoint, VirtualRoute
from mcp_runtime.gateway.virtual.mapping import MemberKey
from mcp_runtime.policy.pinning import pinning_active
from mcp_runtime.resources.common import utcnow
from mcp_runtime.resources.pinning import PinMode
from mcp_runtime.wire.asgi import Receive, Scope, Send

if TYPE_CHECKING:
    from mcp_runtime.telemetry import Telemetry

__all__ = ["MAX_BODY", "Gateway"]

log = logging.getLogger("mcp_runtime.gateway")

PROBE_RETRY_FIRST = 0.5
PROBE_RETRY_MAX = 30.0
"""Backoff of the gateway's own tool listing while a server is not answering yet (seconds)."""
PROBE_INTERVAL = 300.0
"""How often the gateway lists a pinned server's tools again on its own (seconds)."""


class Gateway:
    """An ASGI app governing one server (sidecar) or many (`/<server>/mcp`, process runtime)."""

    def __init__(self, routes: Iterable[GatewayRoute] = (), *, emitter: Any = None,
                 metrics: GatewayMetrics | None = None, max_body: int = MAX_BODY,
                 clock: Callable[[], datetime] = utcnow, telemetry: Telemetry | None = None) -> None:
        """`clock` is the time decisions are made at (and events are stamped with); tests pass a
        fast-forwarded one to record a week of traffic without waiting a week. `telemetry`: export a
        span per request (gateway/tracing.py); None, tracing is off."""
        self.routes = RouteTable()
        self.metrics = metrics or GatewayMetrics(getattr(emitter, "registry", None))
        self.emitter = emitter
        self.auditor = Auditor(emitter)
        self.request_path = RequestPath(self.metrics, self.auditor, max_body=max_body, clock=clock)
        self.request_path.tools_seen = self.report_tools
        self.metrics.registry.register(QuotaCollector(lambda: list(self.routes), clock))
        if telemetry is not None:
            from mcp_runtime.gateway.tracing import GatewayTracing

            self.request_path.tracing = GatewayTracing(telemetry)
        self.drift_listener: DriftListener | None = None
        """Told when a server's tool definitions stand differently against their pins (pinning.py)."""
        self.probe_interval = PROBE_INTERVAL
        self.probe_unpinned = False
        """Also list the tools of servers nobody pinned yet, so the listener learns them (and an owner can
        pin them with `server tools approve`); `mcp-runtime up` turns it on."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._probes: set[asyncio.Task[None]] = set()
        self._started = False
        self.virtual: dict[str, VirtualEndpoint] = {}
        """Virtual servers by public path (`/v/<name>/mcp`, gateway/virtual/)."""
        for route in routes:
            self._add(route)

    @property
    def max_body(self) -> int:
        """Largest request body accepted (the request path's limit)."""
        return self.request_path.max_body

    @max_body.setter
    def max_body(self, value: int) -> None:
        self.request_path.max_body = value

    # -- routes and lifecycle ------------------------------------------------------------------------
    def _add(self, route: GatewayRoute) -> BoundRoute:
        bound = self.routes.add(route)
        def reloaded(ok: bool) -> None:
            self.metrics.count_reload(bound.server, ok)
            loop = self._loop
            if ok and loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self.check_tools, bound)  # pushes may come from other threads

        bound.reload_listener = reloaded
        route.policy.add_listener(bound.reload_listener)
        return bound

    # -- tool-definition pinning ---------------------------------------------------------------------
    def check_tools(self, bound: BoundRoute) -> None:
        """A policy loaded: report how the tools seen stand against its pins, and list the server's
        tools ourselves when its pins are new to us (drift is found before a client asks)."""
        doc = bound.source.document
        if doc is None or self.routes.get(bound.path) is not bound:
            return
        self.report_tools(bound)
        if doc.pin_mode == PinMode.off or not (pinning_active(doc) or self.probe_unpinned):
            return
        if bound.config.session_credentials is not None:
            # Each caller's own credential (a remote's `sessionToken`) and none of ours: listing it ourselves
            # would only send the remote unauthenticated requests, one per backoff step, forever. Its tools
            # are checked on every caller's `tools/list` answer instead.
            return
        pins = tuple((t.name, t.pin) for t in doc.tools)
        if bound.tools.probed_pins == pins:
            return
        bound.tools.probed_pins = pins
        task = asyncio.ensure_future(self._probe(bound))
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _probe(self, bound: BoundRoute) -> None:
        """List the server's tools now, retrying with backoff while it starts, and again every
        `PROBE_INTERVAL` (a restarted server is checked even if no client lists); ends when the route goes
        or its pins change (a new probe takes over)."""
        pins = bound.tools.probed_pins
        delay = PROBE_RETRY_FIRST
        while self.routes.get(bound.path) is bound and bound.tools.probed_pins == pins:
            try:
                config = bound.config
                verify = tls_context(config.ca_bundle) if config.ca_bundle else True
                tools = await list_server_tools(config.upstream, credential=config.upstream_token,
                                                header=config.upstream_header, verify=verify)
            except Exception as exc:
                log.info("could not list the tools of %s for pinning (retrying in %.0fs): %s", bound.path,
                         delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, PROBE_RETRY_MAX)
                continue
            bound.tools.replace(tools)
            self.report_tools(bound)
            delay = PROBE_RETRY_FIRST
            await asyncio.sleep(self.probe_interval)

    def report_tools(self, bound: BoundRoute) -> None:
        """After a `tools/list` answer or a probe: report the drift when it changed (events + listener)."""
        doc = bound.source.document
        if doc is None:
            return
        report = bound.tools.report(doc, bound.namespace)
        if report is None:
            return
        if report.drift:
            log.warning("tool drift on %s: %s", bound.path,
                        ", ".join(f"{d.name} ({d.state})" for d in report.drift))
        if self.emitter is not None:
            try:
                for event in drift_events(report, utcnow()):
                    self.emitter.emit(event)
            except Exception:
                log.exception("could not record the tool drift of %s", bound.path)
        if self.drift_listener is not None:
            try:
                self.drift_listener(report)
            except Exception:
                log.exception("the drift listener failed for %s", bound.path)

    async def add_route(self, route: GatewayRoute) -> BoundRoute:
        """Mount a server while running (process runtime); its policy source starts watching."""
        bound = self._add(route)
        if self._started:
            await self._start_route(bound)
            self.check_tools(bound)
        return bound

    # -- virtual servers -----------------------------------------------------------------------------
    def member_route(self, key: MemberKey) -> BoundRoute | None:
        """A virtual server's member: the governed route of server `name` in `namespace`, as mounted now."""
        namespace, name = key
        bound: BoundRoute
        for bound in self.routes:
            if bound.server == name and bound.namespace == namespace:
                return bound
        return None

    async def add_virtual(self, route: VirtualRoute) -> VirtualEndpoint:
        """Mount (or replace) a virtual server; members are looked up in this gateway's routes per request."""
        route.resolve = self.member_route
        await self.remove_virtual(route.path)
        endpoint = VirtualEndpoint(route, self.auditor, self.request_path.clock, self.metrics,
                                   tools_seen=self.report_tools, approvals=lambda: self.request_path.approvals)
        self.virtual[route.path] = endpoint
        return endpoint

    async def remove_virtual(self, path: str) -> None:
        endpoint = self.virtual.pop(path, None)
        if endpoint is not None:
            await endpoint.close()

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._loop = asyncio.get_running_loop()
        if self.emitter is not None:
            await self.emitter.start()
        for bound in self.routes:
            await self._start_route(bound)
            self.check_tools(bound)

    @staticmethod
    async def _start_route(bound: BoundRoute) -> None:
        await bound.source.start()
        if isinstance(bound.config.keys, JwksFile):
            await bound.config.keys.start()
        await bound.upstream.start()

    @staticmethod
    async def _stop_route(bound: BoundRoute) -> None:
        await bound.source.stop()
        if isinstance(bound.config.keys, JwksFile):
            await bound.config.keys.stop()
        await bound.upstream.aclose()

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
        for task in list(self._probes):
            task.cancel()
        for path in list(self.virtual):
            await self.remove_virtual(path)
        for bound in self.routes:
            await self._stop_route(bound)
        if self.emitter is not None:
            await self.emitter.close()
        tracing = self.request_path.tracing
        if tracing is not None:
            await asyncio.to_thread(tracing.shutdown)  # flushes the last spans (bounded by the export timeout)

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
                await self.request_path(route, scope, receive, send)
            elif path.startswith("/v/") and (virtual := self.virtual.get(path.rstrip("/"))) is not None:
                await virtual(scope, receive, send)
            elif path.startswith(RESOURCE_METADATA_PREFIX):
                await self._resource_metadata(path, scope, send)
            else:
                await self._platform_endpoint(path, scope, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await run_lifespan(receive, send, self.start, self.close, what="gateway")

    async def _resource_metadata(self, path: str, scope: Scope, send: Send) -> None:
        """RFC 9728 metadata of the route the path names; readable from any origin (browser-based clients)."""
        cors = [(b"access-control-allow-origin", b"*"), (b"access-control-allow-methods", b"GET, OPTIONS"),
                (b"access-control-allow-headers", b"mcp-protocol-version")]
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": cors})
            await send({"type": "http.response.body", "body": b""})
            return
        route = route_for_metadata(path, self.routes)
        config = route.config if route is not None else None
        document = metadata_document(config.resource_url, config.authorization_servers, route.server) \
            if route is not None and config is not None else None
        if document is None:
            await send_json(send, 404, {"error": "not_found",
                                        "message": f"no OAuth protected resource is described at {path}"}, cors)
            return
        await send_json(send, 200, document, [*cors, (b"cache-control", b"public, max-age=300")])

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
