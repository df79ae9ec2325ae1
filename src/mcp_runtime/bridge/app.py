"""The stdio bridge's ASGI app: Streamable HTTP at one path, one stdio process per MCP session.

The HTTP side is the official SDK's `StreamableHTTPServerTransport` (session ids, JSON or SSE answers
to POSTs, the GET stream, DELETE, protocol-version checks), one per session; the session bookkeeping
around it follows the SDK's `StreamableHTTPSessionManager`, which cannot be used as is because it
runs the SDK's own server where we run a process. A new session starts its process only once the
pool has room and the container's memory limit has room for its process (`bridge.memory`): otherwise
it answers 503 with a JSON-RPC error and starts nothing.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER, StreamableHTTPServerTransport
from mcp_types import INTERNAL_ERROR, INVALID_REQUEST, ErrorData, JSONRPCError
from starlette.types import Message, Receive, Scope, Send

from mcp_runtime.bridge.child import DEFAULT_MAX_LINE, StdioChild
from mcp_runtime.bridge.memory import CGROUP_ROOT, DEFAULT_HEADROOM, admission, read_memory
from mcp_runtime.bridge.session import INITIALIZE_TIMEOUT, BridgeSession
from mcp_runtime.wire.body import BodyTooLarge, ClientDisconnected, read_body

log = logging.getLogger(__name__)

DEFAULT_MAX_SESSIONS = 16
DEFAULT_IDLE_TIMEOUT = 900.0
MAX_BODY = 4 * 1024 * 1024


@dataclass(frozen=True)
class BridgeConfig:
    """What to run per session and the bounds around it."""

    argv: Sequence[str]
    path: str = "/mcp"
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    max_sessions: int = DEFAULT_MAX_SESSIONS
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    initialize_timeout: float = INITIALIZE_TIMEOUT
    max_line: int = DEFAULT_MAX_LINE
    max_body: int = MAX_BODY
    memory_headroom: float = DEFAULT_HEADROOM
    """A new session must leave the cgroup's working set under this share of its memory limit (0: no check)."""
    cgroup_root: Path = CGROUP_ROOT


async def _json_error(send: Send, status: int, code: int, message: str,
                      headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=code, message=message))
    payload = body.model_dump_json(by_alias=True, exclude_none=True).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})


def _replay(body: bytes) -> Receive:
    """A `receive` that hands out the already-read (bounded) body once, then waits for the disconnect."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    return receive


class StdioBridge:
    """ASGI app: `config.path` speaks Streamable HTTP; `/healthz` answers 200 while the app runs."""

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.sessions: dict[str, StreamableHTTPServerTransport] = {}
        self.children: dict[str, StdioChild] = {}
        self._task_group: anyio.abc.TaskGroup | None = None
        self._admit = anyio.Lock()
        self._baseline = 0  # the working set before any session: what the bridge itself takes
        self._starting: set[str] = set()  # sessions whose process has not answered initialize yet
        self._settled = anyio.Event()  # set (and replaced) whenever a starting session settles

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Hold the sessions' task group; leaving it stops every session and its process tree."""
        use = read_memory(self.config.cgroup_root)
        self._baseline = use.working_set if use is not None else 0
        async with anyio.create_task_group() as tg:
            self._task_group = tg
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
        self._task_group = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"].rstrip("/") or "/"
        if path == "/healthz":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"ok\n"})
            return
        if path != self.config.path.rstrip("/"):
            await _json_error(send, 404, INVALID_REQUEST, f"not found: MCP is served at {self.config.path}")
            return
        if scope["method"] == "POST":
            headers = dict(scope["headers"])
            try:
                body = await read_body(receive, self.config.max_body, headers.get(b"content-length"))
            except BodyTooLarge as exc:
                await _json_error(send, 413, INVALID_REQUEST, exc.envelope()["message"], exc.headers)
                return
            except ClientDisconnected:
                return
            receive = _replay(body)
        await self._dispatch(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        async with self.running():
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        session_id = dict(scope["headers"]).get(MCP_SESSION_ID_HEADER.lower().encode())
        if session_id is not None:
            transport = self.sessions.get(session_id.decode(errors="replace"))
            if transport is None:
                await _json_error(send, 404, INVALID_REQUEST,
                                  "Session not found: it ended (DELETE, idle timeout or its server process "
                                  "exited); initialize a new session")
                return
            await transport.handle_request(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _json_error(send, 400, INVALID_REQUEST, "Bad Request: missing Mcp-Session-Id header")
            return
        admitted = await self._admit_one()
        if isinstance(admitted, str):
            log.warning("refusing a new session (%d open): %s", len(self.sessions), admitted)
            await _json_error(send, 503, INTERNAL_ERROR, admitted, [(b"retry-after", b"5")])
            return
        await self._open(admitted, scope, receive, send)

    async def _admit_one(self) -> StreamableHTTPServerTransport | str:
        """A new session's transport, or why there is none: the pool is full, or the memory limit has no
        room (after waiting, up to the initialize timeout, for starting sessions to settle)."""
        with anyio.move_on_after(self.config.initialize_timeout):
            while True:
                async with self._admit:
                    if len(self.sessions) >= self.config.max_sessions:
                        return (f"Too many open sessions: this server runs at most {self.config.max_sessions} "
                                "processes at once; retry later or end an unused session (DELETE)")
                    verdict, why = self._memory_verdict()
                    if verdict == "refuse":
                        return why or "not enough memory"
                    if verdict == "admit":
                        transport = StreamableHTTPServerTransport(
                            mcp_session_id=uuid.uuid4().hex, idle_timeout=self.config.idle_timeout)
                        assert transport.mcp_session_id is not None
                        self.sessions[transport.mcp_session_id] = transport
                        self._starting.add(transport.mcp_session_id)
                        return transport
                    settled = self._settled
                await settled.wait()
        return self._memory_verdict()[1] or "timed out waiting for a starting server process"

    def _memory_verdict(self) -> tuple[str, str | None]:
        if self.config.memory_headroom <= 0 or not self.sessions:
            return ("admit", None)
        starting = len(self._starting)
        return admission(read_memory(self.config.cgroup_root), self._baseline, len(self.sessions) - starting,
                         starting, self.config.memory_headroom)

    def _settle(self, session_id: str) -> None:
        if session_id in self._starting:
            self._starting.discard(session_id)
            self._settled.set()
            self._settled = anyio.Event()

    async def _open(self, transport: StreamableHTTPServerTransport, scope: Scope, receive: Receive,
                    send: Send) -> None:
        session_id = transport.mcp_session_id
        assert session_id is not None and self._task_group is not None
        tag = f"session {session_id[:8]}"
        try:
            child = await StdioChild.start(self.config.argv, env=self.config.env, cwd=self.config.cwd,
                                           tag=tag, max_line=self.config.max_line)
        except OSError as exc:
            self.sessions.pop(session_id, None)
            self._settle(session_id)
            log.error("[%s] cannot start %s: %s", tag, self.config.argv[0], exc)
            await _json_error(send, 502, INTERNAL_ERROR,
                              f"cannot start the MCP server process {self.config.argv[0]!r}: {exc}")
            return
        self.children[session_id] = child
        await self._task_group.start(self._serve, transport, child)
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await transport.handle_request(scope, receive, watch)
        finally:
            self._settle(session_id)  # initialize answered (or failed): its memory is in the working set now
            if not status or status[0] >= 400:  # the opening request was refused: nothing was established
                self.sessions.pop(session_id, None)
                with anyio.CancelScope(shield=True):
                    await transport.terminate()

    async def _serve(self, transport: StreamableHTTPServerTransport, child: StdioChild, *,
                     task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        session_id = transport.mcp_session_id
        assert session_id is not None
        try:
            async with transport.connect() as (read_stream, write_stream):
                task_status.started()
                idle = transport.idle_scope or anyio.CancelScope()
                with idle:
                    await BridgeSession(transport, child, self.config.initialize_timeout).run(
                        read_stream, write_stream)
                if idle.cancelled_caught:
                    log.info("[%s] idle for %gs: session ended", child.tag, self.config.idle_timeout)
        except Exception:
            log.exception("[%s] session failed", child.tag)
        finally:
            self.sessions.pop(session_id, None)
            self.children.pop(session_id, None)
            self._settle(session_id)
            await child.stop()
            with anyio.CancelScope(shield=True):
                if not transport.is_terminated:
                    await transport.terminate()
