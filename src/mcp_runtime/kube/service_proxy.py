"""A local HTTP endpoint that forwards to a Service through the API server's service proxy.

`kubectl port-forward` needs SPDY/WebSocket streams to a pod; the service proxy
(`/api/v1/namespaces/<ns>/services/<name>:<port>/proxy/`) is plain HTTP through the API server and
enough for the dashboard, the platform API and the registry.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_runtime.kube.connection import KubeConnection

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-authorization", "host",
        "authorization", "content-length"}


def proxy_app(connection: KubeConnection, namespace: str, service: str, port: int) -> Starlette:
    base = f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy"
    client = connection.async_client(read_timeout=300)

    async def forward(request: Request) -> Response:
        path = request.path_params.get("path", "")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        headers.update(connection.headers())
        upstream = await client.request(request.method, f"{base}/{path}", params=request.query_params,
                                        content=await request.body(), headers=headers)
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP | {"content-encoding"}}
        return Response(upstream.content, status_code=upstream.status_code, headers=out)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await client.aclose()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)], lifespan=lifespan)


def service_proxy_server(namespace: str, service: str, port: int, local_port: int = 0,
                         connection: KubeConnection | None = None) -> tuple[uvicorn.Server, str]:
    """The uvicorn server (not started) and its local URL."""
    connection = connection or KubeConnection.from_environment()
    if not local_port:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            local_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(proxy_app(connection, namespace, service, port), host="127.0.0.1",
                                           port=local_port, log_level="warning"))
    return server, f"http://127.0.0.1:{local_port}"


async def serve_service_proxy(namespace: str, service: str, port: int, local_port: int = 0,
                              on_ready: Callable[[str], None] | None = None,
                              connection: KubeConnection | None = None) -> None:
    """Serve until interrupted."""
    server, url = service_proxy_server(namespace, service, port, local_port, connection)
    if on_ready:
        on_ready(url)
    await server.serve()
