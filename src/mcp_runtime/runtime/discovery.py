"""Talk to a running MCP server as a client: list its tools, or check that it answers.

Used by `server init --from-server`, `server validate --from-server` and the process runtime's
readiness probe. Everything goes through the official SDK's Streamable HTTP client, so what we
discover is exactly what an agent would see. Failures come out as one `DiscoveryError` whose
message names the URL, what went wrong and what to do, never as an SDK ExceptionGroup.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import PARSE_ERROR, InitializeResult, PaginatedRequestParams

from mcp_runtime.resources.server import DEFAULT_MCP_PATH

__all__ = [
    "DiscoveredTool",
    "DiscoveryError",
    "ServerInfo",
    "discover_tools",
    "discover_tools_sync",
    "normalize_server_url",
    "probe_initialize",
    "probe_initialize_sync",
]

MAX_TOOL_PAGES = 1000  # a server that keeps handing out cursors is broken, not big

T = TypeVar("T")

# The SDK client logs a server's bad answers (with tracebacks) before we turn them into a
# DiscoveryError. Without this, a process that never configured logging prints them on stderr
# through logging's last-resort handler; with it, they still reach any handler the app installs.
logging.getLogger("mcp.client").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class DiscoveredTool:
    """One tool as the server lists it (annotations keep the wire's camelCase keys)."""

    name: str
    description: str
    input_schema: dict[str, Any]
    annotations: dict[str, Any] = field(default_factory=dict)
    definition: dict[str, Any] = field(default_factory=dict)
    """The whole definition in its wire form (only the fields the server sent): what a pin covers."""


@dataclass(frozen=True)
class ServerInfo:
    """What a server says about itself in its initialize answer."""

    name: str
    version: str
    protocol_version: str


class DiscoveryError(Exception):
    """Talking to an MCP server failed; `str(err)` is one sentence a person can act on.

    `reason` is one of: invalid_url, connection_refused, host_not_found, connection_failed, tls_untrusted,
    http_status, not_mcp, timeout, protocol_error. `hint` is the "what to do" part on its own,
    for callers (the CLI) that print it separately from `message`.
    """

    def __init__(self, url: str, reason: str, message: str, hint: str, *, status_code: int | None = None):
        super().__init__(f"{message}; {hint}" if hint else message)
        self.url = url
        self.reason = reason
        self.message = message
        self.hint = hint
        self.status_code = status_code


def normalize_server_url(url: str) -> str:
    """Return the MCP endpoint for `url`: `http://host:port` and `http://host:port/` get `/mcp`.

    Raises ValueError (saying what to pass instead) for anything that is not an http(s) URL.
    """
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        problem, hint = _url_problem(url)
        raise ValueError(f"{problem}; {hint}")
    path = parts.path if parts.path not in ("", "/") else DEFAULT_MCP_PATH
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, parts.query, ""))


def _url_problem(url: str) -> tuple[str, str]:
    text = url.strip()
    suggestion = f"http://{text}" if text and "://" not in text else "http://localhost:8088/mcp"
    return f"{url!r} is not an http(s) URL", f"pass the server's address, for example {suggestion}"


Verify = ssl.SSLContext | bool
"""How an https server's certificate is checked: True (the system CAs) or a context (a private CA)."""


async def discover_tools(
    url: str, *, timeout: float = 10, headers: dict[str, str] | None = None, verify: Verify = True
) -> list[DiscoveredTool]:
    """Initialize a session with the server at `url` and list all its tools (following cursors)."""

    async def list_all(session: ClientSession, _: InitializeResult) -> list[DiscoveredTool]:
        tools: list[DiscoveredTool] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _page in range(MAX_TOOL_PAGES):
            params = PaginatedRequestParams(cursor=cursor) if cursor is not None else None
            result = await session.list_tools(params=params)
            tools.extend(
                DiscoveredTool(
                    name=tool.name,
                    description=tool.description or "",
                    input_schema=dict(tool.input_schema),
                    annotations=(
                        tool.annotations.model_dump(by_alias=True, mode="json", exclude_none=True)
                        if tool.annotations is not None
                        else {}
                    ),
                    definition=tool.model_dump(by_alias=True, mode="json", exclude_unset=True),
                )
                for tool in result.tools
            )
            cursor = result.next_cursor
            if not cursor:
                return tools
            if cursor in seen:
                break
            seen.add(cursor)
        raise _PaginationLoop()

    return await _with_session(url, timeout, headers, list_all, verify)


async def probe_initialize(
    url: str, *, timeout: float = 5, headers: dict[str, str] | None = None, verify: Verify = True
) -> ServerInfo:
    """Check that `url` answers the MCP handshake; the readiness probe of a server process."""

    async def describe(_: ClientSession, result: InitializeResult) -> ServerInfo:
        return ServerInfo(
            name=result.server_info.name,
            version=result.server_info.version,
            protocol_version=str(result.protocol_version),
        )

    return await _with_session(url, timeout, headers, describe, verify)


def discover_tools_sync(
    url: str, timeout: float = 10, headers: dict[str, str] | None = None, verify: Verify = True
) -> list[DiscoveredTool]:
    """`discover_tools` for synchronous callers (the CLI); not for use inside a running event loop."""

    async def run() -> list[DiscoveredTool]:
        return await discover_tools(url, timeout=timeout, headers=headers, verify=verify)

    return anyio.run(run)


def probe_initialize_sync(url: str, timeout: float = 5, headers: dict[str, str] | None = None) -> ServerInfo:
    """`probe_initialize` for synchronous callers."""

    async def run() -> ServerInfo:
        return await probe_initialize(url, timeout=timeout, headers=headers)

    return anyio.run(run)


# --- the session and its failure modes -------------------------------------------------------


class _PaginationLoop(Exception):
    """The server handed out the same tools/list cursor twice (or pages without end)."""


@dataclass
class _SeenResponse:
    status_code: int
    reason_phrase: str
    content_type: str
    location: str


class _ResponseRecorder:
    """Remembers the last answer to a POST: the SDK turns HTTP failures into bare JSON-RPC errors."""

    def __init__(self) -> None:
        self.last_post: _SeenResponse | None = None
        self.stage = "the MCP handshake"  # what we were doing, for the error message

    async def __call__(self, response: httpx2.Response) -> None:
        if response.request.method == "POST":
            self.last_post = _SeenResponse(
                status_code=response.status_code,
                reason_phrase=response.reason_phrase,
                content_type=response.headers.get("content-type", "").split(";")[0].strip().lower(),
                location=response.headers.get("location", ""),
            )


async def _with_session(
    url: str,
    timeout: float,
    headers: dict[str, str] | None,
    action: Callable[[ClientSession, InitializeResult], Awaitable[T]],
    verify: Verify = True,
) -> T:
    try:
        target = normalize_server_url(url)
    except ValueError:
        raise DiscoveryError(url, "invalid_url", *_url_problem(url)) from None
    recorder = _ResponseRecorder()
    try:
        with anyio.fail_after(timeout):
            async with (
                httpx2.AsyncClient(
                    timeout=httpx2.Timeout(timeout), headers=headers, event_hooks={"response": [recorder]},
                    verify=verify, follow_redirects=False,
                ) as client,
                streamable_http_client(target, http_client=client) as (read, write),
                ClientSession(read, write, read_timeout_seconds=timeout) as session,
            ):
                result = await session.initialize()
                recorder.stage = "the MCP request after the handshake"
                return await action(session, result)
    except Exception as exc:  # includes the SDK's ExceptionGroups, unwrapped below
        raise _explain(target, timeout, exc, recorder) from None


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The real errors inside (possibly nested) ExceptionGroups."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it was raised from, to find the OSError under an httpx error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _pick(exc: BaseException) -> BaseException:
    """The leaf that explains the failure best: transport errors beat the JSON-RPC echo of them."""
    leaves = list(_leaves(exc))
    for kind in (httpx2.TransportError, TimeoutError, MCPError, _PaginationLoop):
        for leaf in leaves:
            if isinstance(leaf, kind):
                return leaf
    return leaves[0] if leaves else exc


def _explain(url: str, timeout: float, exc: BaseException, recorder: _ResponseRecorder) -> DiscoveryError:
    leaf, seen, stage = _pick(exc), recorder.last_post, recorder.stage
    if isinstance(leaf, TimeoutError | httpx2.TimeoutException):
        return DiscoveryError(
            url, "timeout", f"{url} did not answer {stage} within {timeout:g}s",
            "check that the server is healthy and the URL points at its MCP endpoint, or raise the timeout",
        )
    if isinstance(leaf, httpx2.ConnectError):
        for cause in _causes(leaf):
            if isinstance(cause, ssl.SSLCertVerificationError):
                return DiscoveryError(
                    url, "tls_untrusted", f"the TLS certificate of {url} is not trusted ({cause.verify_message})",
                    "for a private CA pass --ca-file with the CA's PEM file",
                )
        return _explain_connect(url, leaf)
    if isinstance(leaf, httpx2.TransportError):
        return DiscoveryError(
            url, "connection_failed", f"the connection to {url} failed ({leaf or type(leaf).__name__})",
            "check that an MCP server (Streamable HTTP) is listening there",
        )
    if isinstance(leaf, _PaginationLoop):
        return DiscoveryError(
            url, "protocol_error", f"{url} kept returning tools/list pages without end",
            "fix the server's pagination cursors",
        )
    if seen is not None and not 200 <= seen.status_code < 300:
        return _explain_status(url, seen, stage)
    if seen is not None and seen.content_type not in ("application/json", "text/event-stream"):
        answered = seen.content_type or "no content type"
        return DiscoveryError(
            url, "not_mcp", f"{url} is not an MCP server (it answered an MCP request with {answered})",
            "pass the server's MCP endpoint, usually http://host:port/mcp",
        )
    if isinstance(leaf, MCPError) and leaf.code == PARSE_ERROR:
        return DiscoveryError(
            url, "not_mcp", f"{url} is not an MCP server (its answer is not JSON-RPC)",
            "pass the server's MCP endpoint, usually http://host:port/mcp",
        )
    detail = leaf.message if isinstance(leaf, MCPError) else f"{type(leaf).__name__}: {leaf}"
    return DiscoveryError(
        url, "protocol_error", f"{stage} with {url} failed ({detail})",
        "check that the server speaks MCP over Streamable HTTP at that URL",
    )


def _explain_connect(url: str, leaf: BaseException) -> DiscoveryError:
    for cause in _causes(leaf):
        if isinstance(cause, socket.gaierror):
            host = urlsplit(url).hostname
            return DiscoveryError(
                url, "host_not_found", f"cannot reach {url}: host name {host!r} not found",
                "check the host name in the URL",
            )
    refused = any(
        isinstance(cause, ConnectionRefusedError)
        or (isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED)
        for cause in _causes(leaf)
    )
    what = "connection refused" if refused else f"could not connect: {leaf}"
    return DiscoveryError(
        url, "connection_refused", f"cannot reach {url} ({what})",
        "start the server, or check the host and port",
    )


def _explain_status(url: str, seen: _SeenResponse, stage: str) -> DiscoveryError:
    status = f"HTTP {seen.status_code} {seen.reason_phrase}".strip()
    if 300 <= seen.status_code < 400:
        hint = f"pass the address it redirects to ({seen.location or 'see the Location header'})"
    elif seen.status_code in (401, 403):
        hint = "the server wants credentials; pass the headers it needs"
    elif seen.status_code in (404, 405, 501):
        hint = "check the path: MCP servers usually serve /mcp (pass the full endpoint URL)"
    elif seen.status_code in (400, 421):
        hint = "check the URL (a server bound to 127.0.0.1 rejects other Host names) and that it speaks MCP"
    else:
        hint = "check the server's logs"
    message = f"{url} answered {stage} with {status}"
    return DiscoveryError(url, "http_status", message, hint, status_code=seen.status_code)
