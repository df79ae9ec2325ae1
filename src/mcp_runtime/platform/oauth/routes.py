"""The authorization server's endpoints: the `mcp` SDK's handlers, mounted under the platform API.

    issuer                     {public_url}/api/v1/oauth
    metadata (RFC 8414)        /.well-known/oauth-authorization-server/api/v1/oauth, and the forms clients
                               also probe: /.well-known/openid-configuration/api/v1/oauth,
                               /api/v1/oauth/.well-known/openid-configuration and .../oauth-authorization-server
    authorize, token, register, revoke     /api/v1/oauth/{authorize,token,register,revoke}

Registration is rate limited per client address and bounded in size; the SDK's handlers enforce PKCE S256,
exact redirect URI matching and client authentication (over hashed secrets: `HashedSecretAuthenticator`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.metadata import MetadataHandler
from mcp.server.auth.handlers.register import RegistrationHandler
from mcp.server.auth.handlers.revoke import RevocationHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.routes import build_metadata, cors_middleware, validate_issuer_url
from mcp.server.auth.settings import ClientRegistrationOptions, RevocationOptions
from mcp.server.transport_security import RequestBodyLimitMiddleware
from pydantic import AnyHttpUrl
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_runtime.platform.oauth.provider import HashedSecretAuthenticator, PlatformProvider
from mcp_runtime.platform.oauth.service import ISSUER_PATH, OAuthService
from mcp_runtime.platform.ratelimit import LoginRateLimiter

log = logging.getLogger("mcp_runtime.platform.oauth")

MAX_REGISTRATION_BYTES = 16 * 1024
MAX_FORM_BYTES = 64 * 1024
METADATA_PATHS = (
    f"/.well-known/oauth-authorization-server{ISSUER_PATH}",
    f"/.well-known/openid-configuration{ISSUER_PATH}",
    f"{ISSUER_PATH}/.well-known/oauth-authorization-server",
    f"{ISSUER_PATH}/.well-known/openid-configuration",
)
WELL_KNOWN_PREFIXES = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")
"""Root paths the composition sends to the platform API (the metadata lives there, outside /api/)."""


class RegistrationLimit:
    """At most `per_minute` registrations a minute from one client address; then 429 with Retry-After."""

    def __init__(self, app: ASGIApp, per_minute: int) -> None:
        self.app = app
        self.limiter = LoginRateLimiter(per_minute, 60.0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        wait = self.limiter.retry_after("oauth-register", address)
        if wait:
            body = json.dumps({"error": "rate_limited",
                               "error_description": f"too many client registrations; retry in {wait} seconds"})
            await send({"type": "http.response.start", "status": 429,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", str(wait).encode())]})
            await send({"type": "http.response.body", "body": body.encode()})
            return
        self.limiter.failed("oauth-register", address)  # counts every attempt in the window
        await self.app(scope, receive, send)


def _cors(app: ASGIApp, methods: list[str]) -> ASGIApp:
    """Token, registration and revocation are called from browser-based clients (MCP Inspector)."""
    return CORSMiddleware(app, allow_origins="*", allow_methods=methods, allow_headers=["mcp-protocol-version"])


def oauth_routes(service: OAuthService, *, registrations_per_minute: int) -> list[Route]:
    """The routes to add to the platform API; none (and a warning) when the issuer URL cannot be one
    (RFC 8414: https, or http on a loopback address)."""
    issuer = AnyHttpUrl(service.issuer)
    try:
        validate_issuer_url(issuer)
    except ValueError as exc:
        log.warning("MCP authorization (OAuth) is off: %s (public URL %s)", exc, service.public_url)
        return []
    provider: Any = PlatformProvider(service)
    registration = ClientRegistrationOptions(enabled=True)
    metadata = build_metadata(issuer, None, registration, RevocationOptions(enabled=True))
    metadata.token_endpoint_auth_methods_supported = ["client_secret_post", "client_secret_basic", "none"]
    authenticator = HashedSecretAuthenticator(provider)
    metadata_app = cors_middleware(MetadataHandler(metadata).handle, ["GET", "OPTIONS"])
    routes = [Route(path, endpoint=metadata_app, methods=["GET", "OPTIONS"]) for path in METADATA_PATHS]
    authorize = RequestBodyLimitMiddleware(request_response(AuthorizationHandler(provider).handle), MAX_FORM_BYTES)
    token = RequestBodyLimitMiddleware(request_response(TokenHandler(provider, authenticator).handle),
                                       MAX_FORM_BYTES)
    register = RegistrationLimit(RequestBodyLimitMiddleware(
        request_response(RegistrationHandler(provider, registration).handle), MAX_REGISTRATION_BYTES),
        registrations_per_minute)
    revoke = RequestBodyLimitMiddleware(request_response(RevocationHandler(provider, authenticator).handle),
                                        MAX_FORM_BYTES)
    routes += [
        Route(f"{ISSUER_PATH}/authorize", endpoint=authorize, methods=["GET", "POST"]),
        Route(f"{ISSUER_PATH}/token", endpoint=_cors(token, ["POST", "OPTIONS"]), methods=["POST", "OPTIONS"]),
        Route(f"{ISSUER_PATH}/register", endpoint=_cors(register, ["POST", "OPTIONS"]),
              methods=["POST", "OPTIONS"]),
        Route(f"{ISSUER_PATH}/revoke", endpoint=_cors(revoke, ["POST", "OPTIONS"]), methods=["POST", "OPTIONS"]),
    ]
    return routes
