"""The dashboard's one-click actions: enable and disable a grant, revoke and unrevoke a session, and the
approvals page (approve or deny a call waiting for a person).

Each is a CSRF-checked form (the dashboard's `page(..., post=True)`) that calls the same platform service,
with the same authorization, as the CLI's command through the API: `access grant enable|disable`,
`access session revoke|unrevoke`, `access approvals approve|deny`. A refusal (403, 409 already decided)
is the dashboard's error page with the service's message.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_runtime.web.grant_editor import Pages
from mcp_runtime.web.session import Login


class Actions:
    def __init__(self, board: Pages) -> None:
        self.board = board
        self.platform = board.platform

    def routes(self, page: Any) -> list[Route]:
        """`page` is the dashboard's wrapper (sign-in, CSRF for posts, handlers in the thread pool)."""
        post = {"post": True}
        return [
            Route("/grants/{namespace}/{name}/enable", page(self.enable_grant, **post), methods=["POST"]),
            Route("/grants/{namespace}/{name}/disable", page(self.disable_grant, **post), methods=["POST"]),
            Route("/sessions/{namespace}/{name}/revoke", page(self.revoke_session, **post), methods=["POST"]),
            Route("/sessions/{namespace}/{name}/unrevoke", page(self.unrevoke_session, **post), methods=["POST"]),
            Route("/approvals", page(self.approvals)),
            Route("/approvals/{approval_id}/approve", page(self.approve, **post), methods=["POST"]),
            Route("/approvals/{approval_id}/deny", page(self.deny, **post), methods=["POST"]),
        ]

    # grants and sessions ----------------------------------------------------------------------------
    def _grant(self, request: Request, login: Login, disabled: bool) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        self.platform.access.set_grant_disabled(login.principal, namespace, name, disabled)
        state = "disabled: its calls are refused now" if disabled else "enabled"
        return self.board.redirect(request, "/grants", notice=f"Grant {name} in {namespace} is {state}.")

    def enable_grant(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        return self._grant(request, login, False)

    def disable_grant(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        return self._grant(request, login, True)

    def _session(self, request: Request, login: Login, revoked: bool) -> Response:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        self.platform.access.set_session_revoked(login.principal, namespace, name, revoked)
        state = "revoked" if revoked else "no longer revoked"
        return self.board.redirect(request, "/sessions", notice=f"Session {name} in {namespace} is {state}.")

    def revoke_session(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        return self._session(request, login, True)

    def unrevoke_session(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        return self._session(request, login, False)

    # approvals --------------------------------------------------------------------------------------
    def approvals(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        rows = self.platform.approvals.visible(login.principal, include_decided=True)
        pending = [a for a in rows if a.status == "pending"]
        decided = sorted((a for a in rows if a.status != "pending"), key=lambda a: a.decided_at or a.created_at,
                         reverse=True)[:50]
        return self.board.render(request, "approvals.html", login, nav="approvals", pending=pending,
                                 decided=decided)

    def _decide(self, request: Request, login: Login, approve: bool) -> Response:
        approval_id = request.path_params["approval_id"]
        done = self.platform.approvals.decide(login.principal, approval_id, approve)
        what = "approved: it runs now" if approve else "denied: the caller gets approval_denied"
        return self.board.redirect(request, "/approvals",
                                   notice=f"The call of {done.call.tool} on {done.call.server} was {what}.")

    def approve(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        return self._decide(request, login, True)

    def deny(self, request: Request, login: Login, fields: dict[str, str]) -> Response:
        return self._decide(request, login, False)
