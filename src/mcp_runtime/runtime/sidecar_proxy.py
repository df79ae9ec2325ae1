"""A plain reverse proxy from `up`'s public address to the pods' gateway sidecars.

With the podman runtime every pod governs its own traffic (its `mcp-gateway` sidecar verifies the session
token and applies the policy), so `up` must not put its in-process gateway in front: that one strips the
caller's credentials before forwarding. This proxy passes the request through unchanged (credentials
included; hop-by-hop headers dropped), streams the body both ways (SSE included), and maps each
server's route to its sidecar. A request for a route's OAuth protected resource metadata
(`/.well-known/oauth-protected-resource<route>`, RFC 9728) goes to the same sidecar, which serves it.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import httpx
from starlette.types import Receive, Scope, Send

from mcp_runtime.wire import BodyTooLarge, ClientDisconnected, dumps, read_body
from mcp_runtime.wire.oauth import metadata_route

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate",
                        b"proxy-authorization", b"te", b"trailer", b"transfer-encoding", b"upgrade", b"host",
                        b"content-length"})
MAX_BODY = 1024 * 1024


class SidecarProxy:
    """ASGI app: `path` -> the sidecar that serves it. `set_route` / `remove_route` as pods come and go."""

    def __init__(self) -> None:
        self._routes: dict[str, tuple[str, str | None]] = {}
        self._lock = threading.Lock()
        self._client: httpx.AsyncClient | None = None

    def set_route(self, path: str, upstream_url: str, sidecar_origin: str | None = None) -> None:
        """`path` -> `upstream_url`; `sidecar_origin` (`http://127.0.0.1:PORT`) also serves the route's
        resource metadata."""
        with self._lock:
            self._routes[path.rstrip("/") or "/"] = (upstream_url, sidecar_origin)

    def remove_route(self, path: str) -> None:
        with self._lock:
            self._routes.pop(path.rstrip("/") or "/", None)

    def handles(self, path: str) -> bool:
        return self._target(path) is not None

    def _target(self, path: str) -> str | None:
        """Where a request for `path` goes: a route's sidecar, or the sidecar of the route whose
        metadata it asks for (the route, or the route without its `/mcp`)."""
        with self._lock:
            route = self._routes.get(path.rstrip("/") or "/")
            if route is not None:
                return route[0]
            rest = metadata_route(path)
            if not rest:
                return None
            for key in (rest, rest + "/mcp"):
                found = self._routes.get(key)
                if found is not None and found[1] is not None:
                    return f"{found[1]}{path}"
            return None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None), trust_env=False)
        return self._client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        upstream = self._target(scope["path"])
        if upstream is None:
            await _plain(send, 404, b'{"error":"not_found","message":"no server at this path"}')
            return
        try:
            body = await read_body(receive, MAX_BODY)
        except BodyTooLarge as exc:
            await _plain(send, exc.status, dumps(exc.envelope()), list(exc.headers))
            return
        except ClientDisconnected:
            return
        query = scope.get("query_string", b"")
        url = upstream + (f"?{query.decode('latin-1')}" if query else "")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        client = self._http()
        request = client.build_request(scope["method"], url, headers=headers, content=body)
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            await _plain(send, 502, f'{{"error":"bad_gateway","message":"the server\'s pod does not answer '
                                    f'({type(exc).__name__})"}}'.encode())
            return
        try:
            out = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            with contextlib.suppress(Exception):
                await response.aclose()


async def _plain(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                          *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
