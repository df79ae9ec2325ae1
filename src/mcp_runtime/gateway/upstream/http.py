"""The HTTP upstream: a lean HTTP/1.1 client with pooled keep-alive connections and streamed bodies.

Why not httpx or aiohttp: the gateway's hot path is one small POST per tool call, and measured on the
same machine a plain asyncio protocol with httptools' parser forwards 2-3x more requests per second
than aiohttp and ~10x more than httpx (figures in `bench/README.md`). It speaks only what the gateway
needs: one request at a time per connection, Content-Length or chunked responses, bodies delivered as
they arrive (SSE events are never buffered whole), back-pressure on slow readers.

Every wait is bounded (the route's timeouts, `spec.gateway.timeouts`): `connect_timeout` to open a
connection, `head_timeout` (the read timeout) for an answer to start, and for answers to requests with a
body (POSTs) the same read timeout between two parts of the body, plus `max_answer` bytes in all. A GET
stream (server-to-client messages) may stay quiet and open for as long as both ends like.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from collections.abc import AsyncIterator, Coroutine
from typing import Any, cast
from urllib.parse import urlsplit

import httptools

from mcp_runtime.gateway.upstream.base import UpstreamError, UpstreamInvalidAnswer, UpstreamRequest, UpstreamTimeout

_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 300.0
MAX_ANSWER = 32 * 1024 * 1024
"""Largest answer to a POST the gateway relays (32 MiB); a larger one ends with `upstream_invalid_answer`."""


class _ClosedBeforeAnswer(UpstreamError):
    """The connection closed before any byte of an answer: a kept-alive connection gone stale."""


class HttpResponse:
    """One response (an `UpstreamResponse`): status and headers at once, the body as a stream of chunks."""

    __slots__ = ("_buffered", "_chunks", "_conn", "_done", "_error", "_idle", "_limit", "_received", "_waiter",
                 "headers", "status")

    def __init__(self, conn: _Connection, idle: float | None = None, limit: int | None = None) -> None:
        """`idle`: seconds the body may pause before the answer is given up on; `limit`: its largest size."""
        self._conn: _Connection | None = conn
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._received = 0
        self._idle = idle
        self._limit = limit
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def header(self, name: bytes) -> bytes | None:
        """The first value of header `name` (lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def complete(self) -> bool:
        return self._done and self._error is None

    # -- fed by the connection -------------------------------------------------------------------
    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _feed(self, chunk: bytes) -> None:
        if self._error is not None:
            return
        self._received += len(chunk)
        if self._limit is not None and self._received > self._limit:
            self._fail(UpstreamInvalidAnswer(f"the answer is larger than {self._limit} bytes, the most the "
                                             "gateway relays"))
            if self._conn is not None:
                self._conn.pause()
            return
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        if self._buffered > _HIGH_WATER and self._conn is not None:
            self._conn.pause()
        self._wake()

    def _finish(self) -> None:
        self._done = True
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._wake()

    def _raise(self) -> None:
        error = self._error
        if isinstance(error, UpstreamError):
            raise error
        raise UpstreamError(str(error) or "upstream closed the connection") from error

    async def _wait(self) -> None:
        """Until the connection feeds more (or fails); at most the idle timeout, if there is one."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(self._idle, self._idle_expired, waiter) if self._idle is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _idle_expired(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self._fail(UpstreamTimeout(f"the upstream sent nothing more for {self._idle:g} s"))

    # -- read by the gateway ---------------------------------------------------------------------
    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield body chunks as they arrive; the connection goes back to the pool at the end."""
        try:
            while True:
                if self._chunks:
                    chunk = self._chunks.popleft()
                    self._buffered -= len(chunk)
                    if self._buffered < _LOW_WATER and self._conn is not None:
                        self._conn.resume()
                    yield chunk
                    continue
                if self._error is not None:
                    self._raise()
                if self._done:
                    break
                await self._wait()
        finally:
            self.close()

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body (small JSON answers; usually complete by the time the head is parsed)."""
        parts: list[bytes] = []
        size = 0
        try:
            while True:
                while self._chunks:
                    chunk = self._chunks.popleft()
                    self._buffered -= len(chunk)
                    parts.append(chunk)
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise UpstreamInvalidAnswer(f"the answer is larger than {limit} bytes")
                if self._error is not None:
                    self._raise()
                if self._done:
                    break
                if self._conn is not None:
                    self._conn.resume()
                await self._wait()
        finally:
            self.close()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def abort(self, reason: str = "the client went away") -> None:
        """Stop a stream now (client disconnected): wakes the reader, drops the connection."""
        self._fail(UpstreamError(reason))
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.response_done(reuse=False)

    def close(self) -> None:
        """Give the connection back (complete response) or drop it (abandoned mid-body)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.response_done(reuse=self._done and self._error is None)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; httptools calls the on_* methods while parsing."""

    def __init__(self, pool: UpstreamPool) -> None:
        self._pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False
        self._paused = False
        self._response: HttpResponse | None = None
        self._head: asyncio.Future[None] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._complete = False
        self._framed = False
        self._keep_alive = False

    # -- asyncio.Protocol --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool._all.discard(self)
        response = self._response
        if self._head is not None and not self._head.done():
            self._head.set_exception(_ClosedBeforeAnswer("upstream closed the connection before answering"))
        elif response is not None and not self._complete:
            if self._framed:
                response._fail(exc or UpstreamError("upstream closed the connection mid-response"))
            else:  # a body delimited by the end of the connection
                response._finish()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.closed = True
            if self._head is not None and not self._head.done():
                self._head.set_exception(UpstreamInvalidAnswer(f"invalid HTTP from upstream: {exc}"))
            elif self._response is not None:
                self._response._fail(UpstreamInvalidAnswer(f"invalid HTTP from upstream: {exc}"))
            if self.transport is not None:
                self.transport.close()

    # -- httptools callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        response = self._response
        if response is None:
            return
        response.status = self._parser.get_status_code()
        response.headers = self._headers
        self._framed = any(k in (b"content-length", b"transfer-encoding") for k, _ in self._headers)
        # Asked now: after the message is complete the parser has reset and always answers False.
        self._keep_alive = self._parser.should_keep_alive()
        if self._head is not None and not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._response is not None:
            self._response._feed(body)

    def on_message_complete(self) -> None:
        self._complete = True
        if self._response is not None:
            self._response._finish()

    # -- used by the pool and the response ---------------------------------------------------------
    def pause(self) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    async def send(self, request: bytes, idle: float | None = None, limit: int | None = None) -> HttpResponse:
        assert self.transport is not None
        self.used = True
        self._complete = False
        self._framed = False
        response = HttpResponse(self, idle, limit)
        self._response = response
        loop = asyncio.get_running_loop()
        head = self._head = loop.create_future()
        timer = loop.call_later(self._pool.head_timeout, self._head_timed_out, head)
        self.transport.write(request)
        try:
            await head
        finally:
            timer.cancel()
            self._head = None
        length = response.header(b"content-length")
        if limit is not None and length is not None and length.isdigit() and int(length) > limit:
            response.abort("too large")
            raise UpstreamInvalidAnswer(f"the upstream announced an answer of {int(length)} bytes; the gateway "
                                        f"relays at most {limit}")
        return response

    def _head_timed_out(self, head: asyncio.Future[None]) -> None:
        if not head.done():
            head.set_exception(UpstreamTimeout(f"upstream sent no answer within {self._pool.head_timeout:g} s"))
            self.close()

    def response_done(self, *, reuse: bool) -> None:
        self._response = None
        self.resume()
        if reuse and self._complete and self._keep_alive and not self.closed:
            self._pool._release(self)
        else:
            self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """An `Upstream` over HTTP: keep-alive connections to one endpoint (`http://host:port/path` or https)."""

    def __init__(self, url: str, *, credential: str | None = None, max_idle: int = 256,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, head_timeout: float = DEFAULT_READ_TIMEOUT,
                 max_answer: int = MAX_ANSWER, credential_header: tuple[str, str] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        """`credential`: sent as `Authorization: Bearer ...` on every request (the upstream's own; a
        client's bearer is never forwarded). `credential_header`: (name, value) sent instead, for a remote
        that wants another header or scheme (`X-API-Key: ...`); a client's header of that name is dropped.
        `tls`: the context an https upstream is verified with (default: the system CAs, host name checked).
        `head_timeout` (the route's read timeout): how long an
        upstream may take to start answering (a slow tool call in JSON mode answers only when done; SSE
        answers start at once), and how long the answer to a POST may pause. `max_answer`: the largest
        answer to a POST relayed."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream URL must be http(s)://host[:port]/path, got {url!r}")
        self.url = url
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = parts.path or "/"
        self.path_bytes = self.path.encode()
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = (host if default_port else f"{host}:{self.port}").encode("ascii")
        self._ssl = (tls or ssl.create_default_context()) if parts.scheme == "https" else None
        self._idle: list[_Connection] = []
        self._max_idle = max_idle
        self._connect_timeout = connect_timeout
        self.head_timeout = head_timeout
        self.max_answer = max_answer
        self._all: set[_Connection] = set()
        if credential_header is None and credential:
            credential_header = ("authorization", "Bearer " + credential)
        self._credential = b""
        self._drop: bytes | None = None
        if credential_header is not None:
            name, value = credential_header
            if not value.isprintable() or not name.isprintable() or ":" in name:
                raise ValueError("the upstream credential must be printable text (no line breaks)")
            self._credential = name.lower().encode() + b": " + value.encode() + b"\r\n"
            # the client's Authorization is always stripped before; another header name is dropped here
            self._drop = name.lower().encode() if name.lower() != "authorization" else None

    async def start(self) -> None:
        """Nothing to do: connections are opened on demand."""

    def send(self, request: UpstreamRequest) -> Coroutine[Any, Any, HttpResponse]:
        """Forward to this endpoint's path, with the client's query string (`request`'s coroutine itself:
        no extra frame per call)."""
        target = self.path_bytes + b"?" + request.query if request.query else self.path_bytes
        return self.request(request.method, target, request.headers, request.body)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self), self.host, self.port, ssl=self._ssl,
                                       server_hostname=self.host if self._ssl else None),
                self._connect_timeout,
            )
        except TimeoutError:
            raise UpstreamTimeout(f"cannot connect to upstream {self.host}:{self.port} within "
                                  f"{self._connect_timeout:g} s") from None
        except ssl.SSLCertVerificationError as exc:
            raise UpstreamError(f"the TLS certificate of {self.host}:{self.port} is not trusted "
                                f"({exc.verify_message}); for a private CA set remote.caBundle") from exc
        except OSError as exc:
            raise UpstreamError(f"cannot connect to upstream {self.host}:{self.port}: {exc}") from exc
        self._all.add(conn)
        return conn

    def _release(self, conn: _Connection) -> None:
        if len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    async def request(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
                      body: bytes | None = None) -> HttpResponse:
        """Send one request; return once the response head arrived (the body streams after)."""
        lines = [method, b" ", target, b" HTTP/1.1\r\nhost: ", self.host_header, b"\r\n", self._credential]
        drop = self._drop
        for name, value in headers:
            if name != drop:
                lines += (name, b": ", value, b"\r\n")
        if body is not None:
            lines += (b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body)
        else:
            lines.append(b"\r\n")
        payload = b"".join(lines)
        # an answer to a request with a body (a POST) is bounded in pauses and size; a GET stream is not
        idle, limit = (self.head_timeout, self.max_answer) if body is not None else (None, None)
        while self._idle:
            conn = self._idle.pop()
            if conn.closed:
                self._all.discard(conn)
                continue
            try:
                return await conn.send(payload, idle, limit)
            except _ClosedBeforeAnswer:
                # A kept-alive connection the upstream closed while idle: send it on a fresh one.
                self._all.discard(conn)
                conn.close()
        conn = await self._connect()
        return await conn.send(payload, idle, limit)

    @property
    def open_connections(self) -> int:
        """Connections to the upstream open now, in use or idle (the `mcp_gateway_upstream_connections` gauge)."""
        return len(self._all)

    async def aclose(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
