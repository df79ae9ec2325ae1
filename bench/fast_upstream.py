"""A minimal fast MCP upstream for benchmarks: raw ASGI, answers any JSON-RPC request at once.

`python bench/fast_upstream.py [PORT]` (or env PORT) serves it with uvicorn (uvloop + httptools) on 127.0.0.1:PORT.
It does no MCP session handling: the point is an upstream so cheap that the gateway's own cost shows.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

_RESULT = {"content": [{"type": "text", "text": "ok"}], "isError": False}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
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
