"""The whole platform in one process (`mcp-runtime up`): API, dashboard, gateway, and a runtime.

`EmbeddedPlatform` is the composition root. It owns:
- the platform API (FastAPI, `/api/v1`) over the SQLite store in the data directory;
- one gateway with a route per deployed server at its ingress path (`/<server>/mcp`), each route's
  policy pushed in process by the platform's publisher, so a grant change or revoke is enforced on
  the next call;
- a runtime that runs the servers (the process runtime by default), told of every server change
  through the platform's `RuntimeHooks` and reporting status back into `MCPServer.status`.

The platform calls hooks and publishes policies from request worker threads; everything that
touches the event loop is handed over with `run_coroutine_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_runtime.compose.approvals import InProcessApprovals
from mcp_runtime.compose.remote import (
    RemoteNotReady,
    credential_header,
    probe,
    remote_route,
    session_credentials,
    session_values,
)
from mcp_runtime.compose.virtual import VirtualMounts
from mcp_runtime.gateway.app import Gateway
from mcp_runtime.gateway.credentials import SessionCredentials
from mcp_runtime.gateway.lifespan import run_lifespan
from mcp_runtime.gateway.pinning import DriftReport
from mcp_runtime.gateway.policy_source import InProcessPolicySource
from mcp_runtime.gateway.resource_metadata import RESOURCE_METADATA_PREFIX
from mcp_runtime.gateway.routes import GatewayRoute
from mcp_runtime.platform.app import API_PREFIX, create_app
from mcp_runtime.platform.core import Platform
from mcp_runtime.platform.oauth.routes import WELL_KNOWN_PREFIXES
from mcp_runtime.platform.settings import PlatformSettings
from mcp_runtime.policy import PolicyDocument
from mcp_runtime.resources import (
    Condition,
    ConditionStatus,
    MCPAgentSession,
    MCPServer,
    MCPServerStatus,
    ServerPhase,
)
from mcp_runtime.resources.common import utcnow
from mcp_runtime.runtime.process import ProcessRuntime, RuntimeStatus
from mcp_runtime.sentinel.emitter import Emitter
from mcp_runtime.telemetry import open_telemetry
from mcp_runtime.web import create_dashboard

log = logging.getLogger("mcp_runtime.up")

GATEWAY_ENDPOINTS = ("/healthz", "/readyz", "/metrics", "/config/status")


class ServerRuntime(Protocol):
    """What `EmbeddedPlatform` needs of a runtime (process now; podman has the same shape)."""

    def check(self, server: MCPServer) -> str | None: ...
    async def deploy(self, server: MCPServer) -> None: ...
    async def delete(self, namespace: str, name: str) -> None: ...
    async def shutdown(self) -> None: ...
    def upstream_url(self, namespace: str, name: str) -> str | None: ...
    def logs(self, namespace: str, name: str, tail: int = 200) -> list[str]: ...
    def follow(self, namespace: str, name: str) -> AsyncIterator[str]: ...


class EmbeddedPlatform:
    """Builds and runs the one-process platform; `asgi` is the app uvicorn serves."""

    runtime_name = "process"

    def __init__(self, settings: PlatformSettings, *, public_url: str,
                 runtime_factory: Callable[[Callable[[str, str, RuntimeStatus], None]], ServerRuntime]
                 | None = None, gateway_clock: Callable[[], datetime] | None = None,
                 otlp_endpoint: str | None = None) -> None:
        """`gateway_clock`: the time the gateway decides at (default the system clock; tests fast-forward it);
        `otlp_endpoint`: where the gateway's and the API's spans go (None: tracing off)."""
        self.settings = settings
        self.public_url = public_url.rstrip("/")
        if settings.public_url is None:  # the authorization server's issuer and every resource URI start here
            settings.public_url = self.public_url
        self.platform = Platform(settings)
        self.api_telemetry = open_telemetry("mcp-runtime-platform", otlp_endpoint)
        self.api = create_app(platform=self.platform, telemetry=self.api_telemetry)
        # the gateway's analytics go to this platform's ingest with the local ingest key; while the ingest
        # cannot answer (starting, stopping) they wait in a spool in the data directory
        self.emitter = Emitter(ingest_url=f"{self.public_url}{API_PREFIX}/ingest/events",
                               api_key=self.platform.ingest_keys.local_key,
                               spool_path=Path(settings.data_dir) / "gateway-events.spool")
        self.gateway = Gateway(emitter=self.emitter, clock=gateway_clock or utcnow,
                               telemetry=open_telemetry("mcp-gateway", otlp_endpoint))
        self.gateway.drift_listener = self._on_tools_seen
        self.gateway.request_path.approvals = InProcessApprovals(self.platform.approvals)
        self.gateway.probe_unpinned = True
        self.runtime: ServerRuntime = (runtime_factory or self._process_runtime)(self._on_runtime_status)
        self._sources: dict[tuple[str, str], InProcessPolicySource] = {}
        self._paths: dict[tuple[str, str], str] = {}
        self._remotes: dict[tuple[str, str], MCPServer] = {}
        self._per_caller: dict[tuple[str, str], SessionCredentials] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Status and observed-tools writes read, change and write the server's record: one thread applies
        # them in the order they were made, so a late "Pending" never overwrites the "Ready" after it.
        self._status_writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcp-status")
        self._unsubscribe: Callable[[], None] | None = None
        self.virtual = VirtualMounts(self.platform, self.gateway, self.public_url, self._submit)
        self.dashboard: ASGIApp = create_dashboard(self.platform)
        self.platform.set_runtime(self)

    def _process_runtime(self, on_status: Callable[[str, str, RuntimeStatus], None]) -> ServerRuntime:
        return ProcessRuntime(Path(self.settings.data_dir), on_status=on_status)

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the gateway, subscribe to policies, and bring back every stored server."""
        self._loop = asyncio.get_running_loop()
        await self.platform.ingest.start()
        await self.platform.checkpoints.start()
        await self.gateway.start()
        self._unsubscribe = self.platform.publisher.subscribe(self._on_policy, replay=True)
        for server in self.platform.repo.list(MCPServer):
            await self._apply(server)
        await self.virtual.start()

    async def stop(self) -> None:
        """Ctrl-C: stop servers cleanly, then the gateway, then the store."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        await self.runtime.shutdown()
        await asyncio.to_thread(self._status_writes.shutdown, wait=True)  # the last statuses are stored
        await self.gateway.close()
        await self.platform.checkpoints.close()
        await self.platform.ingest.close()
        self.platform.close()
        if self.api_telemetry is not None:
            await asyncio.to_thread(self.api_telemetry.shutdown)

    # --- RuntimeHooks (called by the platform after a change is stored) -------------------------

    def check(self, server: MCPServer) -> str | None:
        if server.spec.remote is not None:
            return None  # nothing to run: the gateway forwards to the remote
        return self.runtime.check(server)

    def secret_changed(self, namespace: str, name: str) -> None:
        """A Secret was set or deleted: re-route the remote servers whose credential it holds, and refresh
        the per-caller credentials of the namespace's `sessionToken` remotes (any session may name it)."""
        for (ns, server_name), server in list(self._remotes.items()):
            remote = server.spec.remote
            if ns != namespace or remote is None:
                continue
            if remote.header_secret is not None and remote.header_secret.name == name:
                self._submit(self._apply(server))
            elif remote.session_token is not None:
                self._refresh_callers(ns, server_name)

    def _refresh_callers(self, namespace: str, name: str) -> None:
        """Re-read the sessions of a `sessionToken` remote and their Secrets (on the caller's thread)."""
        credentials, server = self._per_caller.get((namespace, name)), self._remotes.get((namespace, name))
        if credentials is None or server is None:
            return
        sessions = self.platform.repo.list(MCPAgentSession, namespace)
        credentials.replace(session_values(server, sessions, self.platform.secrets))

    def server_created(self, server: MCPServer) -> None:
        self._submit(self._apply(server))

    def server_updated(self, server: MCPServer) -> None:
        self._submit(self._apply(server))

    def server_deleted(self, server: MCPServer) -> None:
        self._submit(self._remove(server.metadata.namespace or "", server.metadata.name))

    def logs(self, namespace: str, name: str, tail: int = 200) -> list[str]:
        return self.runtime.logs(namespace, name, tail)

    async def follow_logs(self, namespace: str, name: str) -> AsyncIterator[str]:
        async for line in self.runtime.follow(namespace, name):
            yield line

    # --- wiring ---------------------------------------------------------------------------------

    def _submit(self, coro: Awaitable[None]) -> None:
        loop = self._loop
        if loop is None:  # not started yet: `start` applies every stored server anyway
            if asyncio.iscoroutine(coro):
                coro.close()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            loop.create_task(coro)  # type: ignore[arg-type]
            return
        future: Future[None] = asyncio.run_coroutine_threadsafe(coro, loop)  # type: ignore[arg-type]
        future.add_done_callback(_log_failure)

    def _source(self, namespace: str, name: str) -> InProcessPolicySource:
        with self._lock:
            source = self._sources.get((namespace, name))
            if source is None:
                source = self._sources[(namespace, name)] = InProcessPolicySource()
            return source

    def _on_policy(self, namespace: str, name: str, document: PolicyDocument | None) -> None:
        if document is not None:
            self._refresh_callers(namespace, name)  # a session (and its upstream token) may have changed
            self._source(namespace, name).push(document)

    async def _apply(self, server: MCPServer) -> None:
        namespace, name = server.metadata.namespace or "", server.metadata.name
        if server.spec.remote is not None:
            await self._apply_remote(server)
            return
        self._remotes.pop((namespace, name), None)
        self._per_caller.pop((namespace, name), None)
        reason = self.runtime.check(server)
        if reason is not None:
            self._write_status(namespace, name, RuntimeStatus(ServerPhase.error, reason))
            return
        await self._unroute(namespace, name)
        try:
            await self.runtime.deploy(server)
        except Exception as exc:  # the runtime's own errors are user errors: show them in status
            self._write_status(namespace, name, RuntimeStatus(ServerPhase.error, str(exc)))
            return
        upstream = self.runtime.upstream_url(namespace, name)
        path = server.spec.ingress_path or f"/{name}/mcp"
        if upstream is None or not server.spec.gateway.enabled:
            return
        if getattr(self.runtime, "has_gateway_sidecar", False):
            # podman: the pod's sidecar serves the public route (runtime.proxy, see asgi). This gateway holds
            # the same governed route to the app itself, only for virtual servers to find the member by.
            self._paths[(namespace, name)] = path
            upstream = self.runtime.app_url(namespace, name)  # type: ignore[attr-defined]
            if upstream is None:
                log.warning("%s/%s: no address of its app in the pod; virtual servers cannot reach it",
                            namespace, name)
                return
        timeouts = server.spec.gateway.timeouts
        route = GatewayRoute(upstream=upstream, policy=self._source(namespace, name),
                             keys=self.platform.keyring.public_keys(), server=name, namespace=namespace, path=path,
                             connect_timeout=timeouts.connect_seconds, read_timeout=timeouts.read_seconds,
                             **self._oauth_fields(path))
        await self.gateway.add_route(route)
        self._paths[(namespace, name)] = path

    def _oauth_fields(self, path: str) -> dict[str, Any]:
        """A route's OAuth resource URI and authorization server, when the platform serves OAuth."""
        oauth = self.platform.oauth
        if oauth is None:
            return {"resource_url": None, "authorization_servers": ()}
        return {"resource_url": f"{self.public_url}{path}", "authorization_servers": (oauth.issuer,)}

    async def _apply_remote(self, server: MCPServer) -> None:
        """Route to the remote (nothing deployed; a process of a former spec is stopped), then probe it."""
        namespace, name = server.metadata.namespace or "", server.metadata.name
        remote = server.spec.remote
        assert remote is not None
        self._remotes[(namespace, name)] = server
        previous = self._paths.get((namespace, name))
        replaced = self.gateway.routes.get(previous) if previous is not None else None
        await self._unroute(namespace, name)
        await self.runtime.delete(namespace, name)
        path = server.spec.ingress_path or f"/{name}/mcp"
        per_caller = session_credentials(server)
        if per_caller is not None:
            self._per_caller[(namespace, name)] = per_caller
            self._refresh_callers(namespace, name)
        else:
            self._per_caller.pop((namespace, name), None)
        try:
            header = credential_header(server, self.platform.secrets)
            route = remote_route(server, header, self._source(namespace, name), self.platform.keyring.public_keys(),
                                 path, per_caller, **self._oauth_fields(path))
            bound = await self.gateway.add_route(route)
            if replaced is not None and replaced.config.upstream == route.upstream:
                # the same remote with a new credential or setting: the tool definitions the gateway saw
                # from it still stand (pinning); the periodic listing and every tools/list check them again
                bound.tools = replaced.tools
        except (RemoteNotReady, ValueError) as exc:
            self._write_status(namespace, name, RuntimeStatus(ServerPhase.error, str(exc)))
            return
        self._paths[(namespace, name)] = path
        problem = await probe(remote, header)
        if problem is None:
            status = RuntimeStatus(ServerPhase.ready, f"remote server at {remote.url}: nothing deployed, the "
                                                      "gateway governs and forwards to it")
        else:
            status = RuntimeStatus(ServerPhase.error, f"remote server does not answer: {problem}")
        self._write_status(namespace, name, status)

    async def _unroute(self, namespace: str, name: str) -> None:
        path = self._paths.pop((namespace, name), None)
        if path is not None:
            await self.gateway.remove_route(path)

    async def _remove(self, namespace: str, name: str) -> None:
        self._remotes.pop((namespace, name), None)
        self._per_caller.pop((namespace, name), None)
        await self._unroute(namespace, name)
        await self.runtime.delete(namespace, name)
        with self._lock:
            self._sources.pop((namespace, name), None)

    def _on_tools_seen(self, report: DriftReport) -> None:
        """The gateway saw the server's tools stand differently against their pins: record it (a DB write,
        off the event loop) as `status.observedTools` and the `ToolsPinned` condition."""
        def write() -> None:
            try:
                self.platform.tools.record(report.namespace, report.server, report.tools)
            except Exception:
                log.exception("could not record the tools of %s/%s", report.namespace, report.server)

        self._write_in_order(write)

    def _write_in_order(self, write: Callable[[], None]) -> None:
        """Run a status write off the event loop, after every write submitted before it."""
        loop = self._loop
        if loop is None or not loop.is_running():
            write()
            return
        try:
            loop.run_in_executor(self._status_writes, write)
        except RuntimeError:  # stopping: the store is closing, a status after that has nowhere to go
            log.debug("a status write after stop was dropped")

    def _on_runtime_status(self, namespace: str, name: str, status: RuntimeStatus) -> None:
        self._write_status(namespace, name, status)

    def _write_status(self, namespace: str, name: str, status: RuntimeStatus) -> None:
        """Record the runtime's view in MCPServer.status (off the event loop: it is a DB write)."""
        path = self._paths.get((namespace, name))
        source = self._sources.get((namespace, name))
        now = datetime.now(UTC)
        running = status.phase == ServerPhase.ready
        policy_ready = source is not None and source.document is not None
        conditions = [
            _condition("DeploymentReady", running, status.phase.value, status.message, now),
            _condition("GatewayReady", path is not None, "RouteMounted" if path else "NoRoute",
                       f"gateway route {path}" if path else "no gateway route", now),
            _condition("PolicyReady", policy_ready, "Loaded" if policy_ready else "NotLoaded",
                       f"revision {source.document.revision[:12]}" if source and source.document else
                       "policy not loaded", now),
            _condition("Ready", running and path is not None and policy_ready, status.phase.value, status.message,
                       now),
        ]
        record = MCPServerStatus(
            phase=status.phase, message=status.message,
            url=f"{self.public_url}{path}" if path else None,
            ready_replicas=1 if running else 0, conditions=conditions,
        )

        def write() -> None:
            try:
                self.platform.servers.set_status(namespace, name, record)
            except Exception:
                log.exception("could not record status of %s/%s", namespace, name)

        self._write_in_order(write)

    # --- the ASGI app ---------------------------------------------------------------------------

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch: `/api/...` -> platform; a server route or a gateway endpoint -> gateway; else dashboard."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith("/api/") or path.startswith(WELL_KNOWN_PREFIXES):
            await self.api(scope, receive, send)
        elif (proxy := getattr(self.runtime, "proxy", None)) is not None and proxy.handles(path):
            await proxy(scope, receive, send)  # podman runtime: straight to the pod's gateway sidecar (its
            # route, and its protected resource metadata)
        elif path.startswith(RESOURCE_METADATA_PREFIX) or self.gateway.routes.get(path) is not None \
                or path in GATEWAY_ENDPOINTS or path.startswith("/v/"):
            await self.gateway(scope, receive, send)
        else:
            await self.dashboard(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await run_lifespan(receive, send, self.start, self.stop, what="the platform")


def _condition(kind: str, ok: bool, reason: str, message: str, now: datetime) -> Condition:
    return Condition(type=kind, status=ConditionStatus.true if ok else ConditionStatus.false,
                     reason=reason.replace(" ", ""), message=message[:1000], last_transition_time=now)


def _log_failure(future: Future[None]) -> None:
    exc = future.exception()
    if exc is not None:
        log.error("runtime change failed: %s", exc, exc_info=exc)
