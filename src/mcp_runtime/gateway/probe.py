"""The gateway lists a server's tools itself (with the official MCP SDK client), so tool drift is found
when a policy with pins loads, before any client asks.

Only HTTP upstreams are probed (the SDK's Streamable HTTP client with the route's upstream credential:
its bearer token, or a remote server's credential header and CA bundle);
an answer is bounded in pages and time. The tools come back in their wire form (camelCase, only the
fields the server sent), which is what the relay sees in a client's `tools/list` answer, so both give
the same digest.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import anyio
import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp_types import PaginatedRequestParams

log = logging.getLogger("mcp_runtime.gateway.pinning")

PROBE_TIMEOUT = 10.0
MAX_PAGES = 100


async def list_server_tools(url: str, *, credential: str | None = None, header: tuple[str, str] | None = None,
                            verify: ssl.SSLContext | bool = True,
                            timeout: float = PROBE_TIMEOUT) -> list[dict[str, Any]]:
    """Every tool `url` lists (following cursors), as wire JSON objects. Raises on any failure.

    `credential` is sent as a bearer token, `header` (name, value) as is (a remote server's credential);
    `verify` is the TLS context of a private CA."""
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    if header is not None:
        headers[header[0]] = header[1]
    tools: list[dict[str, Any]] = []
    with anyio.fail_after(timeout):
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(timeout), headers=headers or None,
                                      verify=verify) as http, \
                streamable_http_client(url, http_client=http) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            cursor: str | None = None
            for _page in range(MAX_PAGES):
                params = PaginatedRequestParams(cursor=cursor) if cursor is not None else None
                result = await session.list_tools(params=params)
                tools += [t.model_dump(by_alias=True, mode="json", exclude_unset=True) for t in result.tools]
                cursor = result.next_cursor
                if not cursor:
                    return tools
    raise RuntimeError(f"{url} lists tools in more than {MAX_PAGES} pages")
