"""The dashboard: server-rendered pages over the platform's services (no build step, no CDN).

    dashboard = create_dashboard(platform)      # an ASGI app; `mcp-runtime up` mounts it at /

Pages: Analytics (totals, calls and denials over time, top tools, the Tools table, recent events),
Servers, Grants (create, edit and delete after a "Preview impact" step: grant_editor.py), Sessions (revoke
for owners and admins), Teams and Audit log (admins). Every page
shows only what the signed-in user may see through the API: the same services, the same rules.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_runtime import __version__
from mcp_runtime.platform.core import Platform
from mcp_runtime.platform.errors import STORE_RETRY_AFTER, ApiError, StoreUnavailable
from mcp_runtime.platform.pinning import CONDITION as TOOLS_PINNED
from mcp_runtime.resources import KINDS, ConditionStatus, MCPAccessGrant, MCPAgentSession, MCPServer
from mcp_runtime.sentinel.store import Bucket
from mcp_runtime.web import charts
from mcp_runtime.web.actions import Actions
from mcp_runtime.web.consent import ConsentPage
from mcp_runtime.web.grant_editor import GrantEditor
from mcp_runtime.web.session import (
    CSRF_FIELD,
    REFRESH_COOKIE,
    Login,
    clear_tokens,
    csrf_ok,
    csrf_token,
    current_login,
    remember_csrf,
    set_tokens,
)

log = logging.getLogger("mcp_runtime.web")
HERE = Path(__file__).parent
PERIODS = {"1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days"}
MAX_FORM_BYTES = 16 * 1024

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

Handler = Callable[[Request, Login, dict[str, str]], Response]


def _when(value: Any) -> str:
    """A datetime (or ISO string) as `2026-11-21 04:05 UTC`."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return str(value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"))


def _ago(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    seconds = int((datetime.now(UTC) - value).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _number(value: Any) -> str:
    return f"{int(value):,}"


def _brief(value: Any) -> str:
    """A small audit detail (`user=bob@globex.com, role=member`); big documents are left to the API."""
    if not isinstance(value, dict) or not value or len(value) > 4:
        return ""
    parts = [f"{key}={item}" for key, item in value.items() if isinstance(item, str | int | float | bool)]
    text = ", ".join(parts)
    return text if len(text) <= 120 else ""


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class Dashboard:
    """The pages, bound to one platform."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        env = self.templates.env
        env.filters.update(when=_when, ago=_ago, number=_number, brief=_brief)
        env.globals.update(version=__version__, csrf_field=CSRF_FIELD)

    # plumbing -------------------------------------------------------------------------------------
    def base(self, request: Request) -> str:
        return str(request.scope.get("root_path") or "")

    def render(self, request: Request, template: str, login: Login | None, status: int = 200,
               **context: Any) -> Response:
        principal = login.principal if login else None
        response = self.templates.TemplateResponse(request, template, {
            "base": self.base(request), "me": principal, "csrf": csrf_token(request),
            "notice": request.query_params.get("notice"), "error": context.pop("error", None), **context,
        }, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        remember_csrf(request, response)
        if login and login.refreshed:
            set_tokens(request, response, login.refreshed, self._refresh_age())
        return response

    def _refresh_age(self) -> int:
        return int(self.platform.settings.refresh_token_ttl.total_seconds())

    def redirect(self, request: Request, path: str, **query: str) -> RedirectResponse:
        target = self.base(request) + path + (("?" + urlencode(query)) if query else "")
        return RedirectResponse(target, status_code=303)

    def page(self, handler: Handler, *, admin: bool = False,
             post: bool = False) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a handler: sign-in required (else to /login), admin pages 403 for others, posted forms
        CSRF-checked. Handlers are synchronous (store and analytics queries block) and run in the thread
        pool, so a slow query never stalls the event loop the gateway shares in `mcp-runtime up`."""

        async def endpoint(request: Request) -> Response:
            fields = await self.form(request) if post else {}
            return await run_in_threadpool(self._page, request, handler, admin, fields)

        return endpoint

    def _page(self, request: Request, handler: Handler, admin: bool, fields: dict[str, str] | None) -> Response:
        login = current_login(request, self.platform)
        if login is None:
            query = request.url.query
            response = self.redirect(request, "/login", next=request.url.path + (f"?{query}" if query else ""))
            clear_tokens(request, response)
            return response
        if admin and not login.principal.is_admin:
            return self.render(request, "error.html", login, status=403, message="This page is for platform admins.")
        if fields is None:
            return self.render(request, "error.html", login, status=403,
                               message="The form expired or did not come from this dashboard; reload and retry.")
        try:
            return handler(request, login, fields)
        except ApiError as exc:
            return self.render(request, "error.html", login, status=exc.status, message=exc.message)

    async def form(self, request: Request) -> dict[str, str] | None:
        """The posted form when its CSRF token is right (None otherwise); small forms only."""
        declared = request.headers.get("content-length", "")
        if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:  # browsers always send a length
            return None
        data = await request.form(max_files=0, max_fields=20)
        fields = {key: value for key, value in data.items() if isinstance(value, str)}
        return fields if csrf_ok(request, fields.get(CSRF_FIELD)) else None

    def team_slugs(self) -> dict[str, str]:
        return {team.id: team.slug for team in self.platform.store.list_teams()}

    # login ----------------------------------------------------------------------------------------
    async def login_page(self, request: Request) -> Response:
        return await run_in_threadpool(self._login_page, request)

    def _login_page(self, request: Request) -> Response:
        if current_login(request, self.platform) is not None:
            return self.redirect(request, "/analytics")
        return self.render(request, "login.html", None, next=_safe_next(request.query_params.get("next")))

    async def login_submit(self, request: Request) -> Response:
        fields = await self.form(request)
        return await run_in_threadpool(self._login_submit, request, fields)

    def _login_submit(self, request: Request, fields: dict[str, str] | None) -> Response:
        if fields is None:
            return self.render(request, "login.html", None, status=403, error="Your form expired; try again.")
        email, password = fields.get("email", "").strip(), fields.get("password", "")
        next_path = _safe_next(fields.get("next"))
        client_ip = request.client.host if request.client else "unknown"
        try:
            pair = self.platform.identity.login(email, password, client_ip)
        except ApiError as exc:
            return self.render(request, "login.html", None, status=exc.status, error=exc.message,
                               email=email, next=next_path)
        response = self.redirect(request, next_path)
        set_tokens(request, response, pair, self._refresh_age())
        return response

    async def logout(self, request: Request) -> Response:
        fields = await self.form(request)
        return await run_in_threadpool(self._logout, request, fields)

    def _logout(self, request: Request, fields: dict[str, str] | None) -> Response:
        if fields is None:
            return self.redirect(request, "/analytics")
        login = current_login(request, self.platform)
        self.platform.identity.logout(request.cookies.get(REFRESH_COOKIE), login.principal if login else None)
        response = self.redirect(request, "/login", notice="Signed out.")
        clear_tokens(request, response)
        return response

    # pages ----------------------------------------------------------------------------------------
    def analytics(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        params = request.query_params
        period = params.get("since") if params.get("since") in PERIODS else "24h"
        server = params.get("server") or None
        analytics = self.platform.analytics
        flt = analytics.filter(login.principal, since=period, server=server)
        bucket: Bucket = "hour" if period in ("1h", "24h") else "day"
        usage = analytics.usage(flt, bucket=bucket, limit=200)
        all_servers = analytics.usage(analytics.filter(login.principal, since=period), ["servers"])["servers"]
        return self.render(
            request, "analytics.html", login, nav="analytics", usage=usage, period=period, periods=PERIODS,
            server=server, servers=sorted({row["server"] for row in all_servers}),
            timeseries=charts.timeseries_svg(usage["timeseries"]["points"], bucket),
            top_tools=charts.top_tools_svg(charts.top_tools(usage["tools"])),
            denial_rate=(usage["totals"]["denied"] / usage["totals"]["events"]) if usage["totals"]["events"] else 0,
        )

    def servers(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        servers: list[MCPServer] = self.platform.servers.list(login.principal)
        servers.sort(key=lambda s: (s.metadata.namespace or "", s.metadata.name))
        virtual = sorted(self.platform.virtual.list(login.principal),
                         key=lambda v: (v.metadata.namespace or "", v.metadata.name))
        return self.render(request, "servers.html", login, nav="servers", servers=servers, teams=self.team_slugs(),
                           reviews=tool_reviews(self.platform, login.principal, servers),
                           can_manage=login.principal.can_manage, virtual_servers=virtual)

    def approve_tools(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        """The drift's Approve button: the same service (and owner check) as `server tools approve`."""
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        tool = fields.get("tool") or None
        done = self.platform.tools.approve(login.principal, namespace, name, [tool] if tool else None)
        approved = ", ".join(done["approved"]) or "nothing new"
        return self.redirect(request, "/servers", notice=f"Approved {approved} on {name}; the gateway enforces it now.")

    def grants(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        grants: list[MCPAccessGrant] = self.platform.access.list_grants(login.principal)
        grants.sort(key=lambda g: (g.metadata.namespace or "", g.metadata.name))
        principal = login.principal
        return self.render(request, "grants.html", login, nav="grants", grants=grants, teams=self.team_slugs(),
                           can_write=principal.can_write, can_create=principal.is_admin or bool(principal.teams))

    def sessions(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        sessions: list[MCPAgentSession] = self.platform.access.list_sessions(login.principal)
        sessions.sort(key=lambda s: (s.metadata.namespace or "", s.metadata.name))
        return self.render(request, "sessions.html", login, nav="sessions", sessions=sessions,
                           teams=self.team_slugs(), can_manage=login.principal.can_manage,
                           is_admin=login.principal.is_admin)

    def teams(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        store = self.platform.store
        teams = [{"team": team, "members": store.list_members(team.id)} for team in store.list_teams()]
        return self.render(request, "teams.html", login, nav="teams", teams=teams)

    def audit(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        kind = request.query_params.get("kind") or None
        entries = self.platform.store.list_audit(limit=200, kind=kind)
        return self.render(request, "audit.html", login, nav="audit", entries=entries, kind=kind,
                           kinds=["Team", "User", "ApiKey", *KINDS])

    async def home(self, request: Request) -> Response:
        return self.redirect(request, "/analytics")

    async def not_found(self, request: Request, exc: Exception) -> Response:
        return await run_in_threadpool(self._not_found, request)

    def _not_found(self, request: Request) -> Response:
        login = current_login(request, self.platform)
        return self.render(request, "error.html", login, status=404, message="There is no such page.")

    async def unavailable(self, request: Request, exc: Exception) -> Response:
        """The database is down or restarting: say so and when to retry (no login lookup: it needs the store)."""
        response = self.render(request, "error.html", None, status=503,
                               message=f"The platform's database cannot be reached right now. Reload in "
                                       f"{STORE_RETRY_AFTER} seconds.")
        response.headers["Retry-After"] = str(STORE_RETRY_AFTER)
        return response


def tool_reviews(platform: Platform, principal: Any, servers: list[MCPServer]) -> dict[tuple[str, str], Any]:
    """The tool review of each server whose tools drifted from their pins (`ToolsPinned` False)."""
    reviews = {}
    for server in servers:
        conditions = server.status.conditions if server.status else []
        if any(c.type == TOOLS_PINNED and c.status == ConditionStatus.false for c in conditions):
            namespace = server.metadata.namespace or ""
            reviews[(namespace, server.metadata.name)] = platform.tools.rows(principal, namespace,
                                                                            server.metadata.name)
    return reviews


def _safe_next(value: str | None) -> str:
    """Only local paths: `//evil.example` and absolute URLs become the default page."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/analytics"
    return quote(value, safe="/?=&-_.")


def create_dashboard(platform: Platform) -> ASGIApp:
    """The dashboard as an ASGI app over `platform` (mount it at `/`, after the API and gateway routes)."""
    board = Dashboard(platform)
    routes = [
        Route("/", board.home),
        Route("/login", board.login_page, methods=["GET"]),
        Route("/login", board.login_submit, methods=["POST"]),
        Route("/logout", board.logout, methods=["POST"]),
        Route("/analytics", board.page(board.analytics)),
        Route("/servers", board.page(board.servers)),
        Route("/servers/{namespace}/{name}/tools/approve", board.page(board.approve_tools, post=True),
              methods=["POST"]),
        Route("/grants", board.page(board.grants)),
        *GrantEditor(board).routes(board.page),
        *ConsentPage(board).routes(board.page),
        Route("/sessions", board.page(board.sessions)),
        *Actions(board).routes(board.page),
        Route("/teams", board.page(board.teams, admin=True)),
        Route("/audit", board.page(board.audit, admin=True)),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: board.not_found,
                                                          StoreUnavailable: board.unavailable})
    app.state.dashboard = board
    return _SecurityHeaders(app)
