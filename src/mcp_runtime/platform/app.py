"""`create_app(settings)`: the platform API under /api/v1, reusable (mounted by `mcp-runtime up`).

Initialization (migrations, keys, first admin, policies) happens in `create_app` itself rather
than in a lifespan, so the app works the same when another Starlette app mounts it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from mcp_runtime import __version__
from mcp_runtime.platform.core import Platform
from mcp_runtime.platform.errors import install_error_handlers
from mcp_runtime.platform.hooks import PolicyPublisher, RuntimeHooks
from mcp_runtime.platform.limits import BodyLimitMiddleware
from mcp_runtime.platform.oauth.routes import oauth_routes
from mcp_runtime.platform.routers import (
    analytics,
    approvals,
    audit,
    auth,
    registry,
    runtime,
    secrets,
    servers_ops,
    teams,
    tools,
    virtual,
)
from mcp_runtime.platform.settings import PlatformSettings
from mcp_runtime.store import ControlPlaneStore
from mcp_runtime.telemetry import Telemetry

API_PREFIX = "/api/v1"


def create_app(settings: PlatformSettings | None = None, *, store: ControlPlaneStore | None = None,
               hooks: RuntimeHooks | None = None, publisher: PolicyPublisher | None = None,
               platform: Platform | None = None, telemetry: Telemetry | None = None) -> FastAPI:
    """The platform API. `app.state.platform` holds the services (store, publisher, hooks, ...);
    `telemetry`: a span per API request (OpenTelemetry's FastAPI instrumentation), None: off."""
    if platform is None:
        platform = Platform(settings or PlatformSettings.from_env(), store=store, hooks=hooks,
                            publisher=publisher)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await platform.ingest.start()
        await platform.checkpoints.start()
        yield
        await platform.checkpoints.close()
        await platform.ingest.close()
        platform.close()
        if telemetry is not None:
            telemetry.shutdown()

    app = FastAPI(
        title="MCP Runtime platform API",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.platform = platform
    install_error_handlers(app)
    for module in (auth, teams, runtime, virtual, servers_ops, tools, approvals, secrets, audit, analytics,
                   registry):
        app.include_router(module.router, prefix=API_PREFIX)

    if platform.oauth is not None:
        app.router.routes.extend(oauth_routes(
            platform.oauth, registrations_per_minute=platform.settings.oauth_registrations_per_minute))

    @app.get(f"{API_PREFIX}/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    app.add_middleware(BodyLimitMiddleware, max_bytes=platform.settings.max_body_bytes,
                       overrides={f"{API_PREFIX}/ingest/": platform.settings.ingest_max_body_bytes})
    app.openapi = lambda: _openapi_with_resources(app)  # type: ignore[method-assign]
    if telemetry is not None:
        instrument(app, telemetry)
    return app


def instrument(app: FastAPI, telemetry: Telemetry) -> None:
    """A SERVER span per API request, named by route template (`POST /api/v1/auth/login`), with the
    caller's `traceparent` as its parent; health checks are left out."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=telemetry.provider, excluded_urls="healthz,metrics")


def _openapi_with_resources(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the resource schemas the grant, session and virtual server bodies refer to."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPVirtualServer

        document = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for model in (MCPAccessGrant, MCPAgentSession, MCPVirtualServer):
            schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
            for name, definition in schema.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components[model.__name__] = schema
        app.openapi_schema = document
    return app.openapi_schema
