"""The gateway as an OAuth protected resource (RFC 9728), one per governed server.

Each route whose `resource_url` is set publishes its metadata (the resource URI and the platform as its
authorization server) at `/.well-known/oauth-protected-resource<path>`, the URL every 401 of the route
names in `WWW-Authenticate: Bearer resource_metadata="..."`. Clients also try the same path with a
trailing slash, without the trailing `/mcp`, and (when the gateway has one route, as a sidecar) the root.

`Origin` checks live here too: a browser-originated request is accepted only from the resource's own
origin, a configured one, or a loopback origin (DNS-rebinding protection, MCP Streamable HTTP transport).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl

from mcp_runtime.wire.oauth import RESOURCE_METADATA_PREFIX


class _Routed(Protocol):
    @property
    def path(self) -> str: ...


R = TypeVar("R", bound=_Routed)

__all__ = ["RESOURCE_METADATA_PREFIX", "metadata_document", "metadata_url", "origin_allowed", "origin_of",
           "route_for_metadata"]
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def metadata_url(resource_url: str) -> str:
    """Where the metadata of `resource_url` is (RFC 9728 section 3.1: the well-known name before the path)."""
    parts = urlsplit(resource_url)
    return f"{parts.scheme}://{parts.netloc}{RESOURCE_METADATA_PREFIX}{parts.path.rstrip('/')}"


def metadata_document(resource_url: str | None, authorization_servers: Sequence[str],
                      server: str) -> dict[str, object] | None:
    """A route's protected resource metadata, or None when the route is not an OAuth resource."""
    if not resource_url or not authorization_servers:
        return None
    metadata = ProtectedResourceMetadata(
        resource=AnyHttpUrl(resource_url),
        authorization_servers=[AnyHttpUrl(url) for url in authorization_servers],
        resource_name=f"{server} (MCP server governed by MCP Runtime)",
        bearer_methods_supported=["header"],
    )
    return metadata.model_dump(mode="json", exclude_none=True)


def route_for_metadata(path: str, routes: Iterable[R]) -> R | None:
    """The route a metadata request names: `<prefix><route path>` (a trailing slash or a missing `/mcp`
    tolerated), or the root when there is exactly one route."""
    rest = path[len(RESOURCE_METADATA_PREFIX):].rstrip("/")
    candidates = list(routes)
    if not rest:
        return candidates[0] if len(candidates) == 1 else None
    for route in candidates:
        if route.path.rstrip("/") in (rest, rest + "/mcp"):
            return route
    return None


def origin_allowed(origin: bytes, allowed: Iterable[str]) -> bool:
    """Whether a browser's `Origin` may call: one of `allowed` (scheme://host[:port]) or a loopback origin."""
    try:
        text = origin.decode("ascii").strip().rstrip("/")
    except UnicodeDecodeError:
        return False
    if text in allowed:
        return True
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and (parts.hostname or "") in _LOOPBACK


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
