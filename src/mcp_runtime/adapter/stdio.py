"""`adapter stdio`: newline-delimited JSON-RPC on stdin/stdout, one Streamable HTTP session to the runtime.

For Claude Desktop and other clients that start a process. Each line from stdin is POSTed to the
runtime URL with the session token; the answer (JSON, or an SSE stream read event by event) is
written to stdout a message per line. After `notifications/initialized` a GET stream carries the
server's own notifications and requests; the client's responses to those are POSTed like any other
message. HTTP failures become JSON-RPC errors with the request's id and the runtime's reason.
stdout carries only the protocol: every log line goes to stderr.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import sys
import threading
from collections.abc import AsyncIterator
from typing import IO, Any

import httpx

from mcp_runtime.adapter import jsonrpc
from mcp_runtime.adapter.proxy import upstream_timeout
from mcp_runtime.adapter.session import EXPIRED_REASONS, AdapterError, SessionManager
from mcp_runtime.wire.jsonrpc import error_object

log = logging.getLogger("mcp_runtime.adapter.stdio")

PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion"
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
GET_STREAM_RETRIES = 5
DRAIN_SECONDS = 10.0
_HEADER_SAFE = re.compile(r"[\x20-\x7e]*")


class StdioBridge:
    """Reads client messages from `stdin`, writes server messages to `stdout`; `run()` returns at EOF."""

    def __init__(self, sessions: SessionManager, *, stdin: IO[bytes] | None = None,
                 stdout: IO[bytes] | None = None) -> None:
        self.sessions = sessions
        self.url = sessions.settings.runtime_url
        self.stdin = stdin if stdin is not None else sys.stdin.buffer
        self.stdout = stdout if stdout is not None else sys.stdout.buffer
        self.mcp_session_id: str | None = None
        self.protocol_version: str | None = None
        self.http: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._get_stream: asyncio.Task[None] | None = None
        self._reported: set[str] = set()
        self._inflight: dict[str, asyncio.Task[Any]] = {}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        threading.Thread(target=_read_lines, args=(self.stdin, loop, queue), name="adapter-stdin",
                         daemon=True).start()
        refresher = asyncio.create_task(self.sessions.refresher()) if self.sessions.auto_refresh else None
        self.http = httpx.AsyncClient(timeout=upstream_timeout(), follow_redirects=False)
        try:
            while (line := await queue.get()) is not None:
                if line.strip():
                    self._spawn(self._handle_line(line))
            if self._tasks:  # stdin closed: let answers in flight reach stdout, within reason
                await asyncio.wait(set(self._tasks), timeout=DRAIN_SECONDS)
        finally:
            for task in [*self._tasks, *([self._get_stream] if self._get_stream else []),
                         *([refresher] if refresher else [])]:
                task.cancel()
            for task in [*self._tasks, *([self._get_stream] if self._get_stream else []),
                         *([refresher] if refresher else [])]:
                with contextlib.suppress(BaseException):
                    await task
            await self._end_mcp_session()
            await self.http.aclose()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # client -> runtime --------------------------------------------------------------------------
    async def _handle_line(self, line: bytes) -> None:
        try:
            payload = json.loads(line)
        except ValueError:
            self._write(error_object(None, jsonrpc.PARSE_ERROR, "not a JSON-RPC message (bad JSON)"))
            return
        messages = [m for m in (payload if isinstance(payload, list) else [payload]) if isinstance(m, dict)]
        ids = jsonrpc.request_ids(messages)
        task = asyncio.current_task()
        for request_id in ids:
            if task is not None:
                self._inflight[_key(request_id)] = task
        try:
            await self._post(line.strip(), messages, ids)
            self._cancel_requests(messages)
        except asyncio.CancelledError:
            if not ids:
                raise  # a cancelled request gets no answer (MCP cancellation); anything else is shutdown
        except AdapterError as exc:
            self.report(exc)
            self._fail_unanswered(ids, exc)
        except Exception:  # a bug must not kill the bridge: the client gets an answer, the log the trace
            log.exception("could not forward a message")
            self._fail_unanswered(ids, AdapterError("adapter_error", "the adapter failed to forward this request; "
                                                    "see its log on stderr"))
        finally:
            for request_id in ids:
                self._inflight.pop(_key(request_id), None)

    def _cancel_requests(self, messages: list[dict[str, Any]]) -> None:
        """After forwarding `notifications/cancelled`, stop waiting for the cancelled request's answer."""
        for message in messages:
            if message.get("method") == "notifications/cancelled" and isinstance(message.get("params"), dict):
                task = self._inflight.pop(_key(message["params"].get("requestId")), None)
                if task is not None:
                    task.cancel()

    async def _post(self, body: bytes, messages: list[dict[str, Any]], ids: list[Any]) -> None:
        first = messages[0] if len(messages) == 1 else {}
        initialize = first.get("method") == "initialize"
        assert self.http is not None
        for attempt in (1, 2):
            token = await self.sessions.token()
            headers = self._headers(token, first, initialize)
            try:
                request = self.http.build_request("POST", self.url, content=body, headers=headers)
                response = await self.http.send(request, stream=True)
            except httpx.TransportError as exc:
                raise self.sessions.unreachable(exc) from None
            try:
                if response.status_code >= 400:
                    data = await response.aread()
                    envelope = jsonrpc.gateway_envelope(data)
                    if envelope is not None and response.status_code == 401 and envelope[0] in EXPIRED_REASONS \
                            and self.sessions.auto_refresh and attempt == 1:
                        await self.sessions.renew(token)
                        continue
                    self._answer_failure(response.status_code, data, envelope, ids)
                    return
                if initialize and response.headers.get("mcp-session-id"):
                    self.mcp_session_id = response.headers["mcp-session-id"]
                await self._relay(response, initialize_id=first.get("id") if initialize else None)
            except httpx.TransportError as exc:
                raise self.sessions.unreachable(exc) from None
            finally:
                await response.aclose()
            if first.get("method") == "notifications/initialized" and self.mcp_session_id:
                self._start_get_stream()
            return

    def _headers(self, token: str, message: dict[str, Any], initialize: bool) -> dict[str, str]:
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json",
                   "accept": "application/json, text/event-stream", "accept-encoding": "identity"}
        raw_params = message.get("params")
        params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
        raw_meta = params.get("_meta")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        stamped = meta.get(PROTOCOL_VERSION_META)
        if isinstance(stamped, str):  # a 2026-era request: the version and method travel as headers too
            headers["mcp-protocol-version"] = stamped
            method = message.get("method")
            if isinstance(method, str):
                headers["mcp-method"] = method
                name = params.get(NAME_BEARING.get(method, ""))
                if isinstance(name, str):
                    headers["mcp-name"] = _header_value(name)
        elif self.protocol_version and not initialize:
            headers["mcp-protocol-version"] = self.protocol_version
        if self.mcp_session_id and not initialize:
            headers["mcp-session-id"] = self.mcp_session_id
        return headers

    def _answer_failure(self, status: int, data: bytes, envelope: tuple[str, str] | None, ids: list[Any]) -> None:
        if jsonrpc.is_jsonrpc_error(data):
            for message in jsonrpc.parse_messages(data):
                self._write(message if message.get("id") is not None or len(ids) != 1 else {**message, "id": ids[0]})
            return
        if envelope is not None:
            error = self.sessions.runtime_refusal(status, *envelope)
        elif status == 404 and self.mcp_session_id:
            self.mcp_session_id = None
            error = AdapterError("session_terminated", "the server ended the MCP session; reconnect the client")
        else:
            error = AdapterError("runtime_error", f"the runtime answered HTTP {status}")
        self.report(error)
        self._fail_unanswered(ids, error)

    def _fail_unanswered(self, ids: list[Any], error: AdapterError) -> None:
        """An error for each request still waiting (a stream that broke after some answers keeps those)."""
        for request_id in ids:
            if _key(request_id) in self._inflight:
                self._write(jsonrpc.error_response(request_id, error.reason, error.line(),
                                                   server=self.sessions.settings.server))

    async def _relay(self, response: httpx.Response, *, initialize_id: Any = None) -> None:
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("text/event-stream"):
            async for _event_id, event_data in iter_sse(response):
                self._emit(event_data, initialize_id)
        elif response.status_code != 202:
            body = await response.aread()
            if body.strip():
                self._emit(body.decode("utf-8", "replace"), initialize_id)

    def _emit(self, data: str, initialize_id: Any) -> None:
        try:
            payload = json.loads(data)
        except ValueError:
            log.warning("the runtime sent something that is not JSON; dropped")
            return
        for message in payload if isinstance(payload, list) else [payload]:
            if initialize_id is not None and isinstance(message, dict) and message.get("id") == initialize_id:
                version = (message.get("result") or {}).get("protocolVersion")
                if isinstance(version, str):
                    self.protocol_version = version
            self._write(message)

    # runtime -> client (the GET stream) ---------------------------------------------------------
    def _start_get_stream(self) -> None:
        if self._get_stream is None or self._get_stream.done():
            self._get_stream = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        """The server's own stream: notifications and requests it sends outside any POST."""
        assert self.http is not None
        last_event: str | None = None
        failures = 0
        while failures < GET_STREAM_RETRIES and self.mcp_session_id:
            try:
                token = await self.sessions.token()
                headers = {"authorization": f"Bearer {token}", "accept": "text/event-stream",
                           "accept-encoding": "identity", "mcp-session-id": self.mcp_session_id}
                if self.protocol_version:
                    headers["mcp-protocol-version"] = self.protocol_version
                if last_event:
                    headers["last-event-id"] = last_event
                async with self.http.stream("GET", self.url, headers=headers) as response:
                    if response.status_code == 405:
                        return  # the server has no stream of its own
                    if response.status_code >= 400:
                        envelope = jsonrpc.gateway_envelope(await response.aread())
                        if response.status_code == 401 and envelope and envelope[0] in EXPIRED_REASONS \
                                and self.sessions.auto_refresh:
                            await self.sessions.renew(token)
                        else:
                            log.warning("the server stream answered HTTP %s", response.status_code)
                        failures += 1
                        await asyncio.sleep(min(2 ** failures * 0.25, 5))
                        continue
                    failures = 0
                    async for event_id, data in iter_sse(response):
                        last_event = event_id or last_event
                        self._emit(data, None)
            except (httpx.TransportError, AdapterError) as exc:
                failures += 1
                log.info("server stream interrupted (%s); reconnecting", type(exc).__name__)
                await asyncio.sleep(min(2 ** failures * 0.25, 5))

    async def _end_mcp_session(self) -> None:
        """Stdin closed: tell the server the session is over (best effort, like the SDK's clients)."""
        if not self.mcp_session_id or self.http is None or self.sessions.current is None:
            return
        headers = {"authorization": f"Bearer {self.sessions.current.token}",
                   "mcp-session-id": self.mcp_session_id}
        if self.protocol_version:
            headers["mcp-protocol-version"] = self.protocol_version
        with contextlib.suppress(httpx.HTTPError):
            await self.http.request("DELETE", self.url, headers=headers, timeout=5)

    # output -------------------------------------------------------------------------------------
    def _write(self, message: Any) -> None:
        if isinstance(message, dict) and "method" not in message and ("result" in message or "error" in message):
            self._inflight.pop(_key(message.get("id")), None)  # answered
        self.stdout.write(jsonrpc.dumps(message) + b"\n")
        self.stdout.flush()

    def report(self, error: AdapterError) -> None:
        """One stderr line per distinct failure (stdout is the protocol)."""
        line = error.line()
        if line not in self._reported:
            self._reported.add(line)
            print(f"mcp-runtime adapter: error: {line}", file=sys.stderr, flush=True)


async def iter_sse(response: httpx.Response) -> AsyncIterator[tuple[str | None, str]]:
    """`(id, data)` per Server-Sent Event, as each one completes (never the whole stream at once)."""
    data: list[str] = []
    event_id: str | None = None
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event_id, "\n".join(data)
            data, event_id = [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "id":
            event_id = value
    if data:
        yield event_id, "\n".join(data)


def _read_lines(stream: IO[bytes], loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes | None]) -> None:
    """Blocking stdin reads on a thread; each line, then None at EOF, handed to the event loop."""
    try:
        for line in iter(stream.readline, b""):
            loop.call_soon_threadsafe(queue.put_nowait, line)
    except (OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, None)


def _key(request_id: Any) -> str:
    return json.dumps(request_id)


def _header_value(value: str) -> str:
    """Printable ASCII as is; anything else in the `=?base64?...?=` form the MCP HTTP transport defines."""
    if _HEADER_SAFE.fullmatch(value) and value == value.strip():
        return value
    return f"=?base64?{base64.b64encode(value.encode()).decode('ascii')}?="
