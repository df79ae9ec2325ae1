"""Serving a Gateway: uvicorn with uvloop and httptools (the fastest combination we measured)."""

from __future__ import annotations

import importlib.util
from typing import Any

import uvicorn

from mcp_runtime.gateway.app import Gateway
from mcp_runtime.gateway.coalesce import CoalescingHttpToolsProtocol


def _have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def uvicorn_config(gateway: Gateway, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """A uvicorn config tuned for the gateway: uvloop, httptools with one write per answer
    (`coalesce.py`), no access log, no Server header."""
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "loop": "uvloop" if _have("uvloop") else "asyncio",
        "http": CoalescingHttpToolsProtocol,
        "lifespan": "on",
        "access_log": False,
        "server_header": False,
        "date_header": False,
        "proxy_headers": False,  # identity comes from tokens; the client address is not used
        "log_level": "warning",
        "timeout_graceful_shutdown": 5,
    }
    options.update(overrides)
    return uvicorn.Config(gateway, **options)


def serve(gateway: Gateway, host: str, port: int, **overrides: Any) -> None:
    """Run until SIGINT/SIGTERM (the sidecar entrypoint)."""
    uvicorn.Server(uvicorn_config(gateway, host, port, **overrides)).run()
