"""Analytics at scale: ingest -> NATS JetStream -> writer -> `EventStore`, at least once, nothing lost.

    # the ingest endpoint (one connection per process)
    publisher = await EventPublisher.connect("nats://nats:4222")
    await publisher.publish(batch.events)        # returns once JetStream has stored the batch
    # answer 202 {"accepted": len(batch.events), "duplicates": 0}: duplicates are only known to the
    # store, which absorbs them; on an exception answer 503 so the emitter keeps the batch and retries
    ...
    await publisher.close()

    # the writer (any number of replicas share one durable consumer)
    writer = await StreamWriter.connect("nats://nats:4222", store)
    await writer.start()
    ...
    await writer.stop()

Why: the ingest answers as soon as JetStream has persisted a batch, so a slow or restarting store never
pushes back on gateways; the writer inserts at the store's pace. Guarantees:

- The stream (`StreamSettings`, subjects `<prefix>.>`) is created when missing, file storage, with a
  size and age limit. `discard=new`: a full stream refuses new batches (the ingest answers an error, the
  gateway's emitter spools and retries) instead of silently deleting old, unwritten ones.
- Publishing sets `Nats-Msg-Id` to a hash of the batch's event ids, so an ingest retry of the same batch
  within the duplicate window is stored once by JetStream.
- The writer acknowledges a message only after the store accepted its events. A failed insert is
  negatively acknowledged (redelivered after `retry_delay`); a writer that dies before acknowledging
  gets its messages redelivered after `ack_wait`. Redeliveries are absorbed by the store's idempotency
  on `event_id`. Only a message that is not an event batch at all is terminated, with an error log and
  the `poison` count.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from mcp_runtime.sentinel.events import MAX_BATCH_EVENTS, AnalyticsEvent, IngestBatch
from mcp_runtime.sentinel.store import EventStore, InsertResult

logger = logging.getLogger("mcp_runtime.sentinel.nats")

_HEADER_ROOM = 512  # bytes kept free in a message for the subject and headers
# nats-py gives up after 60 attempts (about two minutes) by default and closes the connection for good,
# which would leave the ingest answering 503 and the writer idle after a longer NATS outage
RECONNECT_FOREVER: dict[str, Any] = {"max_reconnect_attempts": -1, "reconnect_time_wait": 1}


@dataclass(frozen=True)
class StreamSettings:
    """The JetStream stream events travel through."""

    name: str = "MCP_EVENTS"
    subject_prefix: str = "mcp.events"
    max_bytes: int = 1024**3  # what JetStream may hold unwritten (e.g. while the store is down)
    max_age_seconds: float = 7 * 86400.0
    duplicate_window_seconds: float = 120.0
    replicas: int = 1

    @property
    def subjects(self) -> str:
        return f"{self.subject_prefix}.>"

    @property
    def batch_subject(self) -> str:
        return f"{self.subject_prefix}.batch"


async def ensure_stream(js: JetStreamContext, settings: StreamSettings) -> StreamInfo:
    """The stream's info, creating it first when it does not exist (an existing one is left as is)."""
    try:
        return await js.stream_info(settings.name)
    except NotFoundError:
        pass
    config = StreamConfig(
        name=settings.name, subjects=[settings.subjects], retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE, discard=DiscardPolicy.NEW, max_bytes=settings.max_bytes,
        max_age=settings.max_age_seconds, duplicate_window=settings.duplicate_window_seconds,
        num_replicas=settings.replicas,
    )
    return await js.add_stream(config)


def encode_batches(events: Sequence[AnalyticsEvent], max_bytes: int) -> list[tuple[str, bytes]]:
    """`(Nats-Msg-Id, body)` pairs: the events as `{"events": [...]}` bodies under `max_bytes` each."""
    limit = max_bytes - _HEADER_ROOM
    chunks: list[tuple[str, bytes]] = []
    current: list[bytes] = []
    ids: list[str] = []
    size = len(b'{"events":[]}')

    def flush() -> None:
        nonlocal current, ids, size
        if current:
            digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()
            chunks.append((digest, b'{"events":[' + b",".join(current) + b"]}"))
        current, ids, size = [], [], len(b'{"events":[]}')

    for event in events:
        encoded = event.model_dump_json().encode()
        if len(encoded) + len(b'{"events":[]}') > limit:
            raise ValueError(f"event {event.event_id} is larger than a NATS message may be ({limit} bytes)")
        if current and (size + len(encoded) + 1 > limit or len(current) >= MAX_BATCH_EVENTS):
            flush()
        current.append(encoded)
        ids.append(event.event_id)
        size += len(encoded) + 1
    flush()
    return chunks


class EventPublisher:
    """The ingest's side: puts event batches on the stream and waits until JetStream stored them."""

    def __init__(self, nc: NatsClient, settings: StreamSettings = StreamSettings(), *,
                 owns_connection: bool = False) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self.settings = settings
        self._owns_connection = owns_connection
        self.published_messages = 0
        self.duplicate_messages = 0

    @classmethod
    async def connect(cls, servers: str | list[str], settings: StreamSettings = StreamSettings(),
                      **options: object) -> EventPublisher:
        nc = await nats.connect(servers, **{**RECONNECT_FOREVER, **options})
        publisher = cls(nc, settings, owns_connection=True)
        await ensure_stream(publisher._js, settings)
        return publisher

    async def publish(self, events: Sequence[AnalyticsEvent], timeout: float = 5.0) -> int:
        """Store `events` in the stream; returns the number of messages. Raises when JetStream did not
        confirm (unreachable, stream full): the caller must then answer an error so the sender retries."""
        messages = encode_batches(events, self._nc.max_payload)
        for msg_id, body in messages:
            ack = await self._js.publish(self.settings.batch_subject, body, timeout=timeout,
                                         stream=self.settings.name, headers={"Nats-Msg-Id": msg_id})
            self.published_messages += 1
            if ack.duplicate:
                self.duplicate_messages += 1
        return len(messages)

    async def close(self) -> None:
        if self._owns_connection and not self._nc.is_closed:
            await self._nc.drain()


class StreamWriter:
    """The writer: a durable pull consumer that inserts batches into a store and acks only after that.

    Run several with the same `durable` name to share the work. `fetch_batch` messages are inserted in
    one `store.insert` call (one transaction on SQLite, one insert on ClickHouse).
    """

    def __init__(self, nc: NatsClient, store: EventStore, settings: StreamSettings = StreamSettings(), *,
                 durable: str = "sentinel-writer", fetch_batch: int = 64, fetch_timeout: float = 1.0,
                 ack_wait: float = 30.0, retry_delay: float = 2.0, owns_connection: bool = False) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self.store = store
        self.settings = settings
        self.durable = durable
        self.fetch_batch = fetch_batch
        self.fetch_timeout = fetch_timeout
        self.ack_wait = ack_wait
        self.retry_delay = retry_delay
        self._owns_connection = owns_connection
        self._sub: JetStreamContext.PullSubscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        # what a metrics exporter or a test reads
        self.accepted = 0
        self.duplicates = 0
        self.acked_messages = 0
        self.failed_inserts = 0
        self.poison_messages = 0

    @classmethod
    async def connect(cls, servers: str | list[str], store: EventStore,
                      settings: StreamSettings = StreamSettings(), **kwargs: object) -> StreamWriter:
        nc = await nats.connect(servers, **RECONNECT_FOREVER)
        return cls(nc, store, settings, owns_connection=True, **kwargs)  # type: ignore[arg-type]

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        if self._sub is None:
            await ensure_stream(self._js, self.settings)
            config = ConsumerConfig(
                durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                ack_wait=self.ack_wait, max_deliver=-1, max_ack_pending=max(1000, self.fetch_batch * 4),
                filter_subject=self.settings.subjects,
            )
            self._sub = await self._js.pull_subscribe(self.settings.subjects, durable=self.durable,
                                                      stream=self.settings.name, config=config)
        return self._sub

    async def start(self) -> None:
        """Subscribe (creating the stream and durable consumer if missing) and consume in the background."""
        await self._subscribe()
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"sentinel-writer-{self.durable}")

    async def _run(self) -> None:
        failing_since: float | None = None
        last_note = 0.0
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken connection is retried by nats-py; keep the loop alive
                now = asyncio.get_running_loop().time()
                if failing_since is None:
                    failing_since, last_note = now, now
                    logger.exception("analytics writer: fetching from JetStream failed; retrying")
                elif now - last_note >= 30:
                    last_note = now
                    logger.error("analytics writer: JetStream still unreachable after %.0fs (%s: %s)",
                                 now - failing_since, type(exc).__name__, exc)
                await asyncio.sleep(min(self.retry_delay, 1.0))
                continue
            if failing_since is not None:
                logger.info("analytics writer: JetStream is back after %.0fs; writing resumed",
                            asyncio.get_running_loop().time() - failing_since)
                failing_since = None

    async def run_once(self) -> int:
        """Fetch one round of messages and store them; the number of messages handled (0 when idle)."""
        sub = await self._subscribe()
        try:
            messages = await sub.fetch(self.fetch_batch, timeout=self.fetch_timeout)
        except NatsTimeoutError:
            return 0
        await self._handle(messages)
        return len(messages)

    async def _handle(self, messages: list[Msg]) -> None:
        good: list[Msg] = []
        events: list[AnalyticsEvent] = []
        for msg in messages:
            try:
                events.extend(IngestBatch.model_validate_json(msg.data).events)
                good.append(msg)
            except ValidationError as exc:
                self.poison_messages += 1
                logger.error("analytics writer: dropping a message that is not an event batch "
                             "(stream %s, sequence %s): %s", self.settings.name,
                             getattr(msg.metadata.sequence, "stream", "?"), exc.errors()[:3])
                await msg.term()
        if not good:
            return
        try:
            result: InsertResult = await asyncio.to_thread(self.store.insert, events)
        except Exception:
            self.failed_inserts += 1
            logger.exception("analytics writer: storing %d events failed; they will be redelivered",
                             len(events))
            for msg in good:
                with contextlib.suppress(Exception):
                    await msg.nak(delay=self.retry_delay)
            return
        self.accepted += result.accepted
        self.duplicates += result.duplicates
        for msg in good:
            await msg.ack()
            self.acked_messages += 1

    async def stop(self) -> None:
        """Finish the round in progress (its messages are stored and acked), then stop and disconnect."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._sub is not None:
            # not drain(): draining a pull subscription waits for its drain timeout (nats-py)
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        if self._owns_connection and not self._nc.is_closed:
            await self._nc.flush()  # the acks just sent reach the server before we hang up
            await self._nc.close()

    async def abort(self) -> None:
        """Stop at once, as a crash would: no more acks; whatever was fetched but not acked is
        redelivered to another writer after `ack_wait`."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if not self._nc.is_closed:
            await self._nc.close()
