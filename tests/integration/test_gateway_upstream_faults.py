"""Upstream faults through the gateway: a server that dies, hangs, babbles or floods never leaves a client
waiting or the gateway holding on to anything.

A real gateway (uvloop, httptools) with a route whose timeouts are short (`connect` 1 s, `read` 1.5 s, as
`spec.gateway.timeouts` would set them) in front of tests/fixtures/faulty_upstream.py, a real TCP server
that misbehaves on purpose. For every fault the client must get, within the read timeout (plus slack for
a loaded machine), a JSON-RPC error carrying its request's id and `data.reason` (or, when the answer had
begun, an error event and a clean end of the stream); the gateway must have nothing in flight, no
connection left open to the upstream, and no more asyncio tasks than before; the analytics event must
record the failure's status; and the next call must work once the upstream behaves again.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from fixtures.faulty_upstream import FaultyUpstream, faulty_upstream
from fixtures.gateway import IngestReceiver, PolicyKit, serve_app, standard_kit
from fixtures.servers import free_port
from mcp_runtime.gateway import Gateway, GatewayRoute, InProcessPolicySource
from mcp_runtime.gateway.server import uvicorn_config
from mcp_runtime.sentinel.emitter import Emitter

READ_TIMEOUT = 1.5
CONNECT_TIMEOUT = 1.0
SLACK = 5.0  # a loaded two-core machine
JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@dataclass
class World:
    url: str
    base: str
    kit: PolicyKit
    upstream: FaultyUpstream
    ingest: IngestReceiver
    loop: asyncio.AbstractEventLoop

    def headers(self) -> dict[str, str]:
        return {**JSON, "Authorization": f"Bearer {self.kit.token('s-cursor', 'cursor')}"}

    def call(self, msg_id: Any = 1, tool: str = "echo", timeout: float = 60) -> tuple[httpx.Response, float]:
        body = {"jsonrpc": "2.0", "id": msg_id, "method": "tools/call",
                "params": {"name": tool, "arguments": {"text": "hi"}}}
        started = time.monotonic()
        answer = httpx.post(self.url, json=body, headers=self.headers(), timeout=timeout)
        return answer, time.monotonic() - started

    def tasks(self) -> int:
        return len(self.task_names())

    def task_names(self) -> list[str]:
        async def names() -> list[str]:
            # Python 3.11's wait_for runs `Event.wait()` as a task of its own: the emitter's flush loop has one
            # only while it waits, which says nothing about leaks
            return sorted(name for name in (repr(t.get_coro()) for t in asyncio.all_tasks())
                          if not name.startswith("<coroutine object Event.wait "))
        return asyncio.run_coroutine_threadsafe(names(), self.loop).result(timeout=10)

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.base}/metrics", timeout=10).text
        match = re.search(rf'^{name}\{{server="data-utility"\}} ([0-9.e+-]+)$', text, re.M)
        return float(match.group(1)) if match else 0.0


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    kit = standard_kit()
    ingest = IngestReceiver()
    with faulty_upstream() as upstream, serve_app(ingest) as ingest_base:
        emitter = Emitter(ingest_url=f"{ingest_base}/ingest", api_key="test-key", flush_interval=0.05)
        gateway = Gateway([GatewayRoute(upstream=upstream.url, policy=InProcessPolicySource(kit.document()),
                                        keys=kit.keyring.public_keys(), path="/mcp", server="data-utility",
                                        connect_timeout=CONNECT_TIMEOUT, read_timeout=READ_TIMEOUT)],
                          emitter=emitter)
        port = free_port()
        server = uvicorn.Server(uvicorn_config(gateway, "127.0.0.1", port))
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the gateway did not start"
            time.sleep(0.02)
        base = f"http://127.0.0.1:{port}"
        try:
            yield World(url=f"{base}/mcp", base=base, kit=kit, upstream=upstream, ingest=ingest, loop=loop)
        finally:
            server.should_exit = True
            thread.join(timeout=30)


@pytest.fixture
def clean(world: World) -> Iterator[World]:
    """Each test starts with a working upstream and checks, at the end, that nothing was left behind."""
    world.upstream.mode = "ok"
    answer, _ = world.call(msg_id="warm-up")
    assert answer.status_code == 200, answer.text
    baseline = world.tasks()
    yield world
    world.upstream.mode = "ok"
    answer, _ = world.call(msg_id="after")  # the next call works once the upstream behaves
    assert answer.status_code == 200 and answer.json()["id"] == "after", answer.text
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if (world.metric("mcp_gateway_inflight_requests") == 0 and world.tasks() <= baseline
                and world.upstream.connections() <= 1 and world.metric("mcp_gateway_upstream_connections") <= 1):
            break
        time.sleep(0.1)
    assert world.metric("mcp_gateway_inflight_requests") == 0, "a request is still in flight"
    assert world.tasks() <= baseline, f"asyncio tasks leaked: {world.task_names()} > {baseline}"
    assert world.upstream.connections() <= 1, "connections to the upstream were left open"  # one idle keep-alive
    assert world.metric("mcp_gateway_upstream_connections") <= 1


def _sse_messages(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and "{" in line]


def _recorded(world: World, msg_status: int, count: int = 1) -> None:
    """The failed call is in analytics, with the failure's status."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sum(1 for e in world.ingest.events if e["status"] == msg_status) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"no analytics event with status {msg_status}: {world.ingest.events[-3:]}")


def test_upstream_killed_mid_sse_stream(clean: World) -> None:
    clean.upstream.mode = "sse-then-die"
    answer, took = clean.call(msg_id=41)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
    progress, error = _sse_messages(answer.text)
    assert progress["method"] == "notifications/progress"
    assert error["id"] == 41 and error["error"]["code"] == -32002
    assert error["error"]["data"]["reason"] == "upstream_unavailable"
    assert took < READ_TIMEOUT + SLACK
    _recorded(clean, 502)


def test_upstream_that_accepts_and_never_answers(clean: World) -> None:
    clean.upstream.mode = "silent"
    answer, took = clean.call(msg_id="q-7")
    assert answer.status_code == 504
    body = answer.json()
    assert body["id"] == "q-7" and body["error"]["data"]["reason"] == "upstream_timeout"
    assert READ_TIMEOUT - 0.1 <= took < READ_TIMEOUT + SLACK
    _recorded(clean, 504)


def test_upstream_that_stalls_in_the_middle_of_an_answer(clean: World) -> None:
    clean.upstream.mode = "sse-stall"
    answer, took = clean.call(msg_id=5)
    messages = _sse_messages(answer.text)
    assert messages[0]["method"] == "notifications/progress"
    assert messages[-1]["id"] == 5 and messages[-1]["error"]["data"]["reason"] == "upstream_timeout"
    assert READ_TIMEOUT - 0.1 <= took < READ_TIMEOUT + SLACK
    _recorded(clean, 504)


@pytest.mark.parametrize("mode", ["garbage", "garbage-json"])
def test_upstream_answering_garbage(clean: World, mode: str) -> None:
    clean.upstream.mode = mode
    answer, took = clean.call(msg_id=9)
    assert answer.status_code == 502
    body = answer.json()
    assert body["id"] == 9 and body["error"]["data"]["reason"] == "upstream_invalid_answer"
    assert took < READ_TIMEOUT + SLACK


def test_upstream_answering_a_huge_body(clean: World) -> None:
    clean.upstream.mode = "huge"  # promises 1 GiB of JSON
    answer, took = clean.call(msg_id=3)
    assert answer.status_code == 502
    body = answer.json()
    assert body["id"] == 3 and body["error"]["data"]["reason"] == "upstream_invalid_answer"
    assert "1073741824 bytes" in body["error"]["message"]
    assert took < READ_TIMEOUT + SLACK


def test_upstream_streaming_without_end(clean: World) -> None:
    clean.upstream.mode = "huge-sse"  # an SSE answer that never ends: cut at the answer limit
    answer, _ = clean.call(msg_id=4, timeout=120)
    assert answer.status_code == 200
    assert 32 * 1024 * 1024 - 70_000 < len(answer.content) < 33 * 1024 * 1024
    last = _sse_messages(answer.text[-2000:])[-1]
    assert last["id"] == 4 and last["error"]["data"]["reason"] == "upstream_invalid_answer"


def test_upstream_restarting(clean: World) -> None:
    # an open GET stream (server-to-client messages) while the server goes away: a clean end
    clean.upstream.mode = "sse-stall"
    with httpx.stream("GET", clean.url, headers=clean.headers(), timeout=30) as stream:
        assert stream.status_code == 200
        chunks = stream.iter_bytes()
        assert b"notifications/progress" in next(chunks)
        clean.upstream.stop()
        rest = b"".join(chunks)  # ends without an error: the chunked body is terminated properly
    assert rest == b""
    answer, took = clean.call(msg_id=12)
    assert answer.status_code == 502 and answer.json()["id"] == 12
    assert answer.json()["error"]["data"]["reason"] == "upstream_unavailable"
    assert took < CONNECT_TIMEOUT + SLACK
    clean.upstream.start()
    clean.upstream.mode = "ok"
    answer, _ = clean.call(msg_id=13)
    assert answer.status_code == 200 and answer.json()["id"] == 13


def test_a_batch_gets_an_error_per_request_and_keeps_its_denials(clean: World) -> None:
    clean.upstream.mode = "silent"
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {}}},
             {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "reverse", "arguments": {}}},
             {"jsonrpc": "2.0", "method": "notifications/initialized"}]
    answer = httpx.post(clean.url, json=batch, headers=clean.headers(), timeout=30)
    assert answer.status_code == 504
    by_id = {m["id"]: m for m in answer.json()}
    assert by_id[1]["error"]["data"]["reason"] == "upstream_timeout"
    assert by_id[2]["error"]["code"] == -32001  # reverse is denied by the policy, as without a fault
