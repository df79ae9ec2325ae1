"""The dashboard's login session: platform tokens in HttpOnly, SameSite=Strict cookies, and CSRF tokens.

The access token (short-lived) and the refresh token live in cookies the page's scripts cannot read;
an expired access token is refreshed on the next page load (refresh tokens rotate). Forms carry a CSRF
token that must equal the `mcpr_csrf` cookie (double submit): with SameSite=Strict on top, another site
can neither send the session cookies nor read the token.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from mcp_runtime.platform.core import Platform
from mcp_runtime.platform.errors import ApiError
from mcp_runtime.platform.identity import TokenPair
from mcp_runtime.platform.principal import Principal

ACCESS_COOKIE = "mcpr_access"
REFRESH_COOKIE = "mcpr_refresh"
CSRF_COOKIE = "mcpr_csrf"
CSRF_FIELD = "csrf"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _cookie_path(request: Request) -> str:
    return (request.scope.get("root_path") or "") + "/"


def csrf_token(request: Request) -> str:
    """The request's CSRF token (the cookie's, or a new one that `remember_csrf` sets)."""
    token = request.cookies.get(CSRF_COOKIE)
    if not token or len(token) < 32:
        token = request.state.new_csrf = secrets.token_urlsafe(32)
    return token


def remember_csrf(request: Request, response: Response) -> None:
    new = getattr(request.state, "new_csrf", None)
    if new:
        response.set_cookie(CSRF_COOKIE, new, httponly=True, samesite="strict", secure=_secure(request),
                            path=_cookie_path(request))


def csrf_ok(request: Request, submitted: object) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return bool(cookie) and isinstance(submitted, str) and hmac.compare_digest(cookie, submitted)


def set_tokens(request: Request, response: Response, pair: TokenPair, refresh_max_age: int) -> None:
    common = {"httponly": True, "samesite": "strict", "secure": _secure(request), "path": _cookie_path(request)}
    response.set_cookie(ACCESS_COOKIE, pair.access_token, max_age=refresh_max_age, **common)  # type: ignore[arg-type]
    response.set_cookie(REFRESH_COOKIE, pair.refresh_token, max_age=refresh_max_age, **common)  # type: ignore[arg-type]


def clear_tokens(request: Request, response: Response) -> None:
    for name in (ACCESS_COOKIE, REFRESH_COOKIE):
        response.delete_cookie(name, path=_cookie_path(request), httponly=True, samesite="strict")


@dataclass
class Login:
    """The signed-in caller, and a refreshed token pair to write back if one was issued."""

    principal: Principal
    refreshed: TokenPair | None = None


def current_login(request: Request, platform: Platform) -> Login | None:
    """The caller from the cookies, refreshing an expired access token; None when not signed in."""
    access = request.cookies.get(ACCESS_COOKIE)
    if access:
        try:
            return Login(platform.identity.authenticate(access))
        except ApiError as exc:
            if exc.code != "token_expired":
                return None
    refresh = request.cookies.get(REFRESH_COOKIE)
    if not refresh:
        return None
    try:
        pair = platform.identity.refresh(refresh)
    except ApiError:
        return None
    return Login(platform.identity.principal(pair.user), refreshed=pair)
