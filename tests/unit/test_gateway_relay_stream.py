"""How the relay writes an upstream's SSE answer to the client: what arrives when, and in how many writes.

A client must see progress as it happens, its answer in full, and an error event when the upstream
breaks off; the relay also keeps the number of writes per answer down (each one is a system call).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from mcp_runtime.gateway.relay import stream
from mcp_runtime.gateway.upstream import UpstreamError

PROGRESS = b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{}}\n\n'
ANSWER = b'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[]}}\n\n'


class ScriptedResponse:
    """An upstream answer whose chunks the test releases one at a time (or all at once: `complete`)."""

    def __init__(self, chunks: list[bytes], *, complete: bool = False, fail_at_end: bool = False) -> None:
        self.status = 200
        self.headers = [(b"content-type", b"text/event-stream")]
        self._chunks = chunks
        self._complete = complete
        self._fail_at_end = fail_at_end
        self.release = asyncio.Queue[None]()
        self.aborted = False

    @property
    def complete(self) -> bool:
        return self._complete

    def header(self, name: bytes) -> bytes | None:
        return dict(self.headers).get(name)

    async def chunks(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            if not self._complete:
                await self.release.get()
            yield chunk
        if self._fail_at_end:
            raise UpstreamError("upstream closed the connection mid-response")

    async def read(self, limit: int | None = None) -> bytes:
        return b"".join(self._chunks)

    def abort(self, reason: str = "the client went away") -> None:
        self.aborted = True


class Client:
    """The ASGI `send` and `receive` a client connection gives the relay, recording each write."""

    def __init__(self) -> None:
        self.writes: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.writes.append(message)

    async def receive(self) -> dict[str, Any]:
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.writes if m["type"] == "http.response.body")


def test_whole_answer_goes_out_in_one_piece_with_its_length() -> None:
    async def run() -> Client:
        client = Client()
        response = ScriptedResponse([PROGRESS, ANSWER], complete=True)
        sent = await stream(response, client.send, client.receive, 200, list(response.headers), None, b"",
                            one_answer=True)
        assert sent == len(PROGRESS + ANSWER)
        return client

    client = asyncio.run(run())
    start, body = client.writes
    assert (b"content-length", str(len(PROGRESS + ANSWER)).encode()) in start["headers"]
    assert body["body"] == PROGRESS + ANSWER and not body.get("more_body", False)


def test_progress_is_sent_at_once_and_the_answer_goes_with_the_end_of_the_stream() -> None:
    async def run() -> Client:
        client = Client()
        response = ScriptedResponse([PROGRESS, ANSWER])
        task = asyncio.create_task(stream(response, client.send, client.receive, 200, list(response.headers),
                                          None, b"", one_answer=True))
        response.release.put_nowait(None)
        for _ in range(20):
            await asyncio.sleep(0)
        # The progress event reached the client before the upstream sent anything more.
        assert client.body() == PROGRESS
        response.release.put_nowait(None)
        await task
        return client

    client = asyncio.run(run())
    last = client.writes[-1]
    assert last["body"] == ANSWER and last["more_body"] is False
    assert client.body() == PROGRESS + ANSWER


def test_without_one_answer_every_chunk_is_sent_as_it_arrives() -> None:
    async def run() -> Client:
        client = Client()
        response = ScriptedResponse([ANSWER, ANSWER.replace(b'"id":1', b'"id":2')])
        task = asyncio.create_task(stream(response, client.send, client.receive, 200, list(response.headers),
                                          None, b""))
        response.release.put_nowait(None)
        for _ in range(20):
            await asyncio.sleep(0)
        assert client.body() == ANSWER  # a batch's first answer does not wait for the second
        response.release.put_nowait(None)
        await task
        return client

    assert asyncio.run(run()).body().count(b'"result"') == 2


def test_a_held_answer_still_reaches_the_client_when_the_upstream_breaks_off() -> None:
    failures: list[bool] = []

    def on_failure(exc: UpstreamError, answered: bool) -> bytes:
        failures.append(answered)
        return b"" if answered else b"event: message\ndata: {\"error\":{}}\n\n"

    async def run() -> Client:
        client = Client()
        response = ScriptedResponse([ANSWER], fail_at_end=True)
        task = asyncio.create_task(stream(response, client.send, client.receive, 200, list(response.headers),
                                          None, b"", on_failure, one_answer=True))
        response.release.put_nowait(None)
        await task
        return client

    client = asyncio.run(run())
    assert client.body() == ANSWER
    assert failures == [True]  # the relay knows the answer passed: no error event on top of it
    assert client.writes[-1]["more_body"] is False
