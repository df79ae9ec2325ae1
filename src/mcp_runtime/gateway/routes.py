"""Which upstream a request goes to: one route per governed server.

The sidecar is a gateway with one route (`/mcp`); the process runtime mounts one gateway with a route
per server (`/<server>/mcp`) and adds or removes routes as servers come and go. A route carries
everything that differs between servers: the upstream URL, the policy source and the verifier keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mcp_runtime.gateway.auth import TokenVerifier, bearer_challenge
from mcp_runtime.gateway.credentials import SessionCredentials
from mcp_runtime.gateway.elicitation import Elicitations
from mcp_runtime.gateway.keys_source import JwksFile
from mcp_runtime.gateway.limits import Limiter
from mcp_runtime.gateway.pinning import ToolWatch
from mcp_runtime.gateway.policy_source import PolicySource
from mcp_runtime.gateway.resource_metadata import metadata_url, origin_allowed, origin_of
from mcp_runtime.gateway.upstream import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    Upstream,
    UpstreamPool,
    open_upstream,
)
from mcp_runtime.security import PublicKeySet, session_audience


@dataclass
class GatewayRoute:
    """Configuration of one governed server behind the gateway."""

    upstream: str
    """Upstream MCP endpoint, e.g. `http://127.0.0.1:8088/mcp`."""
    policy: PolicySource
    keys: PublicKeySet | JwksFile
    """Public keys session tokens are verified with (the platform's JWKS; a JwksFile follows rotation)."""
    server: str | None = None
    """Server name; defaults to the one in the policy document."""
    namespace: str | None = None
    """Namespace; defaults to the one in the policy document."""
    path: str | None = None
    """Public path; defaults to `/<server>/mcp`."""
    upstream_token: str | None = None
    """Credential sent upstream as `Authorization: Bearer ...` (the client's bearer never is)."""
    resource_url: str | None = None
    """The server's public URL, its OAuth resource URI (RFC 8707/9728); set, the route publishes its
    protected resource metadata and names it in every 401."""
    authorization_servers: tuple[str, ...] = ()
    """Issuers of the authorization servers whose tokens the route accepts (the platform's)."""
    allowed_origins: tuple[str, ...] = ()
    """Browser origins allowed besides the resource URL's own and loopback ones."""
    upstream_header: tuple[str, str] | None = None
    """(name, value): the credential header of a remote server instead (`X-API-Key: ...`, or
    `Authorization: Bearer ...`); a client's header of that name never reaches the upstream."""
    session_credentials: SessionCredentials | None = None
    """Each caller's own credential for the upstream, by session (a remote server's `sessionToken`)."""
    ca_bundle: str | None = None
    """PEM CAs an https upstream's certificate must chain to (default: the system CAs)."""
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    """Seconds to open a connection to the upstream (`spec.gateway.timeouts.connect`)."""
    read_timeout: float = DEFAULT_READ_TIMEOUT
    """Seconds for the upstream to start answering, and that an answer to a POST may pause
    (`spec.gateway.timeouts.read`)."""

    def public_path(self) -> str:
        if self.path:
            return self.path if self.path.startswith("/") else "/" + self.path
        if not self.server:
            raise ValueError("a route needs a server name or an explicit path")
        return f"/{self.server}/mcp"


@dataclass(eq=False)
class BoundRoute:
    """A route with its runtime state: upstream, token verifier, cached audience."""

    config: GatewayRoute
    upstream: Upstream
    verifier: TokenVerifier
    path: str
    _audience: tuple[str, str] = field(default=("", ""))
    reload_listener: Callable[[bool], None] | None = None
    tools: ToolWatch = field(default_factory=ToolWatch)
    """The server's tool definitions as last seen (tool-definition pinning, pinning.py)."""
    limiter: Limiter = field(default_factory=Limiter)
    """Rate-limit buckets and quota counts of this server, in this process (gateway/limits.py)."""
    elicitations: Elicitations = field(default_factory=Elicitations)
    """MCP sessions that may be asked to approve a call, and the questions in flight (approval.py)."""

    @classmethod
    def bind(cls, route: GatewayRoute) -> BoundRoute:
        keys = route.keys
        upstream = open_upstream(route.upstream, credential=route.upstream_token,
                                 credential_header=route.upstream_header, ca_bundle=route.ca_bundle,
                                 connect_timeout=route.connect_timeout, read_timeout=route.read_timeout)
        if isinstance(keys, JwksFile):
            bound = cls(config=route, upstream=upstream, verifier=TokenVerifier(keys.keys), path=route.public_path())
            keys.add_listener(bound.set_keys)
            return bound
        return cls(config=route, upstream=upstream, verifier=TokenVerifier(keys), path=route.public_path())

    @property
    def pool(self) -> UpstreamPool:
        """The connection pool of an HTTP upstream (every route's, today)."""
        if not isinstance(self.upstream, UpstreamPool):
            raise TypeError(f"the upstream of {self.path} is not an HTTP connection pool")
        return self.upstream

    @property
    def source(self) -> PolicySource:
        return self.config.policy

    @property
    def server(self) -> str:
        doc = self.config.policy.document
        return self.config.server or (doc.server.name if doc is not None else None) or self.path

    @property
    def namespace(self) -> str:
        doc = self.config.policy.document
        return self.config.namespace or (doc.server.namespace if doc is not None else None) or "default"

    def audience(self, revision: str) -> str:
        """The token audience of this server, recomputed only when the policy revision changes."""
        cached_revision, audience = self._audience
        if cached_revision != revision or not audience:
            audience = session_audience(self.namespace, self.server)
            self._audience = (revision, audience)
        return audience

    def challenge(self, reason: str, message: str) -> bytes:
        """The `WWW-Authenticate` value of every 401 this route answers, naming its resource metadata."""
        resource = self.config.resource_url
        return bearer_challenge(reason, message, metadata_url(resource) if resource else None)

    def origin_allowed(self, origin: bytes) -> bool:
        """DNS-rebinding protection: a browser's `Origin` must be this resource's, configured, or loopback."""
        allowed = self.config.allowed_origins
        if self.config.resource_url:
            allowed = (*allowed, origin_of(self.config.resource_url))
        return origin_allowed(origin, allowed)

    def set_keys(self, keys: PublicKeySet) -> None:
        """New verifier keys (JWKS rotation): forget tokens verified with the old ones."""
        self.verifier = TokenVerifier(keys)


class RouteTable:
    """Routes by exact public path."""

    def __init__(self) -> None:
        self._by_path: dict[str, BoundRoute] = {}

    def add(self, route: GatewayRoute) -> BoundRoute:
        bound = BoundRoute.bind(route)
        if bound.path in self._by_path:
            raise ValueError(f"a route for {bound.path} exists already")
        self._by_path[bound.path] = bound
        return bound

    def remove(self, path: str) -> BoundRoute | None:
        return self._by_path.pop(path, None)

    def get(self, path: str) -> BoundRoute | None:
        return self._by_path.get(path)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._by_path.values()))

    def __len__(self) -> int:
        return len(self._by_path)
