"""The headers a governed request carries upstream: the client's, minus what must not pass, plus the
verified caller's identity (never identity claims the client sent itself)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcp_runtime.wire.asgi import Scope

if TYPE_CHECKING:
    from mcp_runtime.gateway.auth import Authenticated

# Never forwarded upstream: hop-by-hop headers, the client's credentials and identity claims, the
# client's Host (the upstream's own is sent), lengths we recompute, encodings we could not rewrite.
_STRIP_REQUEST = frozenset({
    b"host", b"authorization", b"proxy-authorization", b"connection", b"keep-alive", b"proxy-connection",
    b"te", b"trailer", b"transfer-encoding", b"upgrade", b"content-length", b"expect", b"accept-encoding",
    b"x-mcp-human-id", b"x-mcp-agent-id", b"x-mcp-team-id", b"x-mcp-agent-session",
})


def upstream_headers(scope: Scope, caller: Authenticated | None) -> list[tuple[bytes, bytes]]:
    """The client's headers minus `_STRIP_REQUEST`, plus the identity headers of the verified caller."""
    headers = [(k, v) for k, v in scope["headers"] if k not in _STRIP_REQUEST]
    if caller is not None:
        headers += caller.headers
    return headers
