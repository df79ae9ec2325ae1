"""Upstreams: where the gateway forwards what the policy allowed (`base.py` says what one is).

`open_upstream` is the one place a route's upstream is chosen; stdio and virtual-server upstreams are
added here next to the HTTP one. A remote server (`spec.remote`) is an HTTP upstream too: its own URL,
Host and TLS name, the credential header from its Secret, and `tls_context` for a private CA.
"""

from __future__ import annotations

import ssl

from mcp_runtime.gateway.upstream.base import (
    Upstream,
    UpstreamCredentialMissing,
    UpstreamCredentialRejected,
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


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verify the remote's certificate and host name: against `ca_bundle` (PEM) alone when given, else the
    system CAs. Raises ValueError when the bundle holds no usable certificate."""
    if ca_bundle is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cadata=ca_bundle)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(f"remote.caBundle holds no usable PEM certificate ({exc})") from None


def open_upstream(url: str, *, credential: str | None = None, credential_header: tuple[str, str] | None = None,
                  ca_bundle: str | None = None, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                  read_timeout: float = DEFAULT_READ_TIMEOUT) -> Upstream:
    """The upstream of a route: today always an MCP Streamable HTTP endpoint (`http(s)://host:port/path`)."""
    tls = tls_context(ca_bundle) if url.startswith("https:") else None
    return UpstreamPool(url, credential=credential, credential_header=credential_header, tls=tls,
                        connect_timeout=connect_timeout, head_timeout=read_timeout)


__all__ = ["DEFAULT_CONNECT_TIMEOUT", "DEFAULT_READ_TIMEOUT", "MAX_ANSWER", "Upstream", "UpstreamCredentialMissing",
           "UpstreamCredentialRejected", "UpstreamError", "UpstreamInvalidAnswer", "UpstreamPool", "UpstreamRequest",
           "UpstreamResponse", "UpstreamTimeout", "open_upstream", "tls_context"]
