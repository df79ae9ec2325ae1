"""Remote servers in `up`: nothing is deployed; the gateway gets a route whose upstream is `spec.remote.url`.

The route governs exactly as a deployed server's does (same request path, policy source and keys); what
differs is the upstream: the remote's URL (its Host and TLS name), the credential header built from the
Secret `spec.remote.headerSecret` names (read from the platform's secret store, never logged), the CA
bundle, and `spec.gateway.timeouts`. Status comes from an MCP handshake with the remote through the same
credential: Ready when it answers, Error with the cause when it does not (the route stays mounted, so
calls get a 502 JSON-RPC error naming the server until the remote is back).
"""

from __future__ import annotations

from mcp_runtime.gateway.credentials import SessionCredentials
from mcp_runtime.gateway.keys_source import JwksFile
from mcp_runtime.gateway.policy_source import PolicySource
from mcp_runtime.gateway.routes import GatewayRoute
from mcp_runtime.gateway.upstream import tls_context
from mcp_runtime.resources import MCPAgentSession, MCPServer, RemoteSpec
from mcp_runtime.runtime.discovery import DiscoveryError, probe_initialize
from mcp_runtime.security import PublicKeySet
from mcp_runtime.store.secrets import SecretFiles

PROBE_TIMEOUT = 10.0


class RemoteNotReady(Exception):
    """The remote's route cannot be built yet (its Secret is missing); the message says what to do."""


def credential_header(server: MCPServer, secrets: SecretFiles) -> tuple[str, str] | None:
    """(header, prefix + value) from the server's `headerSecret`, or None when it names none."""
    remote = server.spec.remote
    assert remote is not None
    ref = remote.header_secret
    if ref is None:
        return None
    namespace = server.metadata.namespace or "default"
    value = secrets.get(namespace, ref.name, ref.key)
    if value is None:
        raise RemoteNotReady(
            f"secret {ref.name} (key {ref.key}) is not set in namespace {namespace}: set it with "
            f"`mcp-runtime secret set {ref.name} --key {ref.key} --from-file FILE --namespace {namespace}`; "
            "until then the server is not routed"
        )
    return ref.header, ref.prefix + value


def session_values(server: MCPServer, sessions: list[MCPAgentSession], secrets: SecretFiles) -> dict[str, str]:
    """For a `sessionToken` remote: session name -> the value of the Secret its `upstreamTokenSecretRef`
    names (sessions of this server that have one whose Secret is set)."""
    namespace = server.metadata.namespace or "default"
    values: dict[str, str] = {}
    for session in sessions:
        ref = session.spec.upstream_token_secret_ref
        if session.spec.server_ref.name != server.metadata.name or ref is None:
            continue
        value = secrets.get(namespace, ref.name, ref.key)
        if value is not None:
            values[session.metadata.name] = value
    return values


def session_credentials(server: MCPServer) -> SessionCredentials | None:
    remote = server.spec.remote
    token = remote.session_token if remote is not None else None
    return SessionCredentials(token.header, token.prefix) if token is not None else None


def remote_route(server: MCPServer, header: tuple[str, str] | None, policy: PolicySource,
                 keys: PublicKeySet | JwksFile, path: str,
                 per_caller: SessionCredentials | None = None, *, resource_url: str | None = None,
                 authorization_servers: tuple[str, ...] = ()) -> GatewayRoute:
    """The gateway route of a remote server; `resource_url`/`authorization_servers` as for any route (OAuth)."""
    remote = server.spec.remote
    assert remote is not None
    timeouts = server.spec.gateway.timeouts
    return GatewayRoute(upstream=remote.url, policy=policy, keys=keys, server=server.metadata.name,
                        namespace=server.metadata.namespace, path=path, upstream_header=header,
                        session_credentials=per_caller, ca_bundle=remote.ca_bundle,
                        connect_timeout=timeouts.connect_seconds, read_timeout=timeouts.read_seconds,
                        resource_url=resource_url, authorization_servers=authorization_servers)


async def probe(remote: RemoteSpec, header: tuple[str, str] | None) -> str | None:
    """Why the remote does not answer the MCP handshake (None when it does). A remote that wants each
    caller's own token is asked without one: refusing it (401/403) shows it is there."""
    headers = dict([header]) if header is not None else None
    try:
        verify = tls_context(remote.ca_bundle) if remote.url.startswith("https:") else True
        info = await probe_initialize(remote.url, timeout=PROBE_TIMEOUT, headers=headers, verify=verify)
    except DiscoveryError as exc:
        if remote.session_token is not None and exc.status_code in (401, 403):
            return None
        return str(exc)
    except ValueError as exc:
        return str(exc)
    del info
    return None
