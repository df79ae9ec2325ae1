"""The `mcp` SDK's `OAuthAuthorizationServerProvider` over `OAuthService`, plus the client authenticator
that checks a presented client secret against its stored hash.

The SDK calls these coroutines from its handlers; each runs the service (store I/O) in a worker thread so
a database round trip never stalls the event loop the gateway shares in `mcp-runtime up`.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any
from urllib.parse import unquote

from anyio import to_thread
from mcp.server.auth.middleware.client_auth import ClientAuthenticator
from mcp.server.auth.provider import AccessToken, AuthorizationParams, RefreshToken
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from starlette.requests import Request

from mcp_runtime.platform.oauth.service import OAuthService, PlatformCode, PlatformRefresh


class PlatformProvider:
    """Implements `mcp.server.auth.provider.OAuthAuthorizationServerProvider`."""

    def __init__(self, service: OAuthService) -> None:
        self.service = service

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return await to_thread.run_sync(self.service.client, client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        await to_thread.run_sync(self.service.register, client_info)

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        return await to_thread.run_sync(self.service.begin, client, params)

    async def load_authorization_code(self, client: OAuthClientInformationFull,
                                      authorization_code: str) -> PlatformCode | None:
        return await to_thread.run_sync(self.service.load_code, client.client_id or "", authorization_code)

    async def exchange_authorization_code(self, client: OAuthClientInformationFull,
                                          authorization_code: PlatformCode) -> OAuthToken:
        return await to_thread.run_sync(self.service.exchange_code, client.client_id or "", authorization_code)

    async def load_refresh_token(self, client: OAuthClientInformationFull,
                                 refresh_token: str) -> PlatformRefresh | None:
        return await to_thread.run_sync(self.service.load_refresh, client.client_id or "", refresh_token)

    async def exchange_refresh_token(self, client: OAuthClientInformationFull, refresh_token: PlatformRefresh,
                                     scopes: list[str]) -> OAuthToken:
        return await to_thread.run_sync(self.service.exchange_refresh, client.client_id or "", refresh_token)

    async def load_access_token(self, token: str) -> AccessToken | None:
        return await to_thread.run_sync(self.service.load_access, token)

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        await to_thread.run_sync(self.service.revoke, token)

    async def exchange_identity_assertion(self, client: OAuthClientInformationFull, params: Any) -> OAuthToken:
        from mcp.server.auth.provider import TokenError

        raise TokenError("unsupported_grant_type", "the JWT bearer grant is not supported")


class _Revealing:
    """A provider view for one request: the client's stored secret hash becomes the presented secret when
    the hash matches it, and an unguessable value otherwise; the SDK's authenticator compares the two."""

    def __init__(self, provider: PlatformProvider, presented: str | None) -> None:
        self.provider, self.presented = provider, presented

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        client = await self.provider.get_client(client_id)
        if client is None or not client.client_secret:
            return client
        matches = OAuthService.secret_matches(client, self.presented)
        return client.model_copy(update={"client_secret": self.presented if matches else secrets.token_hex(32)})


class HashedSecretAuthenticator(ClientAuthenticator):
    """The SDK's client authentication (client_secret_post, client_secret_basic, none) over hashed secrets."""

    async def authenticate_request(self, request: Request) -> OAuthClientInformationFull:
        presented = await _presented_secret(request)
        inner = ClientAuthenticator(_Revealing(self.provider, presented))  # type: ignore[arg-type]
        return await inner.authenticate_request(request)


async def _presented_secret(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        try:
            decoded = base64.b64decode(header[6:]).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        return unquote(decoded.split(":", 1)[1]) if ":" in decoded else None
    form = await request.form()
    value = form.get("client_secret")
    return value if isinstance(value, str) else None
