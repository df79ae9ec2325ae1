"""The gateway's connections send the writes of one loop turn together, in order, and lose none."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import uvicorn

from mcp_runtime.gateway.coalesce import CoalescingTransport
from mcp_runtime.gateway.server import uvicorn_config


class RecordingTransport:
    """Stands in for a socket transport: records each write the kernel would get."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def test_writes_of_one_turn_become_one_write_in_order() -> None:
    async def run() -> RecordingTransport:
        raw = RecordingTransport()
        transport = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"")
        transport.write(b"body")
        assert raw.writes == [] and transport.get_write_buffer_size() == 23
        await asyncio.sleep(0)
        transport.write(b"next")
        await asyncio.sleep(0)
        return raw

    assert asyncio.run(run()).writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next"]


def test_close_sends_what_is_held_first() -> None:
    async def run() -> RecordingTransport:
        raw = RecordingTransport()
        transport = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
        transport.write(b"last answer")
        transport.close()
        await asyncio.sleep(0)
        return raw

    raw = asyncio.run(run())
    assert raw.writes == [b"last answer"] and raw.closed


def test_a_real_server_answers_whole_over_keep_alive_and_streams() -> None:
    """uvicorn with the coalescing protocol: small answers, a streamed one, several on one connection."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        if scope["path"] == "/stream":
            for part in (b"one ", b"two ", b"three"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
                await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"done", "more_body": False})

    async def run() -> list[str]:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = uvicorn_config(app, "127.0.0.1", port, lifespan="off")  # type: ignore[arg-type]
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                texts = [(await client.get("/small")).text for _ in range(3)]
                async with client.stream("GET", "/stream") as response:
                    texts.append("".join([part async for part in response.aiter_text()]))
            return texts
        finally:
            server.should_exit = True
            await task

    assert asyncio.run(run()) == ["done", "done", "done", "one two threedone"]
