"""The Sentinel ingest: who may send events (ingest keys, stored hashed) and where they go.

    keys = IngestKeys(store, settings)      # creates the local key on first start
    keys.local_key                          # what an in-process gateway's Emitter sends
    keys.verify(bearer)                     # constant-time against every stored hash
    ingest = IngestService(event_store, settings)
    result = await ingest.ingest(events)    # straight into the store, or through NATS JetStream

Ingest keys are not user API keys: a user's key must never be able to write analytics (it would let any
user forge the audit trail), and an ingest key can do nothing but ingest. With no key configured the
platform generates one (written to `data_dir/ingest-api-key`, mode 0600, for gateways on this machine);
there is no way to run the ingest open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from mcp_runtime.platform.checkpoints import ChainHeads
from mcp_runtime.platform.settings import PlatformSettings
from mcp_runtime.security.secrets import API_KEY_PREFIX, hash_secret, new_api_key, secret_matches
from mcp_runtime.sentinel.events import AnalyticsEvent, IngestResult
from mcp_runtime.sentinel.store import EventStore
from mcp_runtime.store import ControlPlaneStore

log = logging.getLogger("mcp_runtime.platform.ingest")

INGEST_KEYS_SETTING = "sentinel_ingest_keys"
LOCAL_KEY_FILE = "ingest-api-key"
_RELOAD_INTERVAL = 2.0  # seconds between reloads of the stored hashes after an unknown key


class IngestKeys:
    """Named ingest keys, kept as SHA-256 hashes in the control-plane store's settings."""

    def __init__(self, store: ControlPlaneStore, settings: PlatformSettings) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._hashes: dict[str, str] = {}
        self._loaded_at = 0.0
        if settings.ingest_api_key:
            self.local_key = settings.ingest_api_key
            self.register("configured", settings.ingest_api_key)
        else:
            self.local_key = self._local_key(Path(settings.data_dir))
        self._reload()

    def _read(self) -> dict[str, dict[str, str]]:
        raw = self._store.get_setting(INGEST_KEYS_SETTING)
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            log.error("the stored ingest keys are not valid JSON; ignoring them")
            data = {}
        return data if isinstance(data, dict) else {}

    def _reload(self) -> None:
        self._hashes = {name: entry["hash"] for name, entry in self._read().items()
                        if isinstance(entry, dict) and isinstance(entry.get("hash"), str)}
        self._loaded_at = time.monotonic()

    def register(self, name: str, key: str) -> None:
        """Store (or replace) the hash of the key called `name`."""
        with self._lock:
            data = self._read()
            data[name] = {"hash": hash_secret(key), "prefix": key[: len(API_KEY_PREFIX) + 6],
                          "createdAt": datetime.now(UTC).isoformat()}
            self._store.set_setting(INGEST_KEYS_SETTING, json.dumps(data, sort_keys=True))
            self._reload()

    def _local_key(self, data_dir: Path) -> str:
        """The key of this machine's gateways: reused from the 0600 file when its hash is still stored."""
        path = data_dir / LOCAL_KEY_FILE
        stored = self._read().get("local", {}).get("hash")
        with contextlib.suppress(OSError):
            existing = path.read_text().strip()
            if existing and stored and secret_matches(existing, stored):
                return existing
        key = new_api_key()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        self.register("local", key)
        log.info("created the ingest API key for local gateways in %s", path)
        return key

    def known(self, bearer: str | None) -> bool:
        """True when `bearer` matches a hash already loaded (no I/O: safe on the event loop)."""
        return bool(bearer) and self._matches(bearer)  # type: ignore[arg-type]

    def verify(self, bearer: str | None) -> bool:
        """True when `bearer` is a stored ingest key. Unknown keys reload the hashes (rate limited), so a
        key registered by another replica is accepted within seconds."""
        if not bearer:
            return False
        if self._matches(bearer):
            return True
        if time.monotonic() - self._loaded_at >= _RELOAD_INTERVAL:
            with self._lock:
                self._reload()
            return self._matches(bearer)
        return False

    def _matches(self, bearer: str) -> bool:
        found = False
        for hashed in list(self._hashes.values()):  # no early exit: same work whichever key matches
            found = secret_matches(bearer, hashed) or found
        return found


class IngestService:
    """Writes ingested batches to the event store, or publishes them to NATS JetStream (`nats_url`) with a
    background writer moving them into the store (`nats_writer`)."""

    def __init__(self, store: EventStore, settings: PlatformSettings, heads: ChainHeads | None = None) -> None:
        self.store = store
        self.heads = heads
        """The decision chains' heads as ingested, for the signed checkpoints (checkpoints.py)."""
        self.nats_url = settings.nats_url
        self.run_writer = settings.nats_writer
        self.stream = (settings.nats_stream, settings.nats_subject_prefix)
        self._publisher: Any = None
        self._writer: Any = None
        self._start_lock: asyncio.Lock | None = None

    @property
    def mode(self) -> str:
        return "nats" if self.nats_url else "direct"

    async def start(self) -> None:
        """Connect to NATS and start the writer (NATS mode; nothing to do otherwise). Idempotent."""
        if not self.nats_url or self._publisher is not None:
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._publisher is not None:
                return
            from mcp_runtime.sentinel.nats_pipeline import EventPublisher, StreamSettings, StreamWriter

            stream = StreamSettings(name=self.stream[0], subject_prefix=self.stream[1])
            publisher = await EventPublisher.connect(self.nats_url, stream)
            if self.run_writer:
                writer = await StreamWriter.connect(self.nats_url, self.store, stream)
                await writer.start()
                self._writer = writer
            self._publisher = publisher

    async def ingest(self, events: Sequence[AnalyticsEvent]) -> IngestResult:
        """Store the batch (idempotent on event_id). In NATS mode the answer counts every event as
        accepted once JetStream stored the batch: duplicates are only known to the store, which drops them."""
        if self.heads is not None:
            self.heads.observe(events)
        if self.nats_url:
            await self.start()
            await self._publisher.publish(events)
            return IngestResult(accepted=len(events), duplicates=0)
        result = await run_in_threadpool(self.store.insert, events)
        return IngestResult(accepted=result.accepted, duplicates=result.duplicates)

    async def close(self) -> None:
        writer, publisher = self._writer, self._publisher
        self._writer = self._publisher = None
        if writer is not None:
            await writer.stop()
        if publisher is not None:
            await publisher.close()
