"""The well-known path of OAuth protected resource metadata (RFC 9728), shared by the gateway that serves
it and the proxy of `up --runtime podman` that passes it on to the pods' sidecars."""

from __future__ import annotations

RESOURCE_METADATA_PREFIX = "/.well-known/oauth-protected-resource"


def metadata_route(path: str) -> str | None:
    """The route a metadata request names (`<prefix>/payments/mcp` -> `/payments/mcp`), or None when `path`
    is not under the prefix. The rest is returned as asked (a trailing slash or a missing `/mcp` included)."""
    if path != RESOURCE_METADATA_PREFIX and not path.startswith(RESOURCE_METADATA_PREFIX + "/"):
        return None
    return path[len(RESOURCE_METADATA_PREFIX):].rstrip("/")
