"""A minimal fast MCP upstream for benchmarks: raw ASGI, answers each JSON-RPC request at once.

`python bench/fast_upstream.py [PORT]` (or env PORT) serves it with uvicorn (uvloop + httptools) on 127.0.0.1:PORT.
It is just enough of an MCP server for a gateway or an SDK client to talk to (`initialize`, `ping`,
`tools/list` with one `echo` tool, `tools/call` answered with the text it was given, notifications
taken with 202) and keeps no session: the point is an upstream so cheap that the gateway's own cost shows.
With env `FAST_SSE=1` it answers the way the Python SDK server does by default: a `text/event-stream`
response (chunked, no length) with one `message` event, then the end of the stream, in three writes.
A GET opens a server-to-client SSE stream (see `stream`), for the load bench's open streams
(`bench/gateway_load.py`). `python bench/fast_upstream.py --stdio` gives the same answers over stdio (one
JSON-RPC message a line), the server the stdio bridge scenarios put behind `mcp-runtime bridge stdio`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

_SSE = os.environ.get("FAST_SSE", "").strip().lower() in {"1", "true", "yes", "on"}
_TOOLS = {"tools": [{"name": "echo", "description": "Return the given text.",
                     "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}},
                                     "required": ["text"]}}]}
_SERVER_INFO = {"name": "fast-upstream", "version": "1"}


def _result(method: Any, params: Any) -> dict[str, Any]:
    if method == "initialize":
        version = params.get("protocolVersion", "2025-06-18") if isinstance(params, dict) else "2025-06-18"
        return {"protocolVersion": version, "capabilities": {"tools": {}}, "serverInfo": _SERVER_INFO}
    if method == "tools/list":
        return _TOOLS
    if method == "tools/call":
        arguments = params.get("arguments") if isinstance(params, dict) else None
        text = arguments.get("text", "ok") if isinstance(arguments, dict) else "ok"
        return {"content": [{"type": "text", "text": str(text)}], "isError": False}
    return {}


async def _plain(send: Any, status: int) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


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
    if scope["method"] != "POST":
        await _plain(send, 405)  # no session to delete
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
    if not isinstance(request, dict) or "id" not in request:
        await _plain(send, 202)  # a notification (or a response): nothing to answer
        return
    result = _result(request.get("method"), request.get("params"))
    out = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()
    if _SSE:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        await send({"type": "http.response.body", "body": b"event: message\ndata: " + out + b"\n\n",
                    "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})


def stdio() -> None:
    """Answer each request line on stdin with one line on stdout; notifications and answers get none."""
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        try:
            request = json.loads(line)
        except ValueError:
            continue
        if isinstance(request, dict) and "id" in request and "method" in request:
            result = _result(request["method"], request.get("params"))
            out.write(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode() + b"\n")
            out.flush()


if __name__ == "__main__" and sys.argv[1:] == ["--stdio"]:
    stdio()
elif __name__ == "__main__":
    import uvicorn

    port = int(sys.argv[1] if len(sys.argv) > 1 else os.environ["PORT"])
    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False, lifespan="off")
