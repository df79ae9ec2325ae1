"""Deliver analytics events to the Sentinel ingest off the request path, losing none.

    em = Emitter(ingest_url="http://platform/api/v1/ingest/events", api_key=key, spool_path=path)
    await em.start()
    em.emit(event)      # sync, never blocks on the network, never raises
    await em.close()    # send what it can, spool the rest

`emit` appends to a bounded in-memory buffer. A background asyncio task sends the buffer in batches
(every `batch_size` events or `flush_interval` seconds) over one pooled `httpx.AsyncClient`. Whatever
cannot be delivered goes to a durable SQLite spool (`EventSpool`), and the spool is always replayed,
oldest first, before newer events are sent: events reach the ingest in emission order, and a batch is
only removed from the spool after a 2xx, so an event may arrive twice (the ingest deduplicates on
`event_id`) but is never lost. While the ingest is failing the task retries with capped exponential
backoff and jitter; between attempts it keeps moving new events from memory to the spool.

Order has one exception: when the in-memory buffer is full (`queue_size`, the ingest far behind), `emit`
spools the event at once, ahead of older events still in memory. Nothing is lost, and `event_id`
(UUIDv7) still sorts events in emission order.

Without an `ingest_url` the emitter only spools: a gateway running offline keeps every event on disk
until an emitter with an ingest URL is started on the same spool file.

Nothing is dropped silently: the only ways an event is not kept are a full spool (or one that cannot
be written), or an `emit` after `close()`; each is counted in `mcp_gateway_events_dropped_total` and
logged.

The metrics go on the `registry` given (default: a private one); use one Emitter per registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge

from mcp_runtime.sentinel.events import MAX_BATCH_EVENTS, AnalyticsEvent
from mcp_runtime.sentinel.spool import EventSpool

logger = logging.getLogger("mcp_runtime.sentinel.emitter")

_DROP_LOG_INTERVAL = 10.0  # seconds between "dropped" log lines while drops continue


class _Outcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"  # connection error, timeout, 5xx, 429: the ingest is (temporarily) unavailable
    REJECTED = "rejected"  # other 4xx: the ingest refuses this request as made (key, URL, version)


class EmitterMetrics:
    """The emitter's Prometheus series, on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.emitted = Counter("mcp_gateway_events_emitted", "Analytics events handed to the emitter.",
                               registry=registry)
        self.sent = Counter("mcp_gateway_events_sent", "Analytics events the ingest accepted (2xx).",
                            registry=registry)
        self.spooled = Counter("mcp_gateway_events_spooled",
                               "Analytics events written to the local spool for a later replay.",
                               registry=registry)
        self.failed = Counter("mcp_gateway_events_failed",
                              "Analytics events in requests the ingest rejected with a 4xx "
                              "(counted per attempt; the events stay spooled).", registry=registry)
        self.dropped = Counter("mcp_gateway_events_dropped",
                               "Analytics events lost: spool full or unwritable, or emitted after close.",
                               registry=registry)
        self.spool_depth = Gauge("mcp_gateway_event_spool_depth", "Analytics events waiting in the spool.",
                                 registry=registry)


class Emitter:
    """Batches analytics events to the ingest; spools and replays them when it is unreachable.

    A 4xx answer other than 429 is counted in `..._failed_total` and logged, and the batch is spooled
    like any undelivered batch rather than thrown away: such answers (401/403 wrong or rotated ingest
    key, 404 wrong URL, 400/422 an ingest older than this gateway) come from configuration an operator
    fixes, after which the spooled events replay. Dropping them would lose the audit trail exactly
    when something is misconfigured. The spool is bounded, so this cannot fill the disk.
    """

    def __init__(
        self,
        ingest_url: str | None,
        api_key: str | None,
        spool_path: Path | str | None = None,
        registry: CollectorRegistry | None = None,
        batch_size: int = 100,
        flush_interval: float = 0.2,
        queue_size: int = 10_000,
        timeout: float = 5,
        max_spool_events: int = 1_000_000,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        """`spool_path=None` keeps the spool in memory: bounded and ordered, but gone with the process."""
        if not 1 <= batch_size <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_EVENTS}")
        if queue_size < 1 or flush_interval <= 0 or timeout <= 0:
            raise ValueError("queue_size, flush_interval and timeout must be positive")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError("backoff_initial must be positive and at most backoff_max")
        if ingest_url is not None and not api_key:
            raise ValueError("an ingest_url needs an api_key (the ingest requires one)")
        self.ingest_url = ingest_url
        self._api_key = api_key
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.queue_size = queue_size
        self.timeout = timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max

        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = EmitterMetrics(self.registry)
        self.spool = EventSpool(spool_path, max_events=max_spool_events)
        self.metrics.spool_depth.set_function(lambda: float(self.spool.depth))

        self._buffer: deque[AnalyticsEvent] = deque()
        self._buffer_lock = threading.Lock()
        self._spool_write_lock = threading.Lock()  # keeps spool appends in the order they were decided
        self._closed = False
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._failures = 0
        self._retry_at = 0.0  # monotonic time before which no send is attempted
        self._last_drop_log = 0.0
        self._drops_since_log = 0
        self._spool_full = False  # logged once when it fills, once when it has room again

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background sender on the running event loop (idempotent)."""
        if self._task is not None:
            return
        if self._closed:
            raise RuntimeError("emitter is closed")
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self.ingest_url is not None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
                headers={"Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json"},
            )
        if self.spool.depth:
            logger.info("event spool holds %d events from before; replaying them first", self.spool.depth)
        self._task = asyncio.create_task(self._run(), name="sentinel-emitter")

    async def close(self) -> None:
        """Send what can be sent now, spool everything else, stop the task, close the spool.

        The final send is bounded by `timeout` per request and is skipped while backing off from a
        failing ingest, so closing never waits long for an ingest that is down.
        """
        if self._closed:
            return
        self._stopping = True
        task = self._task
        if task is not None and self._wake is not None:
            self._wake.set()
            try:
                await task
            except Exception:  # the loop logs its own errors; what matters now is the spool below
                logger.exception("event emitter task failed while closing")
        self._closed = True
        # events emitted before start() or raced in during shutdown
        self._spool_events(self._take_all())
        if self._client is not None:
            await self._client.aclose()
        self.spool.close()

    async def __aenter__(self) -> Emitter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the request path ----------------------------------------------------------------------------

    def emit(self, event: AnalyticsEvent) -> None:
        """Queue `event` for delivery. Sync and cheap; never blocks on the network, never raises.

        When the in-memory buffer is full (the ingest cannot keep up) the event is written to the spool
        right here; this is the one case where the caller pays for a disk write.
        """
        try:
            self.metrics.emitted.inc()
            if self._closed:
                self._record_drop(1, "emitted after the emitter was closed")
                return
            with self._buffer_lock:
                queued = len(self._buffer) < self.queue_size
                if queued:
                    self._buffer.append(event)
                full_batch = queued and len(self._buffer) == self.batch_size
            if not queued:
                self._spool_events([event])
            elif full_batch:
                self._wake_sender()
        except Exception:  # never let analytics break a request
            logger.exception("event emitter failed to queue an event")
            with contextlib.suppress(Exception):
                self._record_drop(1, "internal error")

    # -- the background task -------------------------------------------------------------------------

    def _wake_sender(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: close() spools the buffer
                loop.call_soon_threadsafe(wake.set)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval)
            self._wake.clear()
            stopping = self._stopping
            try:
                await self._pump(final=stopping)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("event emitter loop error; events stay in memory or in the spool")
                self._note_failure()
            if stopping:
                return

    async def _pump(self, *, final: bool = False) -> None:
        """Deliver the spool (oldest first), then the buffer; on failure spool the buffer and back off."""
        if self._client is None or time.monotonic() < self._retry_at:
            await self._spool_buffer()
            return
        # 1. the spool first: it holds the oldest events. When closing, give the replay only `timeout`
        #    seconds: what is left replays after the next start.
        deadline = time.monotonic() + self.timeout if final else float("inf")
        while self.spool.depth:
            if time.monotonic() > deadline:
                await self._spool_buffer()
                return
            rows = await asyncio.to_thread(self.spool.peek, self.batch_size)
            if not rows:
                break
            outcome = await self._send([r.payload for r in rows])
            if outcome is not _Outcome.SENT:
                await self._spool_buffer()
                return
            await asyncio.to_thread(self.spool.ack, [r.seq for r in rows])
            self.metrics.sent.inc(len(rows))
        # 2. then new events, straight from memory
        while True:
            batch = self._take(self.batch_size)
            if not batch:
                return
            try:
                payloads = [e.model_dump_json() for e in batch]
                outcome = await self._send(payloads)
            except BaseException:
                # cancelled or broken mid-send: these events left the buffer, so they go to the spool
                self._spool_events_quietly(batch)
                raise
            if outcome is _Outcome.SENT:
                self.metrics.sent.inc(len(batch))
                continue
            await asyncio.to_thread(self._spool_payloads, payloads)
            await self._spool_buffer()
            return

    async def _send(self, payloads: Sequence[str]) -> _Outcome:
        """POST one batch; classify the answer; keep the backoff state."""
        assert self._client is not None and self.ingest_url is not None
        body = ('{"events":[' + ",".join(payloads) + "]}").encode()
        try:
            response = await self._client.post(self.ingest_url, content=body)
        except httpx.HTTPError as exc:
            logger.warning("event ingest unreachable (%s: %s); spooling %d events",
                           type(exc).__name__, exc, len(payloads))
            self._note_failure()
            return _Outcome.RETRY
        status = response.status_code
        if 200 <= status < 300:
            if self._failures:
                logger.info("event ingest is back; delivery resumed")
            self._failures = 0
            self._retry_at = 0.0
            return _Outcome.SENT
        if status == 429 or status >= 500:
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            logger.warning("event ingest answered %d; spooling %d events", status, len(payloads))
            self._note_failure(retry_after)
            return _Outcome.RETRY
        self.metrics.failed.inc(len(payloads))
        logger.error("event ingest rejected %d events with HTTP %d (%s); they stay in the spool until "
                     "this is fixed (check the ingest URL and API key)",
                     len(payloads), status, response.text[:200])
        self._note_failure()
        return _Outcome.REJECTED

    def _note_failure(self, retry_after: float | None = None) -> None:
        """Schedule the next attempt: capped exponential backoff with jitter, or the server's hint."""
        self._failures += 1
        ceiling = min(self.backoff_max, self.backoff_initial * (2 ** min(self._failures - 1, 30)))
        delay = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            delay = min(self.backoff_max, max(delay, retry_after))
        self._retry_at = time.monotonic() + delay

    # -- buffer and spool ----------------------------------------------------------------------------

    def _take(self, limit: int) -> list[AnalyticsEvent]:
        with self._buffer_lock:
            count = min(limit, len(self._buffer))
            return [self._buffer.popleft() for _ in range(count)]

    def _take_all(self) -> list[AnalyticsEvent]:
        with self._buffer_lock:
            events = list(self._buffer)
            self._buffer.clear()
            return events

    async def _spool_buffer(self) -> None:
        """Move everything in memory to the spool, preserving order (off the event loop)."""
        events = self._take_all()
        if events:
            await asyncio.to_thread(self._spool_events, events)

    def _spool_events_quietly(self, events: list[AnalyticsEvent]) -> None:
        with contextlib.suppress(Exception):
            self._spool_events(events)

    def _spool_events(self, events: list[AnalyticsEvent]) -> None:
        if events:
            self._spool_payloads([e.model_dump_json() for e in events])

    def _spool_payloads(self, payloads: Sequence[str]) -> None:
        """Append to the spool; whatever does not fit (or cannot be written) is a counted, logged drop."""
        try:
            with self._spool_write_lock:
                stored = self.spool.append(payloads)
        except Exception as exc:
            logger.error("event spool write failed: %s", exc)
            stored = 0
        if stored:
            self.metrics.spooled.inc(stored)
        if stored < len(payloads):
            full = not self.spool.closed and self.spool.depth >= self.spool.max_events
            if full and not self._spool_full:
                self._spool_full = True
                logger.error("the analytics event spool is full (%d events in %s): new events are DROPPED "
                             "until the ingest at %s takes events again; fix the ingest, or give the spool "
                             "more room (max_spool_events)", self.spool.max_events,
                             self.spool.path or "memory", self.ingest_url or "(none configured)")
            reason = (f"spool full ({self.spool.max_events} events)" if not self.spool.closed
                      else "spool closed")
            self._record_drop(len(payloads) - stored, reason)
        elif self._spool_full and self.spool.depth < self.spool.max_events:
            self._spool_full = False
            logger.warning("the analytics event spool has room again (%d of %d events)", self.spool.depth,
                           self.spool.max_events)

    def _record_drop(self, count: int, reason: str) -> None:
        self.metrics.dropped.inc(count)
        self._drops_since_log += count
        now = time.monotonic()
        if self._last_drop_log == 0.0 or now - self._last_drop_log >= _DROP_LOG_INTERVAL:
            logger.error("dropped %d analytics events: %s", self._drops_since_log, reason)
            self._drops_since_log = 0
            self._last_drop_log = now


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
