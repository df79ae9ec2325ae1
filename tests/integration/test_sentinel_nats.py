"""Ingest -> NATS JetStream -> writer -> SQLite, against the real `nats-server -js` on 127.0.0.1:4222.

What a platform team would notice: every published event ends up in the store exactly once, when the
store fails an insert, when the writer crashes between storing and acknowledging, and across a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import nats
import pytest
from nats.js.errors import NotFoundError

from mcp_runtime.sentinel.events import AnalyticsEvent
from mcp_runtime.sentinel.nats_pipeline import EventPublisher, StreamSettings, StreamWriter, encode_batches
from mcp_runtime.sentinel.sqlite_store import SQLiteEventStore
from mcp_runtime.sentinel.store import InsertResult, UsageFilter

NATS_URL = "nats://127.0.0.1:4222"


def make_events(count: int, start: int = 0) -> list[AnalyticsEvent]:
    return [AnalyticsEvent(server="payments", namespace="mcp-team-acme", team_id="globex",
                           human_id=f"user{i % 9}@globex.com", agent_id="cursor", rpc_method="tools/call",
                           tool_name="refund", decision="allow", reason="allowed", status=200, latency_ms=1.0)
            for i in range(start, start + count)]


async def wait_until(condition: Callable[[], bool], deadline: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def publish_in_batches(publisher: EventPublisher, events: Sequence[AnalyticsEvent], size: int) -> None:
    for start in range(0, len(events), size):
        await publisher.publish(events[start:start + size])


class FlakyStore:
    """Delegates to a real store; fails the first `failures` inserts, or blocks forever after `block_after`
    successful ones (a writer that dies between storing and acknowledging)."""

    def __init__(self, store: SQLiteEventStore, failures: int = 0, block_after: int | None = None) -> None:
        self.store = store
        self.failures = failures
        self.block_after = block_after
        self.calls = 0
        self.successes = 0
        self.release = threading.Event()
        self.blocked = threading.Event()

    def insert(self, events: Sequence[AnalyticsEvent]) -> InsertResult:
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError("disk full (simulated)")
        result = self.store.insert(events)
        self.successes += 1
        if self.block_after is not None and self.successes > self.block_after:
            self.blocked.set()
            self.release.wait(30)  # stored, but the ack never happens: the writer "crashes" here
        return result

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


@pytest.fixture
def settings() -> Iterator[StreamSettings]:
    """A stream of this test's own (unique name and subjects), deleted with its consumers afterwards."""
    tag = uuid.uuid4().hex[:10]
    settings = StreamSettings(name=f"TEST_EVENTS_{tag}", subject_prefix=f"test.mcp.events.{tag}",
                              max_bytes=64 * 1024**2, max_age_seconds=600)
    yield settings
    asyncio.run(delete_stream(settings))


async def delete_stream(settings: StreamSettings) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(settings.name)
    finally:
        await nc.close()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteEventStore]:
    sqlite = SQLiteEventStore(tmp_path / "analytics.db")
    yield sqlite
    sqlite.close()


def test_every_published_event_is_stored_exactly_once(settings: StreamSettings,
                                                       store: SQLiteEventStore) -> None:
    events = make_events(1000)

    async def scenario() -> None:
        publisher = await EventPublisher.connect(NATS_URL, settings)
        writer = await StreamWriter.connect(NATS_URL, store, settings, durable="writer", fetch_batch=16,
                                            fetch_timeout=0.2)
        try:
            await writer.start()
            await publish_in_batches(publisher, events, 37)
            await publisher.publish(events[:100])  # a gateway resent 100 events in a new batch
            await wait_until(lambda: store.count() == 1000 and writer.acked_messages == 29)
        finally:
            await writer.stop()
            await publisher.close()
        assert publisher.duplicate_messages == 0  # a different slicing, so new messages...
        assert writer.accepted == 1000  # ...whose events the store recognised
        assert writer.duplicates == 100

    run(scenario)
    assert {e.event_id for e in store.events(UsageFilter(), limit=2000)} == {e.event_id for e in events}


def test_a_failed_insert_is_redelivered_and_nothing_is_lost(settings: StreamSettings,
                                                            store: SQLiteEventStore) -> None:
    events = make_events(300)
    flaky = FlakyStore(store, failures=2)

    async def scenario() -> None:
        publisher = await EventPublisher.connect(NATS_URL, settings)
        writer = await StreamWriter.connect(NATS_URL, flaky, settings, durable="writer",  # type: ignore[arg-type]
                                            fetch_batch=8, fetch_timeout=0.2, retry_delay=0.1)
        try:
            await publish_in_batches(publisher, events, 50)
            again = await publisher.publish(events[:50])  # identical batch: one message, deduplicated
            assert again == 1 and publisher.duplicate_messages == 1
            await writer.start()
            await wait_until(lambda: store.count() == 300 and writer.acked_messages == 6)
        finally:
            await writer.stop()
            await publisher.close()
        assert writer.failed_inserts == 2 and flaky.calls >= 3
        assert writer.accepted == 300

    run(scenario)
    assert store.totals(UsageFilter()).events == 300


def test_a_writer_crash_between_storing_and_acking_loses_nothing(settings: StreamSettings,
                                                                 store: SQLiteEventStore) -> None:
    events = make_events(500)
    crashing = FlakyStore(store, block_after=3)

    async def scenario() -> None:
        publisher = await EventPublisher.connect(NATS_URL, settings)
        first = await StreamWriter.connect(NATS_URL, crashing, settings, durable="writer",  # type: ignore[arg-type]
                                           fetch_batch=2, fetch_timeout=0.2, ack_wait=1.0)
        second: StreamWriter | None = None
        try:
            await publish_in_batches(publisher, events[:250], 25)
            await first.start()
            await asyncio.to_thread(crashing.blocked.wait, 10)
            stored_by_first = store.count()
            assert 0 < stored_by_first < 500
            await first.abort()  # the process dies: its last batch is stored but never acknowledged
            await publish_in_batches(publisher, events[250:], 25)  # traffic continues meanwhile

            second = await StreamWriter.connect(NATS_URL, store, settings, durable="writer", fetch_batch=4,
                                                fetch_timeout=0.2, ack_wait=1.0)
            await second.start()
            await wait_until(lambda: store.count() == 500 and second is not None and second.duplicates > 0)
        finally:
            crashing.release.set()
            if second is not None:
                await second.stop()
            await publisher.close()
        # the redelivered, already stored batch was absorbed by the store
        assert second.duplicates == 50 and second.accepted == 500 - stored_by_first

    run(scenario)
    assert {e.event_id for e in store.events(UsageFilter(), limit=1000)} == {e.event_id for e in events}


def test_a_writer_restarted_mid_stream_resumes_where_it_stopped(settings: StreamSettings,
                                                                 store: SQLiteEventStore) -> None:
    events = make_events(600)

    async def scenario() -> None:
        publisher = await EventPublisher.connect(NATS_URL, settings)
        try:
            first = await StreamWriter.connect(NATS_URL, store, settings, durable="writer", fetch_batch=2,
                                               fetch_timeout=0.2, ack_wait=1.0)
            await first.start()
            await publish_in_batches(publisher, events[:300], 20)
            await wait_until(lambda: store.count() > 0)
            await first.stop()  # a rolling restart: what it fetched is stored and acknowledged
            await publish_in_batches(publisher, events[300:], 20)  # published while no writer runs
            second = await StreamWriter.connect(NATS_URL, store, settings, durable="writer", fetch_timeout=0.2,
                                                ack_wait=1.0)
            await second.start()
            await wait_until(lambda: store.count() == 600 and second.acked_messages + first.acked_messages == 30)
            await second.stop()
        finally:
            await publisher.close()
        assert first.accepted + second.accepted == 600
        assert first.duplicates == second.duplicates == 0  # a clean stop acknowledged everything it stored

    run(scenario)


def test_a_garbage_message_is_set_aside_and_the_rest_flows(settings: StreamSettings,
                                                           store: SQLiteEventStore) -> None:
    events = make_events(20)

    async def scenario() -> None:
        publisher = await EventPublisher.connect(NATS_URL, settings)
        writer = await StreamWriter.connect(NATS_URL, store, settings, durable="writer", fetch_timeout=0.2)
        try:
            nc = await nats.connect(NATS_URL)
            await nc.jetstream().publish(settings.batch_subject, b'{"events": "no"}', stream=settings.name)
            await nc.close()
            await publisher.publish(events)
            await writer.start()
            await wait_until(lambda: store.count() == 20 and writer.poison_messages == 1)
        finally:
            await writer.stop()
            await publisher.close()

    run(scenario)


def test_large_batches_are_split_under_the_message_size_limit() -> None:
    events = make_events(3000)
    chunks = encode_batches(events, max_bytes=64 * 1024)
    assert len(chunks) > 1 and all(len(body) <= 64 * 1024 for _, body in chunks)
    assert len({msg_id for msg_id, _ in chunks}) == len(chunks)
    assert encode_batches(events, 64 * 1024) == chunks  # same batch, same ids: JetStream dedups a retry
    with pytest.raises(ValueError):
        encode_batches(events[:1], max_bytes=600)
