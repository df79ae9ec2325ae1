"""The analytics pipeline through outages of its dependencies: nothing lost, nothing counted twice.

- NATS restarted (cleanly, then killed) while a gateway's emitter keeps sending: the ingest answers 503
  while JetStream cannot confirm, the emitter spools and replays, the platform's writer resumes on its
  own, and the event store ends with every event exactly once.
- The ingest down for minutes (here: the platform API not running at all): the emitter's spool holds
  every event, its depth is the `mcp_gateway_event_spool_depth` metric, and when the platform comes back
  the spool replays into it. A spool that fills up says so in one clear log line and counts the drops.

The NATS server is a private one (tests/fixtures/nats_server.py) on its own port and store directory.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from platform_support import platform_settings, serve_platform
from prometheus_client import generate_latest

from fixtures.cli import free_port
from fixtures.nats_server import PrivateNats, private_nats
from mcp_runtime.platform.app import API_PREFIX
from mcp_runtime.security.secrets import new_api_key
from mcp_runtime.sentinel.emitter import Emitter
from mcp_runtime.sentinel.events import AnalyticsEvent
from mcp_runtime.sentinel.store import EventStore, UsageFilter
from mcp_runtime.store.sql import sqlite_url

pytestmark = pytest.mark.slow


def _event(n: int) -> AnalyticsEvent:
    return AnalyticsEvent(server="payments", namespace="mcp-team-acme", rpc_method="tools/call",
                          tool_name="echo", decision="allow", status=200, latency_ms=float(n % 7))


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def test_nats_restarts_lose_and_double_nothing(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with private_nats(tmp_path / "nats") as server:
        settings = platform_settings(tmp_path / "data", sqlite_url(tmp_path / "data"), nats_url=server.url)
        with serve_platform(settings) as live:
            assert live.platform.ingest.mode == "nats"
            emitted = asyncio.run(_traffic_through_restarts(live.url, live.platform.ingest_keys.local_key,
                                                            tmp_path / "spool", server))
            store = live.platform.events
            deadline = time.monotonic() + 90
            while store.count() < len(emitted) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)  # a redelivered copy would land now if the store were going to keep it
            assert store.count() == len(emitted), f"stored {store.count()} of {len(emitted)} events"
            assert _stored_ids(store) == set(emitted)


def _stored_ids(store: EventStore) -> set[str]:
    ids: set[str] = set()
    after = None
    while page := store.events(UsageFilter(), limit=5000, after_event_id=after):
        ids.update(e.event_id for e in page)
        after = page[-1].event_id
    return ids


async def _traffic_through_restarts(url: str, key: str, spool: Path, server: PrivateNats) -> list[str]:
    emitter = Emitter(ingest_url=f"{url}{API_PREFIX}/ingest/events", api_key=key, spool_path=spool,
                      flush_interval=0.05, backoff_initial=0.2, backoff_max=2.0)
    await emitter.start()
    emitted: list[str] = []
    stop = asyncio.Event()

    async def produce() -> None:
        n = 0
        while not stop.is_set():
            for _ in range(10):
                event = _event(n)
                emitter.emit(event)
                emitted.append(event.event_id)
                n += 1
            await asyncio.sleep(0.05)

    producer = asyncio.create_task(produce())
    try:
        await asyncio.sleep(2)
        # a short clean restart (publishes wait in nats-py's reconnect buffer), then a crash that lasts
        # longer than the ingest's publish timeout (the ingest answers 503, the emitter spools)
        for signum, down in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 8.0)):
            await asyncio.to_thread(server.stop, signum)
            await asyncio.sleep(down)
            await asyncio.to_thread(server.start)
            await asyncio.sleep(3)
        spooled = emitter.metrics.spooled._value.get()
    finally:
        stop.set()
        await producer
    await _until(lambda: emitter.spool.depth == 0, 60, "the spool to drain")
    await emitter.close()
    assert spooled > 0, "the outages should have made the emitter spool"
    assert emitter.metrics.dropped._value.get() == 0
    return emitted


OUTAGE = 15.0  # seconds the ingest is down (CI); the spool neither knows nor cares how long


def test_ingest_down_the_spool_holds_reports_its_depth_and_replays(tmp_path: Path) -> None:
    port = free_port()
    key = new_api_key()
    (tmp_path / "data").mkdir()
    settings = platform_settings(tmp_path / "data", sqlite_url(tmp_path / "data"), ingest_api_key=key)

    async def scenario() -> None:
        emitter = Emitter(ingest_url=f"http://127.0.0.1:{port}{API_PREFIX}/ingest/events", api_key=key,
                          spool_path=tmp_path / "spool", flush_interval=0.05, backoff_initial=0.2, backoff_max=3.0)
        await emitter.start()
        emitted = []
        started = time.monotonic()
        while time.monotonic() - started < OUTAGE:  # nothing listens on the ingest's port
            for _ in range(5):
                event = _event(len(emitted))
                emitter.emit(event)
                emitted.append(event.event_id)
            await asyncio.sleep(0.05)
        await _until(lambda: emitter.spool.depth == len(emitted), 10, "every event to reach the spool")
        metrics = generate_latest(emitter.registry).decode()
        assert f"mcp_gateway_event_spool_depth {float(len(emitted))}" in metrics
        assert emitter.metrics.dropped._value.get() == 0

        with serve_platform(settings, port=port) as live:  # the ingest is back
            await _until(lambda: emitter.spool.depth == 0, 30, "the spool to replay")
            await emitter.close()
            store = live.platform.events
            await _until(lambda: store.count() >= len(emitted), 30, "the replayed events to be stored")
            assert store.count() == len(emitted)
            assert _stored_ids(store) == set(emitted)
        print(f"{len(emitted)} events held in the spool for {OUTAGE:.0f}s, replayed once")

    asyncio.run(scenario())


def test_a_full_spool_says_so_once_and_counts_what_it_drops(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        emitter = Emitter(ingest_url=f"http://127.0.0.1:{free_port()}/ingest", api_key="k",
                          spool_path=tmp_path / "spool", max_spool_events=100, flush_interval=0.05,
                          queue_size=10)
        await emitter.start()
        for n in range(150):
            emitter.emit(_event(n))
            if n % 10 == 0:
                await asyncio.sleep(0.01)
        await _until(lambda: emitter.metrics.dropped._value.get() == 50, 10, "50 drops")
        assert emitter.spool.depth == 100
        await emitter.close()

    with caplog.at_level(logging.WARNING, logger="mcp_runtime.sentinel.emitter"):
        asyncio.run(scenario())
    full = [r.getMessage() for r in caplog.records if "spool is full" in r.getMessage()]
    assert len(full) == 1, full
    assert "100 events" in full[0] and "DROPPED" in full[0] and "max_spool_events" in full[0]
