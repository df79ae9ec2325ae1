"""Upstreams: where the gateway forwards what the policy allowed (`base.py` says what one is).

`open_upstream` is the one place a route's upstream is chosen; stdio and virtual-server upstreams are
added here next to the HTTP one.
"""

from mcp_runtime.gateway.upstream.base import Upstream, UpstreamError, UpstreamRequest, UpstreamResponse
from mcp_runtime.gateway.upstream.http import UpstreamPool


def open_upstream(url: str, *, credential: str | None = None) -> Upstream:
    """The upstream of a route: today always an MCP Streamable HTTP endpoint (`http(s)://host:port/path`)."""
    return UpstreamPool(url, credential=credential)


__all__ = ["Upstream", "UpstreamError", "UpstreamPool", "UpstreamRequest", "UpstreamResponse", "open_upstream"]
