"""One backend MCP session: a client session of a virtual server talking to one member server.

Opened lazily (the first time the client session needs the member), over the member route's own
`Upstream` (the same connection pool, Host and credential as the member's governed route). Requests
get the member's own ids (`IdTable`); answers come back as JSON or as an SSE stream and are yielded
message by message, so progress notifications and elicitation requests reach the client while a call
runs. A member that answers 404 to its session id lost the session (restart, idle expiry): the link
initializes again and sends the message once more, transparently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from mcp_runtime.gateway.sse import iter_messages
from mcp_runtime.gateway.upstream import Upstream, UpstreamError, UpstreamInvalidAnswer, UpstreamRequest
from mcp_runtime.gateway.virtual.mapping import IdTable, MemberKey
from mcp_runtime.wire.jsonrpc import dumps

log = logging.getLogger("mcp_runtime.gateway.virtual")

INIT_TIMEOUT = 10.0
"""Seconds a member has to answer `initialize` before it counts as down."""
_ACCEPT = (b"accept", b"application/json, text/event-stream")
_JSON = (b"content-type", b"application/json")

Listener = Callable[["MemberLink", dict[str, Any]], None]
"""Told of every message a member sends outside an answer (its GET stream): notifications, requests."""


class SessionLost(UpstreamError):
    """The member no longer knows the session (404), twice in a row."""


class MemberLink:
    """The backend session of one client session with one member."""

    def __init__(self, key: MemberKey, upstream: Upstream, headers: list[tuple[bytes, bytes]],
                 init_params: dict[str, Any], listener: Listener | None = None) -> None:
        self.key = key
        self.upstream = upstream
        self._headers = headers
        self._init_params = init_params
        self._listener = listener
        self.ids = IdTable()
        self.session_id: bytes | None = None
        self.protocol_version: bytes | None = None
        self.capabilities: dict[str, Any] = {}
        self.opened = False
        self._lock = asyncio.Lock()
        self._stream: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return f"{self.key[1]} ({self.key[0]})"

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [*self._headers, _ACCEPT, _JSON]
        if self.session_id is not None:
            headers.append((b"mcp-session-id", self.session_id))
        if self.protocol_version is not None:
            headers.append((b"mcp-protocol-version", self.protocol_version))
        return headers

    async def open(self) -> None:
        """`initialize` + `notifications/initialized` (once; concurrent callers wait for the first)."""
        async with self._lock:
            if not self.opened:
                await asyncio.wait_for(self._initialize(), INIT_TIMEOUT)

    async def _initialize(self) -> None:
        self.session_id = None
        self.protocol_version = None
        request = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": self._init_params}
        response = await self.upstream.send(UpstreamRequest(b"POST", b"", self.headers(), dumps(request)))
        if response.status >= 400:
            response.abort("initialize refused")
            raise UpstreamError(f"member {self.name} refused initialize (HTTP {response.status})")
        self.session_id = response.header(b"mcp-session-id")
        result: dict[str, Any] | None = None
        async for message in _messages(response):
            if message.get("id") == 0 and "result" in message:
                result = message["result"]
                break
        if not isinstance(result, dict):
            raise UpstreamInvalidAnswer(f"member {self.name} answered initialize without a result")
        version = result.get("protocolVersion")
        self.protocol_version = version.encode() if isinstance(version, str) else None
        caps = result.get("capabilities")
        self.capabilities = caps if isinstance(caps, dict) else {}
        self.opened = True
        await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"}, reopen=False)
        if self._listener is not None and self.session_id is not None and self._stream is None:
            self._stream = asyncio.ensure_future(self._listen())

    async def request(self, message: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Send one request (its id already the member's) and yield what the member sends back on its
        answer stream, the answer last. A lost session is re-initialized and the request sent again."""
        await self.open()
        response = await self.upstream.send(UpstreamRequest(b"POST", b"", self.headers(), dumps(message)))
        if response.status == 404 and self.session_id is not None:
            response.abort("session lost")
            await self.reopen()
            response = await self.upstream.send(UpstreamRequest(b"POST", b"", self.headers(), dumps(message)))
        if response.status >= 400:
            response.abort("refused")
            raise UpstreamError(f"member {self.name} answered HTTP {response.status}")
        async for answer in _messages(response):
            yield answer

    async def post(self, message: dict[str, Any], *, reopen: bool = True) -> None:
        """Send a notification or a response (no answer expected beyond 202)."""
        response = await self.upstream.send(UpstreamRequest(b"POST", b"", self.headers(), dumps(message)))
        if response.status == 404 and reopen and self.session_id is not None:
            response.abort("session lost")
            await self.reopen()
            return
        with contextlib.suppress(UpstreamError):
            await response.read(64 * 1024)

    async def reopen(self) -> None:
        async with self._lock:
            self.opened = False
            log.info("member %s lost its session; initializing again", self.name)
            await asyncio.wait_for(self._initialize(), INIT_TIMEOUT)

    async def _listen(self) -> None:
        """The member's GET stream (server-to-client messages not tied to a request), while it lasts."""
        try:
            response = await self.upstream.send(UpstreamRequest(b"GET", b"", [
                *self._headers, (b"accept", b"text/event-stream"), *(
                    [(b"mcp-session-id", self.session_id)] if self.session_id else []), *(
                    [(b"mcp-protocol-version", self.protocol_version)] if self.protocol_version else [])],
                None))
            if response.status != 200:
                response.abort("no stream")
                return
            async for message in _messages(response):
                if self._listener is not None:
                    self._listener(self, message)
        except (UpstreamError, OSError) as exc:
            log.debug("the stream of member %s ended: %s", self.name, exc)
        finally:
            self._stream = None

    async def close(self) -> None:
        """End the backend session (DELETE), best effort."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.cancel()
        if self.session_id is None:
            return
        with contextlib.suppress(UpstreamError, OSError):
            response = await self.upstream.send(UpstreamRequest(b"DELETE", b"", self.headers(), None))
            await response.read(64 * 1024)
        self.opened = False


async def _messages(response: Any) -> AsyncIterator[dict[str, Any]]:
    """The JSON-RPC messages of an answer, JSON or SSE, as they arrive."""
    content_type = (response.header(b"content-type") or b"").split(b";", 1)[0].strip().lower()
    if content_type == b"text/event-stream":
        async for message in iter_messages(response.chunks()):
            if isinstance(message, dict):
                yield message
        return
    data = await response.read(32 * 1024 * 1024)
    if not data.strip():
        return
    try:
        payload = json.loads(data)
    except ValueError:
        raise UpstreamInvalidAnswer(f"the answer is not JSON-RPC: {data[:80]!r}") from None
    for message in payload if isinstance(payload, list) else [payload]:
        if isinstance(message, dict):
            yield message
