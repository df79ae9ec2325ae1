"""One MCP session: the SDK's Streamable HTTP transport on one side, one stdio process on the other.

Every message passes unchanged both ways. The transport answers each POST with the child's response
of the same id; what the child sends on its own (progress, logging, sampling, elicitation, roots
requests) has to be put on a stream the client is listening to, and stdio carries no hint which one.
The rule: a progress notification goes to the request that asked for progress with its token; any
other message goes to the newest request still waiting for its answer (the one a tool call's
sampling or elicitation belongs to when calls are not concurrent); with none waiting, to the GET
stream. A client that cancels a request gets that request's stream closed with a "cancelled" error at
once (stdio servers send no answer to a cancelled request). When the process exits or breaks the
protocol, every waiting request is answered with a JSON-RPC error naming why, and the session ends.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from mcp.server.streamable_http import REQUEST_CANCELLED, StreamableHTTPServerTransport
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import (
    ErrorData,
    JSONRPCError,
    JSONRPCMessage,
    JSONRPCNotification,
    JSONRPCRequest,
    JSONRPCResponse,
    RequestId,
)

from mcp_runtime.bridge.child import ChildProtocolError, StdioChild

log = logging.getLogger(__name__)

SERVER_EXITED = -32003
"""The JSON-RPC code of every request the stdio process ended without answering (it exited or broke
the protocol). In the implementation-defined server-error range; `-32001` is the gateway's."""

INITIALIZE_TIMEOUT = 60.0
DRAIN_TIMEOUT = 2.0


@dataclass
class _InFlight:
    """Client requests the child has not answered yet, newest last, and their progress tokens."""

    order: list[str] = field(default_factory=list)
    ids: dict[str, RequestId] = field(default_factory=dict)
    progress: dict[str, str] = field(default_factory=dict)  # progress token -> request key

    def add(self, request: JSONRPCRequest) -> None:
        key = str(request.id)
        self.order.append(key)
        self.ids[key] = request.id
        meta = (request.params or {}).get("_meta") if isinstance(request.params, dict) else None
        if isinstance(meta, dict) and meta.get("progressToken") is not None:
            self.progress[str(meta["progressToken"])] = key

    def done(self, request_id: RequestId | None) -> bool:
        key = str(request_id)
        if key not in self.ids:
            return False
        del self.ids[key]
        self.order.remove(key)
        for token in [t for t, k in self.progress.items() if k == key]:
            del self.progress[token]
        return True

    def related(self, message: JSONRPCMessage) -> RequestId | None:
        """Which waiting request's stream a message of the child's own belongs on (None: the GET stream)."""
        if isinstance(message, JSONRPCNotification) and message.method == "notifications/progress":
            token = (message.params or {}).get("progressToken")
            key = self.progress.get(str(token))
            if key is not None:
                return self.ids[key]
        return self.ids[self.order[-1]] if self.order else None


def _error(request_id: RequestId, code: int, message: str) -> JSONRPCError:
    return JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=message))


class BridgeSession:
    """Relays between `transport` and `child` until either side ends; then ends the other."""

    def __init__(self, transport: StreamableHTTPServerTransport, child: StdioChild,
                 initialize_timeout: float = INITIALIZE_TIMEOUT) -> None:
        self.transport = transport
        self.child = child
        self.initialize_timeout = initialize_timeout
        self.in_flight = _InFlight()
        self.end_reason: str | None = None
        self._failure: str | None = None
        self._write_stream: Any = None

    async def run(self, read_stream: Any, write_stream: Any) -> None:
        """Relay until the client ends the session, the idle timeout fires or the child ends."""
        self._write_stream = write_stream
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.child.pump_stderr)
            tg.start_soon(self._from_client, read_stream, tg)
            await self._from_child()
            tg.cancel_scope.cancel()

    async def _from_client(self, read_stream: Any, tg: anyio.abc.TaskGroup) -> None:
        with contextlib.suppress(anyio.ClosedResourceError, anyio.EndOfStream):
            async for item in read_stream:
                if isinstance(item, Exception):
                    log.warning("[%s] transport error: %s", self.child.tag, item)
                    continue
                if not await self._to_child(item.message, tg):
                    break
        # the client ended the session (DELETE) or the transport closed: stop the child
        self.end_reason = self.end_reason or "the client ended the session"
        await self.child.stop()

    async def _to_child(self, message: JSONRPCMessage, tg: anyio.abc.TaskGroup) -> bool:
        """Write one client message to the child; False once the child cannot take it any more."""
        if isinstance(message, JSONRPCRequest):
            self.in_flight.add(message)
            if message.method == "initialize":
                tg.start_soon(self._initialize_watchdog, message.id)
        elif isinstance(message, JSONRPCNotification) and message.method == "notifications/cancelled":
            await self._cancelled(message)
        try:
            await self.child.send(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return False  # the child is gone; _from_child reports it
        return True

    async def _initialize_watchdog(self, request_id: RequestId) -> None:
        """A server that never answers initialize would leave the client waiting: end it instead."""
        await anyio.sleep(self.initialize_timeout)
        if str(request_id) in self.in_flight.ids:
            self._failure = f"the stdio server did not answer initialize within {self.initialize_timeout:g}s"
            await self.child.stop()

    async def _cancelled(self, message: JSONRPCNotification) -> None:
        request_id = (message.params or {}).get("requestId")
        key = str(request_id)
        if key in self.in_flight.ids:
            original = self.in_flight.ids[key]
            self.in_flight.done(original)
            await self._write_to_client(_error(original, REQUEST_CANCELLED, "Request cancelled"))

    async def _from_child(self) -> None:
        reason = "the stdio server closed its output"
        try:
            while (message := await self.child.receive()) is not None:
                await self._deliver(message)
        except ChildProtocolError as exc:
            reason = str(exc)
        reason = self._failure or reason
        if self.end_reason is None:
            await self.child.stop()
            code = self.child.returncode
            exited = f"; it exited with code {code}" if code is not None else ""
            self.end_reason = f"{reason}{exited}"
            log.warning("[%s] session ends: %s", self.child.tag, self.end_reason)
            waiting = [self.in_flight.ids[key] for key in self.in_flight.order]
            for request_id in waiting:
                self.in_flight.done(request_id)
                await self._write_to_client(_error(
                    request_id, SERVER_EXITED,
                    f"the MCP server process ended before it answered: {self.end_reason}; start a new session "
                    f"(see the server's logs for why it ended)"))
            await self._drained(waiting)
        await self.transport.terminate()

    async def _drained(self, request_ids: list[RequestId], timeout: float = DRAIN_TIMEOUT) -> None:
        """Wait (briefly) until the errors just written reached their POST streams: terminating the
        transport closes those streams, and an error still queued there would be lost."""
        streams = self.transport._request_streams  # private: the SDK has no public view of open POST streams
        with anyio.move_on_after(timeout):
            while any(str(request_id) in streams for request_id in request_ids):
                await anyio.sleep(0.01)

    async def _deliver(self, message: JSONRPCMessage) -> None:
        if isinstance(message, JSONRPCResponse | JSONRPCError):
            if message.id is not None and not self.in_flight.done(message.id):
                log.debug("[%s] answer to %r dropped: no request waits for it", self.child.tag, message.id)
                return
            await self._write_to_client(message)
            return
        await self._write_to_client(message, self.in_flight.related(message))

    async def _write_to_client(self, message: JSONRPCMessage, related: RequestId | None = None) -> None:
        metadata = ServerMessageMetadata(related_request_id=related) if related is not None else None
        try:
            await self._write_stream.send(SessionMessage(message, metadata=metadata))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            log.debug("[%s] client side closed; message dropped", self.child.tag)
