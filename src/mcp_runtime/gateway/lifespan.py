"""The ASGI lifespan protocol, once: start on startup, stop on shutdown, report a failed start."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.types import Receive, Send

log = logging.getLogger(__name__)


async def run_lifespan(receive: Receive, send: Send, start: Callable[[], Awaitable[None]],
                       stop: Callable[[], Awaitable[None]], *, what: str) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await start()
            except Exception as exc:
                log.exception("%s failed to start", what)
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await stop()
            await send({"type": "lifespan.shutdown.complete"})
            return
