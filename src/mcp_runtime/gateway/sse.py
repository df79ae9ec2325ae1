"""Server-sent events, event by event: rewrite the few events the gateway must change, pass the rest.

Used only when a response needs rewriting (a `tools/list` answer to filter); other SSE responses are
passed through chunk by chunk without parsing.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n")
_LINE = re.compile(rb"\r\n|\r|\n")

Rewrite = Callable[[Any], Any | None]
"""Given a JSON-RPC message from a `data:` field, return a replacement, or None to keep it."""


class SseRewriter:
    """Feed upstream bytes, get bytes for the client: complete events only, rewritten when asked."""

    def __init__(self, rewrite: Rewrite) -> None:
        self._rewrite = rewrite
        self._buffer = b""

    def feed(self, chunk: bytes) -> bytes:
        self._buffer += chunk
        out: list[bytes] = []
        start = 0
        for match in _EVENT_END.finditer(self._buffer):
            out.append(self._event(self._buffer[start:match.start()], self._buffer[match.start():match.end()]))
            start = match.end()
        self._buffer = self._buffer[start:]
        return b"".join(out)

    def flush(self) -> bytes:
        """Whatever is left at the end of the stream (an unterminated event passes unchanged)."""
        rest, self._buffer = self._buffer, b""
        return rest

    def _event(self, block: bytes, end: bytes) -> bytes:
        lines = _LINE.split(block)
        data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
        if not data:
            return block + end
        try:
            message = json.loads(b"\n".join(data))
        except (ValueError, RecursionError):
            return block + end
        replacement = self._rewrite(message)
        if replacement is None:
            return block + end
        kept = [line for line in lines if not line.startswith(b"data:")]
        payload = json.dumps(replacement, separators=(",", ":"), ensure_ascii=False).encode()
        return b"\n".join([*kept, b"data: " + payload]) + b"\n\n"


def sse_event(message: Any) -> bytes:
    """One `message` event carrying a JSON-RPC message."""
    payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    return b"event: message\ndata: " + payload + b"\n\n"


async def iter_messages(chunks: AsyncIterator[bytes]) -> AsyncIterator[Any]:
    """The JSON messages of an SSE stream, one per event with `data:`, as the events complete (a virtual
    server reads its members' answers this way; events whose data is not JSON are skipped)."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        start = 0
        for match in _EVENT_END.finditer(buffer):
            message = _data_of(buffer[start:match.start()])
            start = match.end()
            if message is not None:
                yield message
        buffer = buffer[start:]
    message = _data_of(buffer)
    if message is not None:
        yield message


def _data_of(block: bytes) -> Any | None:
    data = [line[5:].removeprefix(b" ") for line in _LINE.split(block) if line.startswith(b"data:")]
    if not data:
        return None
    try:
        return json.loads(b"\n".join(data))
    except (ValueError, RecursionError):
        return None
