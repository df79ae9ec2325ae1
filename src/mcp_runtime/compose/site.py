"""The platform API and the dashboard in one ASGI app: what `mcp-runtime platform serve` runs."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_runtime.platform.app import create_app
from mcp_runtime.platform.core import Platform
from mcp_runtime.platform.oauth.routes import WELL_KNOWN_PREFIXES
from mcp_runtime.telemetry import Telemetry
from mcp_runtime.web import create_dashboard


def create_site(platform: Platform, telemetry: Telemetry | None = None) -> ASGIApp:
    """The platform API under /api/v1 and the dashboard at / in one ASGI app (`platform serve`; `up`
    does the same dispatch with its gateway routes in between). Lifespan events go to the API."""
    api = create_app(platform=platform, telemetry=telemetry)
    dashboard = create_dashboard(platform)

    async def site(scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "lifespan" or path.startswith("/api/") or path.startswith(WELL_KNOWN_PREFIXES):
            await api(scope, receive, send)
        else:
            await dashboard(scope, receive, send)

    return site
