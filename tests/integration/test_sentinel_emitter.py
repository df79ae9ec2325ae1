"""The emitter against a real HTTP ingest (Starlette under uvicorn) that can fail, vanish and come back.

What a platform team would notice: every event reaches the ingest exactly once and in emission order,
however the ingest misbehaves in between, and across a restart of the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fixtures.cli import free_port
from mcp_runtime.sentinel.emitter import Emitter
from mcp_runtime.sentinel.events import AnalyticsEvent, IngestBatch

SRC = Path(__file__).resolve().parents[2] / "src"
API_KEY = "mcpr_test-ingest-key"
FAST = {"flush_interval": 0.02, "backoff_initial": 0.02, "backoff_max": 0.1, "timeout": 2.0}


class Receiver:
    """A small ingest: stores events by event_id, counts duplicates, checks the key, can fail or stop."""

    def __init__(self, api_key: str = API_KEY, port: int | None = None) -> None:
        self.api_key = api_key
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/v1/ingest/events"
        self.events: dict[str, dict[str, object]] = {}
        self.order: list[str] = []
        self.duplicates = 0
        self.unauthorized = 0
        self.refused = 0
        self.failing = False
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(routes=[Route("/api/v1/ingest/events", self._ingest, methods=["POST"])])

    async def _ingest(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            with self._lock:
                self.unauthorized += 1
            return JSONResponse({"error": "unauthorized", "message": "bad ingest key"}, status_code=401)
        if self.failing:
            with self._lock:
                self.refused += 1
            return JSONResponse({"error": "unavailable", "message": "try later"}, status_code=503)
        batch = IngestBatch.model_validate_json(await request.body())  # the wire format is the contract
        accepted = duplicates = 0
        with self._lock:
            for event in batch.events:
                if event.event_id in self.events:
                    duplicates += 1
                    continue
                self.events[event.event_id] = event.model_dump(mode="json")
                self.order.append(event.event_id)
                accepted += 1
            self.duplicates += duplicates
        return JSONResponse({"accepted": accepted, "duplicates": duplicates}, status_code=202)

    def start(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_until_sync(lambda: self._server is not None and self._server.started)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def received(self) -> list[str]:
        with self._lock:
            return list(self.order)


def wait_until_sync(condition: Callable[[], bool], deadline: float = 10.0) -> None:
    import time

    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


async def wait_until(condition: Callable[[], bool], deadline: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


def metric(emitter: Emitter, name: str) -> float:
    value = emitter.registry.get_sample_value(name)
    return 0.0 if value is None else value


def make_event(n: int) -> AnalyticsEvent:
    return AnalyticsEvent(server="payments", namespace="mcp-team-acme", team_id="acme", human_id="bob",
                          agent_id="claude", rpc_method="tools/call", tool_name=f"tool-{n}", decision="allow",
                          reason="allowed", status=200, latency_ms=0.5, bytes_in=120, bytes_out=300)


def emit_many(emitter: Emitter, count: int, start: int = 0) -> list[str]:
    ids = []
    for n in range(start, start + count):
        event = make_event(n)
        emitter.emit(event)
        ids.append(event.event_id)
    return ids


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    rec.start()
    yield rec
    rec.stop()


def test_events_arrive_in_order_when_ingest_is_up(receiver: Receiver, tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        emitter = Emitter(receiver.url, API_KEY, spool_path=tmp_path / "spool.db", batch_size=50, **FAST)
        await emitter.start()
        ids = emit_many(emitter, 500)
        await wait_until(lambda: len(receiver.received()) == 500)
        await emitter.close()
        assert metric(emitter, "mcp_gateway_events_emitted_total") == 500
        assert metric(emitter, "mcp_gateway_events_sent_total") == 500
        assert metric(emitter, "mcp_gateway_events_spooled_total") == 0
        assert metric(emitter, "mcp_gateway_event_spool_depth") == 0
        return ids

    ids = asyncio.run(scenario())
    assert receiver.received() == ids
    assert receiver.duplicates == 0
    assert receiver.events[ids[0]]["human_id"] == "bob"


def test_close_flushes_what_is_still_in_memory(receiver: Receiver, tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        emitter = Emitter(receiver.url, API_KEY, spool_path=tmp_path / "spool.db",
                          batch_size=1000, flush_interval=60.0)
        await emitter.start()
        ids = emit_many(emitter, 30)  # below batch size, interval far away: only close() sends them
        await emitter.close()
        return ids

    ids = asyncio.run(scenario())
    assert receiver.received() == ids


def test_outage_then_recovery_delivers_everything_once_in_order(receiver: Receiver, tmp_path: Path) -> None:
    async def scenario() -> tuple[list[str], Emitter]:
        emitter = Emitter(receiver.url, API_KEY, spool_path=tmp_path / "spool.db", batch_size=20, **FAST)
        await emitter.start()
        ids = emit_many(emitter, 60)
        await wait_until(lambda: len(receiver.received()) == 60)

        receiver.failing = True  # 503
        ids += emit_many(emitter, 100, start=60)
        await wait_until(lambda: metric(emitter, "mcp_gateway_event_spool_depth") == 100)

        receiver.stop()  # connection refused
        ids += emit_many(emitter, 100, start=160)
        await wait_until(lambda: metric(emitter, "mcp_gateway_event_spool_depth") == 200)
        await asyncio.sleep(0.3)  # several retries against a closed port: still nothing lost

        receiver.failing = False
        receiver.start()
        ids += emit_many(emitter, 40, start=260)
        await wait_until(lambda: len(receiver.received()) == 300)
        await emitter.close()
        return ids, emitter

    ids, emitter = asyncio.run(scenario())
    assert receiver.received() == ids  # every event, in emission order
    assert receiver.duplicates == 0
    assert metric(emitter, "mcp_gateway_events_sent_total") == 300
    assert metric(emitter, "mcp_gateway_events_spooled_total") >= 200
    assert metric(emitter, "mcp_gateway_event_spool_depth") == 0
    assert metric(emitter, "mcp_gateway_events_dropped_total") == 0
    assert metric(emitter, "mcp_gateway_events_failed_total") == 0


def test_failing_ingest_is_not_hammered(receiver: Receiver, tmp_path: Path) -> None:
    """After a failure the emitter waits out its backoff; new events meanwhile go to the spool."""
    async def scenario() -> Emitter:
        receiver.failing = True
        emitter = Emitter(receiver.url, API_KEY, spool_path=tmp_path / "spool.db", batch_size=5,
                          flush_interval=0.02, backoff_initial=30.0, backoff_max=60.0)
        await emitter.start()
        emit_many(emitter, 5)
        await wait_until(lambda: metric(emitter, "mcp_gateway_event_spool_depth") == 5)
        for round_ in range(1, 6):  # many flush intervals and full batches later: still one attempt
            emit_many(emitter, 5, start=round_ * 5)
            await wait_until(lambda r=round_: metric(emitter, "mcp_gateway_event_spool_depth") == 5 * (r + 1))
        await emitter.close()  # while backing off, close spools instead of trying again
        return emitter

    emitter = asyncio.run(scenario())
    assert receiver.refused == 1
    assert metric(emitter, "mcp_gateway_event_spool_depth") == 30


def test_close_during_outage_then_a_new_emitter_replays_everything(receiver: Receiver,
                                                                    tmp_path: Path) -> None:
    spool = tmp_path / "spool.db"

    async def during_outage() -> list[str]:
        receiver.failing = True
        emitter = Emitter(receiver.url, API_KEY, spool_path=spool, batch_size=25, **FAST)
        await emitter.start()
        ids = emit_many(emitter, 120)
        await emitter.close()
        assert metric(emitter, "mcp_gateway_event_spool_depth") == 120
        return ids

    async def after_restart() -> list[str]:
        receiver.failing = False
        emitter = Emitter(receiver.url, API_KEY, spool_path=spool, batch_size=25, **FAST)
        assert metric(emitter, "mcp_gateway_event_spool_depth") == 120
        await emitter.start()
        newer = emit_many(emitter, 10, start=1000)
        await wait_until(lambda: len(receiver.received()) == 130)
        await emitter.close()
        assert metric(emitter, "mcp_gateway_event_spool_depth") == 0
        return newer

    ids = asyncio.run(during_outage())
    assert receiver.received() == []
    ids += asyncio.run(after_restart())
    assert receiver.received() == ids  # the replay comes first, then what the new process emitted
    assert receiver.duplicates == 0


def test_a_killed_gateway_process_loses_nothing_that_was_spooled(receiver: Receiver, tmp_path: Path) -> None:
    """SIGKILL (no close(), no cleanup) after the emitter spooled during an outage; a restart replays."""
    spool = tmp_path / "spool.db"
    dead_port = free_port()
    script = f"""
import asyncio
from mcp_runtime.sentinel.emitter import Emitter
from mcp_runtime.sentinel.events import AnalyticsEvent

async def main():
    em = Emitter("http://127.0.0.1:{dead_port}/api/v1/ingest/events", "k", spool_path={str(spool)!r},
                 batch_size=10, flush_interval=0.02, backoff_initial=0.02, backoff_max=0.1)
    await em.start()
    ids = []
    for n in range(80):
        event = AnalyticsEvent(server="s", namespace="n", rpc_method="tools/call", decision="deny",
                               status=403, latency_ms=0.1)
        em.emit(event)
        ids.append(event.event_id)
    while em.spool.depth < 80:
        await asyncio.sleep(0.01)
    print(",".join(ids), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        ids = proc.stdout.readline().strip().split(",")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert len(ids) == 80

    async def restart() -> None:
        emitter = Emitter(receiver.url, API_KEY, spool_path=spool, **FAST)
        await emitter.start()
        await wait_until(lambda: len(receiver.received()) == 80)
        await emitter.close()

    asyncio.run(restart())
    assert receiver.received() == ids
    assert receiver.duplicates == 0


def test_full_spool_drops_are_counted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> Emitter:
        emitter = Emitter(None, None, spool_path=tmp_path / "spool.db", max_spool_events=25, **FAST)
        await emitter.start()
        emit_many(emitter, 40)
        await emitter.close()
        return emitter

    with caplog.at_level(logging.ERROR, logger="mcp_runtime.sentinel"):
        emitter = asyncio.run(scenario())
    assert metric(emitter, "mcp_gateway_events_dropped_total") == 15
    assert metric(emitter, "mcp_gateway_event_spool_depth") == 25
    assert metric(emitter, "mcp_gateway_events_spooled_total") == 25
    assert any("dropped 15 analytics events" in r.getMessage() and "spool full" in r.getMessage()
               for r in caplog.records)


def test_wrong_key_is_counted_as_failed_and_the_events_are_kept(receiver: Receiver, tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    spool = tmp_path / "spool.db"

    async def wrong_key() -> tuple[list[str], Emitter]:
        emitter = Emitter(receiver.url, "mcpr_wrong-key", spool_path=spool, batch_size=10, **FAST)
        await emitter.start()
        ids = emit_many(emitter, 30)
        await wait_until(lambda: metric(emitter, "mcp_gateway_events_failed_total") >= 30)
        await emitter.close()
        return ids, emitter

    async def right_key() -> None:
        emitter = Emitter(receiver.url, API_KEY, spool_path=spool, **FAST)
        await emitter.start()
        await wait_until(lambda: len(receiver.received()) == 30)
        await emitter.close()

    with caplog.at_level(logging.ERROR, logger="mcp_runtime.sentinel"):
        ids, emitter = asyncio.run(wrong_key())
    assert receiver.unauthorized > 0 and receiver.received() == []
    assert metric(emitter, "mcp_gateway_event_spool_depth") == 30
    assert metric(emitter, "mcp_gateway_events_sent_total") == 0
    assert metric(emitter, "mcp_gateway_events_dropped_total") == 0
    assert any("HTTP 401" in r.getMessage() for r in caplog.records)

    asyncio.run(right_key())  # the key is fixed: the kept events arrive
    assert receiver.received() == ids


def test_emit_never_blocks_or_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> Emitter:
        emitter = Emitter(None, None, spool_path=tmp_path / "spool.db", queue_size=5)
        # not started: the buffer holds 5, the rest goes straight to the spool
        emit_many(emitter, 12)
        assert metric(emitter, "mcp_gateway_event_spool_depth") == 7
        await emitter.close()
        assert metric(emitter, "mcp_gateway_event_spool_depth") == 12
        emitter.emit(make_event(99))  # after close: counted and logged, not raised
        return emitter

    with caplog.at_level(logging.ERROR, logger="mcp_runtime.sentinel"):
        emitter = asyncio.run(scenario())
    assert metric(emitter, "mcp_gateway_events_emitted_total") == 13
    assert metric(emitter, "mcp_gateway_events_dropped_total") == 1
    assert any("after the emitter was closed" in r.getMessage() for r in caplog.records)


def test_metrics_are_registered_on_the_given_registry(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    emitter = Emitter(None, None, spool_path=None, registry=registry)
    text = generate_latest(registry).decode()
    for name in ("mcp_gateway_events_emitted_total", "mcp_gateway_events_sent_total",
                 "mcp_gateway_events_spooled_total", "mcp_gateway_events_failed_total",
                 "mcp_gateway_events_dropped_total", "mcp_gateway_event_spool_depth"):
        assert name in text
    asyncio.run(emitter.close())
