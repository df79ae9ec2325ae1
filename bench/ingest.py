"""Sentinel ingest throughput: sustained events/s into each store, and end to end. Not a test.

    /work/main/.venv/bin/python bench/ingest.py [--quick]

Measures, in one run, on fresh stores in a temp directory:
1. `SQLiteEventStore.insert` (synchronous=FULL, the default, and NORMAL) with batches of 1, 100, 1000;
2. `ClickHouseEventStore.insert` on chdb (the ClickHouse engine in process) with the same batches;
3. the embedded path: gateway `Emitter` -> HTTP ingest (Starlette under uvicorn, the wire contract of
   `/api/v1/ingest/events`) -> SQLite, counted from the first `emit` until the store holds every event;
4. the scale path: `EventPublisher` -> NATS JetStream (127.0.0.1:4222, if it answers) -> `StreamWriter`
   -> SQLite.
Each run checks that the store holds exactly the events sent (no loss, no double count) and prints
events/s. The target for the embedded default is >= 1,000 events/s sustained with no loss.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_runtime.sentinel.events import AnalyticsEvent, IngestBatch
from mcp_runtime.sentinel.sqlite_store import SQLiteEventStore
from mcp_runtime.sentinel.store import EventStore

API_KEY = "mcpr_bench-ingest-key"


def make_events(count: int) -> list[AnalyticsEvent]:
    return [AnalyticsEvent(server=f"server{i % 20}", namespace=f"mcp-team-{['acme', 'globex'][i % 2]}",
                           team_id=["acme", "globex", "initech"][i % 3], human_id=f"user{i % 50}@example.com",
                           agent_id=["cursor", "claude", "inspector"][i % 3], session_id=f"sess-{i % 40}",
                           rpc_method="tools/call", tool_name=f"tool{i % 7}",
                           decision="deny" if i % 10 == 0 else "allow",
                           reason="tool_not_granted" if i % 10 == 0 else "allowed", required_trust="medium",
                           effective_trust="high", side_effect="read", status=200, latency_ms=1.25,
                           bytes_in=180, bytes_out=420, policy_revision="0" * 64)
            for i in range(count)]


def check_exact(store: EventStore, events: list[AnalyticsEvent]) -> str:
    stored = store.count()
    return "ok" if stored == len({e.event_id for e in events}) else f"LOSS/DUP: {stored} of {len(events)}"


def bench_store(name: str, factory: Callable[[], EventStore], batch: int, count: int) -> float:
    store = factory()
    events = make_events(count)
    started = time.perf_counter()
    for start in range(0, count, batch):
        store.insert(events[start:start + batch])
    elapsed = time.perf_counter() - started
    status = check_exact(store, events)
    # a resend of everything changes nothing
    store.insert(events[: min(count, 1000)])
    status = status if store.count() == count else "DUP after resend"
    store.close()
    rate = count / elapsed
    print(f"{name:<34} batch {batch:>5}: {count:>7} events in {elapsed:6.2f} s = {rate:>9,.0f} events/s"
          f"  [{status}]")
    return rate


# ---------------------------------------------------------------------------------------------------
# Emitter -> HTTP ingest -> SQLite
# ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ingest_app(store: EventStore) -> Starlette:
    """The ingest contract of CONTRACTS.md: key check, `IngestBatch` body, 202 with accepted/duplicates."""

    async def ingest(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse({"error": "unauthorized", "message": "bad ingest key"}, status_code=401)
        batch = IngestBatch.model_validate_json(await request.body())
        result = await run_in_threadpool(store.insert, batch.events)
        return JSONResponse(result.model_dump(), status_code=202)

    return Starlette(routes=[Route("/api/v1/ingest/events", ingest, methods=["POST"])])


def bench_emitter_to_sqlite(count: int, batch_size: int, tmp: Path, rate: float | None = None) -> float:
    """Flat out (`rate=None`: emit as fast as the loop allows, overflow goes through the spool) or paced
    at `rate` events/s (a steady gateway); prints events/s, the spooled count and the lag at the end."""
    from mcp_runtime.sentinel.emitter import Emitter

    label = f"batch {batch_size:>5}" + (f", paced {rate:,.0f}/s" if rate else ", flat out")
    store = SQLiteEventStore(tmp / f"emitter-{batch_size}-{rate}.db")
    port = free_port()
    config = uvicorn.Config(ingest_app(store), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    events = make_events(count)
    spooled = 0.0

    async def run() -> tuple[float, float]:
        nonlocal spooled
        emitter = Emitter(f"http://127.0.0.1:{port}/api/v1/ingest/events", API_KEY,
                          spool_path=tmp / f"spool-{batch_size}-{rate}.db", batch_size=batch_size,
                          flush_interval=0.05, queue_size=max(10_000, batch_size * 4))
        await emitter.start()
        started = time.perf_counter()
        tick = 100 if rate is None else max(1, int(rate / 100))  # events per 10 ms when paced
        for n, start in enumerate(range(0, count, tick)):
            for event in events[start:start + tick]:
                emitter.emit(event)
            if rate is None:
                await asyncio.sleep(0)  # a gateway yields between requests
            else:
                await asyncio.sleep(max(0.0, started + (n + 1) * tick / rate - time.perf_counter()))
        emitted_at = time.perf_counter()
        while store.count() < count:
            await asyncio.sleep(0.005)
        done = time.perf_counter()
        spooled = emitter.registry.get_sample_value("mcp_gateway_events_spooled_total") or 0.0
        await emitter.close()
        return done - started, done - emitted_at

    try:
        elapsed, lag = asyncio.run(run())
        status = check_exact(store, events)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()
    per_second = count / elapsed
    print(f"{'emitter -> HTTP -> SQLite':<26} {label:<28} {count:>7} events in {elapsed:6.2f} s "
          f"= {per_second:>9,.0f} events/s, spooled {spooled:,.0f}, lag at end {lag * 1000:,.0f} ms"
          f"  [{status}]")
    return per_second


def bench_nats_to_sqlite(count: int, tmp: Path) -> float | None:
    import uuid

    import nats

    from mcp_runtime.sentinel.nats_pipeline import EventPublisher, StreamSettings, StreamWriter

    store = SQLiteEventStore(tmp / "nats.db")
    tag = uuid.uuid4().hex[:8]
    settings = StreamSettings(name=f"BENCH_EVENTS_{tag}", subject_prefix=f"bench.mcp.events.{tag}",
                              max_bytes=1024**3)
    events = make_events(count)

    async def run() -> float:
        publisher = await EventPublisher.connect("nats://127.0.0.1:4222", settings)
        writer = await StreamWriter.connect("nats://127.0.0.1:4222", store, settings, durable="bench",
                                            fetch_batch=32, fetch_timeout=0.2)
        try:
            await writer.start()
            started = time.perf_counter()
            for start in range(0, count, 500):
                await publisher.publish(events[start:start + 500])
            while store.count() < count:
                await asyncio.sleep(0.005)
            return time.perf_counter() - started
        finally:
            await writer.stop()
            await publisher.close()
            nc = await nats.connect("nats://127.0.0.1:4222")
            await nc.jetstream().delete_stream(settings.name)
            await nc.close()

    try:
        elapsed = asyncio.run(run())
    except Exception as exc:  # NATS not running here
        print(f"{'NATS JetStream -> writer -> SQLite':<34} skipped: {exc!r}")
        store.close()
        return None
    status = check_exact(store, events)
    store.close()
    rate = count / elapsed
    print(f"{'NATS JetStream -> writer -> SQLite':<34} batch   500: {count:>7} events in {elapsed:6.2f} s "
          f"= {rate:>9,.0f} events/s  [{status}]")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer events (a smoke run)")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    n = lambda count: max(100, int(count * scale))  # noqa: E731

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp_dir:
        tmp = Path(tmp_dir)
        print("== stores: insert() from batches of 1/100/1000 (deduplicating, durable on return)")
        for sync in ("FULL", "NORMAL"):
            for batch, count in ((1, 5_000), (100, 100_000), (1000, 200_000)):
                bench_store(f"SQLite synchronous={sync}",
                            lambda s=sync, b=batch: SQLiteEventStore(tmp / f"sqlite-{s}-{b}.db",
                                                                     synchronous=s),  # type: ignore[misc]
                            batch, n(count))

        from mcp_runtime.sentinel.clickhouse_store import ChdbExecutor, ClickHouseEventStore

        executor = ChdbExecutor(tmp / "chdb")
        for batch, count in ((1, 500), (100, 50_000), (1000, 200_000)):
            bench_store("ClickHouse (chdb, in process)",
                        lambda b=batch: ClickHouseEventStore(executor, database=f"bench_{b}"),  # type: ignore[misc]
                        batch, n(count))
        executor.close()

        print("== end to end")
        for batch_size in (100, 1000):
            bench_emitter_to_sqlite(n(50_000), batch_size, tmp)
        bench_emitter_to_sqlite(n(20_000), 100, tmp, rate=2_000)  # 10 s at twice the target
        bench_nats_to_sqlite(n(100_000), tmp)


if __name__ == "__main__":
    main()
