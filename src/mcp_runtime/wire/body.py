"""Read a request body from ASGI `receive` with a size limit, so no client can make us buffer without end.

A body whose declared `Content-Length` is over the limit is refused before a byte of it is read; a
chunked one is refused as soon as it grows past the limit.
"""

from __future__ import annotations

from mcp_runtime.wire.asgi import Receive


class BodyTooLarge(Exception):
    """The body is over the limit: answered with 413 and `Connection: close` (the rest is never read)."""

    status = 413
    headers = ((b"connection", b"close"),)

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit

    def envelope(self) -> dict[str, str]:
        """The JSON answer: a stable code and the cause with its fix."""
        return {"error": "request_too_large",
                "message": f"the request body is larger than {self.limit} bytes; send smaller requests"}


class ClientDisconnected(Exception):
    """The client went away before it finished sending: there is no one to answer."""


async def read_body(receive: Receive, limit: int, content_length: bytes | None = None) -> bytes:
    """The whole body, at most `limit` bytes. Raises BodyTooLarge or ClientDisconnected.

    `content_length` is the request's header, if the caller has it at hand: an oversized declared
    length is refused at once. A malformed one is ignored here (the HTTP server rejects those).
    """
    if content_length is not None:
        try:
            if int(content_length) > limit:
                raise BodyTooLarge(limit)
        except ValueError:
            pass
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        parts.append(chunk)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)
