"""Upstreams: where the gateway forwards what the policy allowed (`base.py` says what one is).

`open_upstream` is the one place a route's upstream is chosen; stdio and virtual-server upstreams are
added here next to the HTTP one.
"""

from mcp_runtime.gateway.upstream.base import (
    Upstream,
    UpstreamError,
    UpstreamInvalidAnswer,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamTimeout,
)
from mcp_runtime.gateway.upstream.http import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    MAX_ANSWER,
    UpstreamPool,
)


def open_upstream(url: str, *, credential: str | None = None, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                  read_timeout: float = DEFAULT_READ_TIMEOUT) -> Upstream:
    """The upstream of a route: today always an MCP Streamable HTTP endpoint (`http(s)://host:port/path`)."""
    return UpstreamPool(url, credential=credential, connect_timeout=connect_timeout, head_timeout=read_timeout)


__all__ = ["DEFAULT_CONNECT_TIMEOUT", "DEFAULT_READ_TIMEOUT", "MAX_ANSWER", "Upstream", "UpstreamError",
           "UpstreamInvalidAnswer", "UpstreamPool", "UpstreamRequest", "UpstreamResponse", "UpstreamTimeout",
           "open_upstream"]
