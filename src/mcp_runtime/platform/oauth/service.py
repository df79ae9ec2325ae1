"""What the authorization server decides and stores; the `mcp` SDK's handlers speak the protocol around it.

Records (platform store, `oauth_items`; every key that holds a secret holds its hash):
- `client:<client_id>`: the registered client, its secret hashed;
- `request:<hash>`: an authorization request waiting for the user's consent (10 minutes);
- `code:<hash>`: an authorization code (5 minutes, single use: a second use revokes what the first issued);
- `grant:<family>`: one authorization (client, resource, session); its refresh tokens are a family in the
  store's rotating refresh tokens, so a replayed refresh token revokes the family (and the session).

An access token is a session token of the authorization's MCPAgentSession (audience: that server only),
so the gateway verifies it as it verifies any session token and a revoked session stops it on the next call.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    RegistrationError,
    TokenError,
    construct_redirect_uri,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import AnyUrl

from mcp_runtime.manifests.options import OAUTH_ISSUER_PATH
from mcp_runtime.platform.access import AccessService
from mcp_runtime.platform.errors import ApiError
from mcp_runtime.platform.principal import Principal
from mcp_runtime.policy import Identity, PolicyDocument, PolicySession, evaluate
from mcp_runtime.policy.document import PolicySubject
from mcp_runtime.resources import MCPAgentSession, MCPServer, Trust
from mcp_runtime.resources.common import utcnow
from mcp_runtime.security.tokens import TokenError as SessionTokenError
from mcp_runtime.security.tokens import verify_session_token
from mcp_runtime.store import ControlPlaneStore, RotateOutcome

ISSUER_PATH = OAUTH_ISSUER_PATH
CONSENT_PATH = "/oauth/authorize"
REQUEST_TTL = timedelta(minutes=10)
CODE_TTL = timedelta(minutes=5)
MAX_REDIRECT_URIS = 10
MAX_URI_LENGTH = 2000
MAX_CLIENT_NAME = 200
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
TRUSTS = (Trust.low, Trust.medium, Trust.high)


def digest(value: str) -> str:
    """The stored form of a secret: SHA-256 under a label of its own, so an OAuth refresh token never
    matches a dashboard refresh token that shares the store's table (nor the reverse)."""
    return hashlib.sha256(b"mcp-runtime-oauth\0" + value.encode()).hexdigest()


class PlatformCode(AuthorizationCode):
    namespace: str
    session: str
    family: str
    user_id: str


class PlatformRefresh(RefreshToken):
    namespace: str
    session: str
    family: str


@dataclass(frozen=True)
class Pending:
    """An authorization request the user has not answered yet."""

    request_id: str
    client_id: str
    client_name: str
    redirect_uri: str
    redirect_explicit: bool
    code_challenge: str
    state: str | None
    scopes: list[str]
    resource: str
    namespace: str
    server: str

    @property
    def redirect_host(self) -> str:
        return urlsplit(self.redirect_uri).netloc


@dataclass(frozen=True)
class ToolRow:
    """One tool of the server and the lowest trust at which the user's grants would allow it (None: never)."""

    name: str
    side_effect: str
    required_trust: str
    allowed_from: str | None


@dataclass(frozen=True)
class ConsentView:
    """What the consent page shows: the request, the default agent id, the trust cap and the tools."""

    pending: Pending
    agent_id: str
    max_trust: str | None
    trusts: list[str] = field(default_factory=list)
    tools: list[ToolRow] = field(default_factory=list)
    problem: str | None = None


class OAuthService:
    """Synchronous (it reads and writes the store); `provider.PlatformProvider` runs it off the event loop."""

    def __init__(self, store: ControlPlaneStore, access: AccessService, public_url: str,
                 access_token_ttl: timedelta, authorization_ttl: timedelta, servers_url: str | None = None) -> None:
        """`servers_url`: where clients reach the servers when not at `public_url` (Kubernetes:
        `https://mcp.<domain>` while the platform is `https://platform.<domain>`)."""
        self.store, self.access = store, access
        self.public_url = public_url.rstrip("/")
        self.servers_url = (servers_url or public_url).rstrip("/")
        self.access_token_ttl, self.authorization_ttl = access_token_ttl, authorization_ttl

    @property
    def issuer(self) -> str:
        return self.public_url + ISSUER_PATH

    # clients ----------------------------------------------------------------------------------------
    def register(self, client: OAuthClientInformationFull) -> None:
        """Store a registered client (secret hashed); refuse redirect URIs other than https or loopback."""
        uris = [str(uri) for uri in client.redirect_uris or []]
        if not uris or len(uris) > MAX_REDIRECT_URIS:
            raise RegistrationError("invalid_redirect_uri", f"register 1 to {MAX_REDIRECT_URIS} redirect URIs")
        for uri in uris:
            problem = redirect_problem(uri)
            if problem:
                raise RegistrationError("invalid_redirect_uri", f"{uri[:200]}: {problem}")
        if client.client_name and len(client.client_name) > MAX_CLIENT_NAME:
            raise RegistrationError("invalid_client_metadata", f"client_name is longer than {MAX_CLIENT_NAME}")
        if len(json.dumps(client.model_dump(mode="json"))) > 16 * 1024:
            raise RegistrationError("invalid_client_metadata", "the client metadata is larger than 16 KiB")
        data = client.model_dump(mode="json", exclude={"client_secret"})
        data["client_secret_hash"] = digest(client.client_secret) if client.client_secret else None
        self.store.put_oauth_item(f"client:{client.client_id}", data, None)

    def client(self, client_id: str) -> OAuthClientInformationFull | None:
        """The client as registered, its secret field holding the hash (see `secret_matches`)."""
        if not client_id or len(client_id) > 100:
            return None
        item = self.store.get_oauth_item(f"client:{client_id}")
        if item is None:
            return None
        data = dict(item.data)
        data["client_secret"] = data.pop("client_secret_hash", None)
        return OAuthClientInformationFull.model_validate(data)

    @staticmethod
    def secret_matches(client: OAuthClientInformationFull, presented: str | None) -> bool:
        return bool(client.client_secret and presented
                    and hmac.compare_digest(client.client_secret, digest(presented)))

    # authorize ------------------------------------------------------------------------------------
    def begin(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        """Remember the request and send the browser to the dashboard's consent page."""
        if not params.resource:
            raise AuthorizeError("invalid_request",
                                 "the resource parameter (RFC 8707) is required: the URL of the MCP server")
        namespace, server = self.server_of(params.resource)
        request_id = secrets.token_urlsafe(24)
        pending = {
            "client_id": client.client_id, "client_name": client.client_name or client.client_id or "",
            "redirect_uri": str(params.redirect_uri), "redirect_explicit": params.redirect_uri_provided_explicitly,
            "code_challenge": params.code_challenge, "state": params.state, "scopes": params.scopes or [],
            "resource": params.resource, "namespace": namespace, "server": server,
        }
        self.store.put_oauth_item(f"request:{digest(request_id)}", pending, utcnow() + REQUEST_TTL)
        return f"{self.public_url}{CONSENT_PATH}?request={request_id}"

    def server_of(self, resource: str) -> tuple[str, str]:
        """The governed server a resource URI names (its URL at this platform), or `invalid_target`."""
        parts = urlsplit(resource)
        bases = {(b.scheme, b.netloc) for b in (urlsplit(self.public_url), urlsplit(self.servers_url))}
        path = parts.path.rstrip("/") or "/"
        if not parts.query and not parts.fragment:
            for server in self.access.repo.list(MCPServer):
                host = server.spec.ingress_host
                origins = {(s, host) for s in ("http", "https")} if host else bases
                if (parts.scheme, parts.netloc) in origins and \
                        (server.spec.ingress_path or f"/{server.metadata.name}/mcp").rstrip("/") == path:
                    return server.metadata.namespace or "", server.metadata.name
        raise AuthorizeError("invalid_target", f"{resource[:200]} is not a governed server at {self.servers_url}")

    def pending(self, request_id: str) -> Pending | None:
        if not request_id or len(request_id) > 100:
            return None
        item = self.store.get_oauth_item(f"request:{digest(request_id)}")
        if item is None or item.used_at is not None or (item.expires_at and item.expires_at <= utcnow()):
            return None
        return Pending(request_id=request_id, **item.data)

    def view(self, caller: Principal, pending: Pending, agent_id: str | None = None) -> ConsentView:
        """The consent page's content: the tools the caller's grants allow, at each trust up to the cap."""
        agent = agent_id or default_agent_id(pending.client_name)
        try:
            namespace, best, team_id = self.access.best_grant(caller, pending.server, pending.namespace, agent)
        except ApiError as exc:
            return ConsentView(pending, agent, None, problem=exc.message)
        document = self.access.policies.document(namespace, pending.server)
        cap = best.spec.max_trust
        trusts = [t for t in TRUSTS if t <= cap]
        rows: list[ToolRow] = []
        if document is not None:
            judged = {t: _allowed(document, caller.email, agent, team_id, t) for t in trusts}
            for tool in document.tools:
                lowest = next((t for t in trusts if tool.name in judged[t]), None)
                rows.append(ToolRow(tool.name, str(tool.side_effect or "unknown"), str(tool.required_trust),
                                    str(lowest) if lowest else None))
        return ConsentView(pending, agent, str(cap), [str(t) for t in trusts], rows)

    def approve(self, caller: Principal, request_id: str, agent_id: str, trust: Trust) -> str:
        """Allow: the session is created now, and the client gets a single-use code for it."""
        pending = self._take(request_id)
        expires_at = utcnow() + self.authorization_ttl
        session = self.access.oauth_session(caller, pending.namespace, pending.server, agent_id, trust,
                                            pending.client_id, expires_at)
        code = secrets.token_urlsafe(32)
        data = {
            "client_id": pending.client_id, "redirect_uri": pending.redirect_uri,
            "redirect_explicit": pending.redirect_explicit, "code_challenge": pending.code_challenge,
            "scopes": pending.scopes, "resource": pending.resource, "namespace": session.metadata.namespace,
            "session": session.metadata.name, "family": secrets.token_hex(16), "user_id": caller.user.id,
            "subject": caller.email, "expires_at": (utcnow() + CODE_TTL).timestamp(),
        }
        # the record outlives the code's validity, so a late second use is still recognised as a replay
        self.store.put_oauth_item(f"code:{digest(code)}", data, expires_at)
        return construct_redirect_uri(pending.redirect_uri, code=code, state=pending.state, iss=self.issuer)

    def deny(self, request_id: str) -> str:
        pending = self._take(request_id)
        return construct_redirect_uri(pending.redirect_uri, error="access_denied",
                                      error_description="the user denied the request", state=pending.state,
                                      iss=self.issuer)

    def _take(self, request_id: str) -> Pending:
        pending = self.pending(request_id)
        if pending is None or self.store.use_oauth_item(f"request:{digest(request_id)}", utcnow()) is None:
            raise ApiError(404, "not_found", "this authorization request expired or was answered already; "
                                             "start again from your MCP client")
        return pending

    # tokens -----------------------------------------------------------------------------------------
    def load_code(self, client_id: str, code: str) -> PlatformCode | None:
        item = self.store.get_oauth_item(f"code:{digest(code)}")
        if item is None or item.data["client_id"] != client_id:
            return None
        if item.used_at is not None:  # a replayed code: what its first use issued goes too
            self._revoke_session(item.data["namespace"], item.data["session"])
            return None
        data = item.data
        return PlatformCode(code=code, scopes=data["scopes"], expires_at=data["expires_at"], client_id=client_id,
                            code_challenge=data["code_challenge"], redirect_uri=AnyUrl(data["redirect_uri"]),
                            redirect_uri_provided_explicitly=data["redirect_explicit"], resource=data["resource"],
                            subject=data["subject"], namespace=data["namespace"], session=data["session"],
                            family=data["family"], user_id=data["user_id"])

    def exchange_code(self, client_id: str, code: PlatformCode) -> OAuthToken:
        item = self.store.use_oauth_item(f"code:{digest(code.code)}", utcnow())
        if item is None or item.used_at is not None:
            self._revoke_session(code.namespace, code.session)
            raise TokenError("invalid_grant", "the authorization code was used already")
        session = self._usable_session(code.namespace, code.session)
        refresh = f"{code.family}.{secrets.token_urlsafe(32)}"
        expires_at = session.spec.expires_at or utcnow() + self.authorization_ttl
        self.store.put_oauth_item(f"grant:{code.family}", {
            "client_id": client_id, "resource": code.resource, "scopes": code.scopes, "namespace": code.namespace,
            "session": code.session, "subject": code.subject}, expires_at)
        self.store.add_refresh_token(code.user_id, code.family, digest(refresh), expires_at)
        return self._tokens(session, client_id, refresh, code.scopes)

    def load_refresh(self, client_id: str, token: str) -> PlatformRefresh | None:
        family = token.split(".", 1)[0]
        if len(token) > 200 or not family:
            return None
        item = self.store.get_oauth_item(f"grant:{family}")
        if item is None or item.data["client_id"] != client_id:
            return None
        data = item.data
        return PlatformRefresh(token=token, client_id=client_id, scopes=data["scopes"],
                               expires_at=int(item.expires_at.timestamp()) if item.expires_at else None,
                               resource=data["resource"], subject=data["subject"], namespace=data["namespace"],
                               session=data["session"], family=family)

    def exchange_refresh(self, client_id: str, refresh: PlatformRefresh) -> OAuthToken:
        """Rotate: the old refresh token is spent; presenting it again revokes the family and the session."""
        new = f"{refresh.family}.{secrets.token_urlsafe(32)}"
        session = self.access.repo.get(MCPAgentSession, refresh.namespace, refresh.session)
        expires_at = (session.spec.expires_at if session else None) or utcnow()
        result = self.store.rotate_refresh_token(digest(refresh.token), digest(new), expires_at, utcnow())
        if result.outcome == RotateOutcome.reused:
            self._revoke_session(refresh.namespace, refresh.session)
            raise TokenError("invalid_grant", "the refresh token was used already: the authorization is revoked; "
                                              "authorize again")
        if result.outcome != RotateOutcome.rotated:
            raise TokenError("invalid_grant", f"the refresh token is {result.outcome}")
        usable = self._usable_session(refresh.namespace, refresh.session)
        return self._tokens(usable, client_id, new, refresh.scopes)

    def load_access(self, token: str) -> AccessToken | None:
        """An access token this platform issued to an OAuth client (for revocation)."""
        try:
            audience = jwt.decode(token, options={"verify_signature": False}).get("aud")
            if not isinstance(audience, str) or not audience.startswith("mcp-server:"):
                return None
            claims = verify_session_token(token, self.access.keyring.public_keys(), audience=audience)
        except (jwt.PyJWTError, SessionTokenError, ValueError):
            return None
        if claims.client_id is None:
            return None
        return AccessToken(token=token, client_id=claims.client_id, scopes=[],
                           expires_at=int(claims.expires_at.timestamp()), subject=claims.human_id,
                           claims={"ns": claims.namespace, "sid": claims.session_id})

    def revoke(self, token: AccessToken | RefreshToken) -> None:
        """RFC 7009: revoking either token ends the authorization (its session, hence every token of it)."""
        if isinstance(token, PlatformRefresh):
            self.store.revoke_refresh_family_of(digest(token.token), utcnow())
            self._revoke_session(token.namespace, token.session)
        elif isinstance(token, AccessToken) and token.claims:
            self._revoke_session(str(token.claims["ns"]), str(token.claims["sid"]))

    # helpers ----------------------------------------------------------------------------------------
    def _usable_session(self, namespace: str, name: str) -> MCPAgentSession:
        session = self.access.repo.get(MCPAgentSession, namespace, name)
        if session is None or str(session.phase_at(utcnow())) != "Active":
            raise TokenError("invalid_grant", "the authorization's session was revoked or has expired; "
                                              "authorize again")
        return session

    def _tokens(self, session: MCPAgentSession, client_id: str, refresh: str, scopes: list[str]) -> OAuthToken:
        token, expires_at = self.access.oauth_token(session, client_id, self.access_token_ttl)
        return OAuthToken(access_token=token, token_type="Bearer",
                          expires_in=max(1, int(expires_at.timestamp() - time.time())),
                          refresh_token=refresh, scope=" ".join(scopes) or None)

    def _revoke_session(self, namespace: str, name: str) -> None:
        self.access.revoke_oauth_session(namespace, name, "oauth")


def redirect_problem(uri: str) -> str | None:
    """Why a redirect URI is refused (None: fine): https anywhere, http only to a loopback address."""
    if len(uri) > MAX_URI_LENGTH:
        return f"longer than {MAX_URI_LENGTH} characters"
    parts = urlsplit(uri)
    if parts.fragment:
        return "a redirect URI has no fragment"
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and (parts.hostname or "") in LOOPBACK_HOSTS:
        return None
    return "use https, or http to a loopback address (127.0.0.1, localhost, [::1])"


def default_agent_id(client_name: str) -> str:
    """The agent id a client's registered name suggests: lower case, letters, digits and dashes."""
    cleaned = "".join(c if c.isalnum() else "-" for c in client_name.lower()).strip("-")
    return "-".join(part for part in cleaned.split("-") if part)[:63] or "mcp-client"


def _allowed(document: PolicyDocument, human: str, agent: str, team: str | None, trust: Trust) -> set[str]:
    """The tools the evaluator would allow a session of this subject at `trust` (the consent preview)."""
    name = "consent-preview"
    subject = PolicySubject(human_id=human, agent_id=agent, team_id=team)
    fields: dict[str, Any] = {key: getattr(document, key) for key in PolicyDocument.model_fields}
    fields["sessions"] = (*document.sessions, PolicySession(name=name, subject=subject, consented_trust=trust))
    preview = PolicyDocument(**fields)
    identity = Identity(human_id=human, agent_id=agent, team_id=team, session_id=name)
    now = utcnow()
    return {t.name for t in preview.tools if evaluate(preview, identity, t.name, now).allowed}

