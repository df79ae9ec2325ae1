"""The ingest in NATS mode: batches go to JetStream (real nats-server on 127.0.0.1:4222) and the platform's
background writer stores them, each once, however often a gateway resends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from pathlib import Path

import nats
from nats.js.errors import NotFoundError
from platform_support import platform_settings, serve_platform

from mcp_runtime.sentinel.events import AnalyticsEvent
from mcp_runtime.store.sql import sqlite_url

NATS_URL = "nats://127.0.0.1:4222"


async def _delete_stream(name: str) -> None:
    nc = await nats.connect(NATS_URL)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


def test_ingest_through_jetstream_stores_every_event_once(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:10]
    stream = f"TEST_INGEST_{tag}"
    settings = platform_settings(tmp_path, sqlite_url(tmp_path), nats_url=NATS_URL, nats_stream=stream,
                                 nats_subject_prefix=f"test.ingest.{tag}")
    events = [AnalyticsEvent(server="payments", namespace="mcp-team-acme", rpc_method="tools/call",
                             tool_name="echo", decision="allow", status=200, latency_ms=1.0) for _ in range(50)]
    body = {"events": [json.loads(e.model_dump_json()) for e in events]}
    try:
        with serve_platform(settings) as live:
            assert live.platform.ingest.mode == "nats"
            key = live.platform.ingest_keys.local_key
            for _ in range(2):  # a gateway resending the same batch
                answer = live.call("POST", "/ingest/events", token=key, json=body)
                assert answer.status_code == 202 and answer.json() == {"accepted": 50, "duplicates": 0}
            assert live.call("POST", "/ingest/events", token="mcpr_wrong", json=body).status_code == 401
            deadline = time.monotonic() + 20
            while live.platform.events.count() < 50 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # a second copy would land now if it were going to
            assert live.platform.events.count() == 50
    finally:
        asyncio.run(_delete_stream(stream))
