"""Zero loss: tool calls through the real gateway, its Emitter posting to the platform's real ingest, with
the platform (and so the ingest) stopped for part of the run. Every call is stored exactly once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from platform_support import free_port, platform_settings, serve_platform

from fixtures.gateway import EchoUpstream, serve_app, serve_gateway, standard_kit
from mcp_runtime.sentinel.emitter import Emitter
from mcp_runtime.sentinel.sqlite_store import SQLiteEventStore
from mcp_runtime.sentinel.store import UsageFilter
from mcp_runtime.store.sql import sqlite_url

JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
CALLS = 1000


def _call(client: httpx.Client, url: str, headers: dict[str, str], msg_id: int) -> None:
    tool = ("echo", "add", "upper", "ping")[msg_id % 4]
    answer = client.post(url, headers=headers, json={"jsonrpc": "2.0", "id": msg_id, "method": "tools/call",
                                                     "params": {"name": tool, "arguments": {}}})
    assert answer.status_code == 200 and "result" in answer.json(), answer.text


def test_thousand_calls_with_the_ingest_down_for_a_while_are_all_stored_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "platform"
    data_dir.mkdir()
    settings = platform_settings(data_dir, sqlite_url(data_dir))
    port = free_port()
    ingest_url = f"http://127.0.0.1:{port}/api/v1/ingest/events"
    kit = standard_kit()
    headers = {**JSON, "Authorization": f"Bearer {kit.token('s-cursor', 'cursor')}"}
    sent = 0
    with serve_platform(settings, port=port) as first:
        key = first.platform.ingest_keys.local_key
    # the gateway starts while the ingest is down: the emitter spools from the first call
    emitter = Emitter(ingest_url=ingest_url, api_key=key, spool_path=tmp_path / "gateway-spool.db",
                      flush_interval=0.02, backoff_initial=0.05, backoff_max=0.3)
    with serve_app(EchoUpstream()) as upstream, serve_gateway(upstream + "/mcp", kit, emitter=emitter) as (url, _), \
            httpx.Client(timeout=10) as client:
        for _ in range(150):  # ingest down
            _call(client, url, headers, sent)
            sent += 1
        with serve_platform(settings, port=port) as live:  # up
            for _ in range(400):
                _call(client, url, headers, sent)
                sent += 1
        for _ in range(250):  # down again, mid-run
            _call(client, url, headers, sent)
            sent += 1
        assert emitter.spool.depth > 0 or emitter.metrics.spooled._value.get() > 0  # type: ignore[attr-defined]
        with serve_platform(settings, port=port) as live:  # back for good
            for _ in range(CALLS - sent):
                _call(client, url, headers, sent)
                sent += 1
            deadline = time.monotonic() + 30
            while live.platform.events.count() < CALLS and time.monotonic() < deadline:
                time.sleep(0.05)
            stored = live.platform.events.count()
            spooled = emitter.metrics.spooled._value.get()  # type: ignore[attr-defined]
    assert sent == CALLS
    assert stored == CALLS, f"{stored} of {CALLS} events stored"
    assert spooled >= 150  # the ingest really was down: the first calls went through the spool
    assert emitter.metrics.dropped._value.get() == 0  # type: ignore[attr-defined]
    store = SQLiteEventStore(data_dir / "analytics.db")
    try:
        totals = store.totals(UsageFilter())
        rows: list[Any] = store.events(UsageFilter(), limit=CALLS + 10)
    finally:
        store.close()
    assert totals.events == CALLS and totals.allowed == CALLS
    assert len({e.event_id for e in rows}) == CALLS == len(rows)
    assert {e.tool_name for e in rows} == {"echo", "add", "upper", "ping"}
    assert all(e.agent_id == "cursor" and e.human_id == "bob@globex.com" for e in rows)
