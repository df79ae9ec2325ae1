"""The body reader the gateway and the adapter proxy share: whole bodies, a clear 413, nothing past the limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest

from mcp_runtime.wire import BodyTooLarge, ClientDisconnected, read_body


class Client:
    """Plays the ASGI `receive` side: the given messages in order, and counts how many were taken."""

    def __init__(self, messages: Iterable[dict[str, Any]]) -> None:
        self.messages = list(messages)
        self.taken = 0

    async def __call__(self) -> dict[str, Any]:
        self.taken += 1
        return self.messages[self.taken - 1]


def chunks(*parts: bytes) -> list[dict[str, Any]]:
    return [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]


def test_a_body_in_pieces_comes_back_whole() -> None:
    client = Client(chunks(b'{"jsonrpc":', b'"2.0",', b'"id":1}'))
    assert asyncio.run(read_body(client, 100)) == b'{"jsonrpc":"2.0","id":1}'


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    client = Client(chunks(b"x" * 10))
    with pytest.raises(BodyTooLarge) as refused:
        asyncio.run(read_body(client, 5, b"10"))
    assert client.taken == 0
    assert refused.value.status == 413
    assert refused.value.envelope() == {
        "error": "request_too_large", "message": "the request body is larger than 5 bytes; send smaller requests"}
    assert (b"connection", b"close") in refused.value.headers


def test_a_chunked_body_is_refused_once_it_passes_the_limit() -> None:
    client = Client(chunks(b"aaaa", b"bbbb", b"cccc", b"dddd"))
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_body(client, 6))
    assert client.taken == 2  # the rest is never read


def test_a_client_that_leaves_mid_body_is_reported() -> None:
    client = Client([*chunks(b"aa", b"bb")[:1], {"type": "http.disconnect"}])
    with pytest.raises(ClientDisconnected):
        asyncio.run(read_body(client, 100))


def test_a_malformed_declared_length_is_left_to_the_server_and_the_real_size_counts() -> None:
    assert asyncio.run(read_body(Client(chunks(b"abc")), 5, b"nonsense")) == b"abc"
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_body(Client(chunks(b"abcdef")), 5, b"nonsense"))
