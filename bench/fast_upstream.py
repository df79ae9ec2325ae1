"""A minimal fast MCP upstream for benchmarks: raw ASGI, answers any JSON-RPC request at once.

`python bench/fast_upstream.py [PORT]` (or env PORT) serves it with uvicorn (uvloop + httptools) on 127.0.0.1:PORT.
It does no MCP session handling: the point is an upstream so cheap that the gateway's own cost shows.
A GET opens a server-to-client SSE stream (see `stream`), for the load bench's open streams.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

_RESULT = {"content": [{"type": "text", "text": "ok"}], "isError": False}


_TICK = (b"event: message\ndata: " + json.dumps({"jsonrpc": "2.0", "method": "notifications/message",
                                                  "params": {"level": "info", "data": "tick"}}).encode() + b"\n\n")
_FLOOD = b"data: " + b"x" * 65536 + b"\n\n"


async def stream(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """GET: the server's SSE stream. A tick at once, then one every `?interval=` seconds (default 5);
    with `X-Bench-Firehose: 1`, 64 KiB events as fast as the reader takes them (to test back-pressure)."""
    import asyncio
    from urllib.parse import parse_qs

    query = parse_qs(scope.get("query_string", b"").decode())
    interval = float(query.get("interval", ["5"])[0])
    firehose = (b"x-bench-firehose", b"1") in scope["headers"]
    gone = asyncio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch())
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
    try:
        await send({"type": "http.response.body", "body": _TICK, "more_body": True})
        while not gone.is_set():
            if firehose:
                await send({"type": "http.response.body", "body": _FLOOD, "more_body": True})
                await asyncio.sleep(0)
            else:
                try:
                    await asyncio.wait_for(gone.wait(), interval)
                except TimeoutError:
                    await send({"type": "http.response.body", "body": _TICK, "more_body": True})
    finally:
        watcher.cancel()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        await stream(scope, receive, send)
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    try:
        request = json.loads(body) if body else {}
    except ValueError:
        request = {}
    msg_id = request.get("id") if isinstance(request, dict) else None
    if isinstance(request, dict) and request.get("method") == "tools/list":
        result: dict[str, Any] = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
    else:
        result = _RESULT
    out = json.dumps({"jsonrpc": "2.0", "id": msg_id, "result": result}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})


if __name__ == "__main__":
    import uvicorn

    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ["PORT"])
    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False, lifespan="off")
