"""The consent page of MCP authorization: a signed-in user allows or denies an MCP client on one server.

    MCP client --authorize--> platform API --302--> /oauth/authorize?request=...  (sign in first if needed)
      page: which client, which server, the tools the user's grants allow at each trust, the agent id
      (from the client's registered name) and the trust (capped by the grants)
    Allow --> an MCPAgentSession is created, the browser goes back to the client with a single-use code
    Deny  --> back to the client with error=access_denied

The redirect target is only ever the client's registered redirect URI, checked when the request was made
(never a form field); the form is CSRF-checked; the page cannot be framed (the dashboard's headers).
"""

from __future__ import annotations

import re
from typing import Any, Protocol
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mcp_runtime.platform.core import Platform
from mcp_runtime.platform.errors import ApiError
from mcp_runtime.platform.oauth.service import CONSENT_PATH, OAuthService
from mcp_runtime.resources import Trust
from mcp_runtime.web.session import Login

_AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self' {target}")


class Pages(Protocol):
    """What the consent page needs of the dashboard (app.py's `Dashboard`)."""

    platform: Platform

    def render(self, request: Request, template: str, login: Login | None, status: int = 200,
               **context: Any) -> Response: ...


class ConsentPage:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages

    def routes(self, page: Any) -> list[Route]:
        """`page` is the dashboard's wrapper (sign-in, CSRF for posts, handlers in the thread pool)."""
        return [
            Route(CONSENT_PATH, page(self.show), methods=["GET"]),
            Route(CONSENT_PATH, page(self.answer, post=True), methods=["POST"]),
        ]

    @property
    def oauth(self) -> OAuthService:
        service = self.pages.platform.oauth
        if service is None:
            raise ApiError(404, "not_found", "MCP authorization is off: the platform has no public URL "
                                             "(set MCP_RUNTIME_PUBLIC_URL)")
        return service

    def show(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        pending = self.oauth.pending(request.query_params.get("request", ""))
        if pending is None:
            raise ApiError(404, "not_found", "This authorization request expired or was answered already; "
                                             "start again from your MCP client.")
        view = self.oauth.view(login.principal, pending)
        response = self.pages.render(request, "consent.html", login, nav="", view=view,
                                     status=403 if view.problem else 200)
        # the form posts here and is answered with a redirect to the client: allow that origin only
        target = urlsplit(pending.redirect_uri)
        response.headers["Content-Security-Policy"] = CSP.format(target=f"{target.scheme}://{target.netloc}")
        return response

    def answer(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        request_id = fields.get("request", "")
        if fields.get("decision") != "allow":
            return RedirectResponse(self.oauth.deny(request_id), status_code=303)
        agent_id = fields.get("agent_id", "").strip()
        if not _AGENT_ID.fullmatch(agent_id):
            raise ApiError(422, "invalid_request", "The agent id is 1 to 63 letters, digits, '.', '_' or '-', "
                                                   "starting with a letter or digit; go back and correct it.")
        try:
            trust = Trust(fields.get("trust", "low"))
        except ValueError:
            raise ApiError(422, "invalid_request", "Pick a trust of low, medium or high.") from None
        return RedirectResponse(self.oauth.approve(login.principal, request_id, agent_id, trust), status_code=303)
