"""The decision log is tamper-evident: events a real gateway emits are hash-chained, stored in SQLite and
ClickHouse (chdb), and `mcp-runtime analytics verify` names every record changed, removed or reordered."""

from __future__ import annotations

import itertools
import json
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from fixtures.gateway import EchoUpstream, IngestReceiver, serve_app, serve_gateway, standard_kit
from mcp_runtime.cli.app import app
from mcp_runtime.sentinel.chain import verify
from mcp_runtime.sentinel.clickhouse_store import ChdbExecutor, ClickHouseEventStore
from mcp_runtime.sentinel.emitter import Emitter
from mcp_runtime.sentinel.events import AnalyticsEvent
from mcp_runtime.sentinel.sqlite_store import SQLiteEventStore
from mcp_runtime.sentinel.store import UsageFilter

JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
runner = CliRunner()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> list[AnalyticsEvent]:
    """12 decisions (allowed, denied, unauthenticated) made by a real gateway, as its emitter sent them."""
    receiver = IngestReceiver()
    kit = standard_kit()
    spool = tmp_path_factory.mktemp("spool") / "spool.sqlite"
    with serve_app(receiver) as ingest:
        emitter = Emitter(ingest_url=ingest + "/api/v1/ingest/events", api_key="mcpr_test", spool_path=spool,
                          flush_interval=0.05)
        with serve_app(EchoUpstream()) as upstream, serve_gateway(upstream + "/mcp", kit, emitter=emitter) as (
                url, _gw), httpx.Client(timeout=5) as client:
            auth = {**JSON, "Authorization": f"Bearer {kit.token('s-cursor', 'cursor')}"}
            for i in range(12):
                tool = ("echo", "reverse", "add")[i % 3]
                headers = auth if i != 5 else JSON
                client.post(url, headers=headers, json={"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                                        "params": {"name": tool, "arguments": {"n": i}}})
            deadline = time.monotonic() + 10
            while len(receiver.events) < 12 and time.monotonic() < deadline:
                time.sleep(0.02)
    events = sorted((AnalyticsEvent.model_validate(e) for e in receiver.events), key=lambda e: e.event_id)
    assert len(events) == 12
    return events


def test_gateway_events_form_one_intact_chain(recorded: list[AnalyticsEvent]) -> None:
    assert len({e.chain_id for e in recorded}) == 1
    assert [e.chain_seq for e in recorded] == list(range(12))
    assert recorded[0].prev_hash is None
    assert all(b.prev_hash == a.record_hash for a, b in itertools.pairwise(recorded))
    verdict = verify(recorded)
    assert verdict.ok and verdict.records == 12 and verdict.chains == 1


@pytest.fixture
def sqlite_store(tmp_path: Path, recorded: list[AnalyticsEvent]) -> Iterator[Path]:
    path = tmp_path / "analytics.db"
    store = SQLiteEventStore(path)
    store.insert(recorded)
    store.close()
    yield path


def run_verify(*args: str) -> Any:
    result = runner.invoke(app, ["analytics", "verify", *args, "-o", "json"], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout)


def test_verify_an_untouched_sqlite_store(sqlite_store: Path) -> None:
    code, answer = run_verify("--store", str(sqlite_store))
    assert code == 0 and answer["ok"] and answer["records"] == 12 and answer["problems"] == []
    plain = runner.invoke(app, ["analytics", "verify", "--store", f"sqlite:///{sqlite_store}"])
    assert plain.exit_code == 0 and "12 record(s) in 1 chain(s): intact" in plain.stdout


def tamper(path: Path, sql: str, *params: object) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(sql, params)


def test_verify_names_a_modified_record(sqlite_store: Path, recorded: list[AnalyticsEvent]) -> None:
    denied = next(e for e in recorded if e.decision == "deny")
    tamper(sqlite_store, "UPDATE sentinel_events SET decision = 'allow', reason = 'allowed' WHERE event_id = ?",
           denied.event_id)
    code, answer = run_verify("--store", str(sqlite_store))
    assert code == 1
    assert [(p["kind"], p["eventID"], p["seq"]) for p in answer["problems"]] == [
        ("modified", denied.event_id, denied.chain_seq)]


def test_verify_names_a_removed_record(sqlite_store: Path, recorded: list[AnalyticsEvent]) -> None:
    tamper(sqlite_store, "DELETE FROM sentinel_events WHERE event_id = ?", recorded[4].event_id)
    code, answer = run_verify("--store", str(sqlite_store))
    assert code == 1
    [problem] = answer["problems"]
    assert problem["kind"] == "missing" and problem["seq"] == 4
    assert recorded[3].event_id in problem["detail"] and recorded[5].event_id in problem["detail"]


def test_verify_catches_a_rewritten_link(sqlite_store: Path, recorded: list[AnalyticsEvent]) -> None:
    """Deleting a record and renumbering the rest (hashes recomputed for the renumbered record) still
    breaks the link to the record before it."""
    from mcp_runtime.sentinel.chain import record_hash

    tamper(sqlite_store, "DELETE FROM sentinel_events WHERE event_id = ?", recorded[7].event_id)
    forged = recorded[8].model_copy(update={"chain_seq": 7})
    tamper(sqlite_store, "UPDATE sentinel_events SET chain_seq = 7, record_hash = ? WHERE event_id = ?",
           record_hash(forged), forged.event_id)
    code, answer = run_verify("--store", str(sqlite_store))
    assert code == 1
    assert ("modified", 7) in {(p["kind"], p["seq"]) for p in answer["problems"]}


def test_verify_names_reordered_records_in_an_export(tmp_path: Path, recorded: list[AnalyticsEvent]) -> None:
    lines = [e.model_dump_json() for e in recorded]
    lines[2], lines[6] = lines[6], lines[2]
    export = tmp_path / "events.jsonl"
    export.write_text("\n".join(lines) + "\n")
    code, answer = run_verify("--file", str(export))
    assert code == 1
    kinds = {(p["kind"], p["seq"]) for p in answer["problems"]}
    assert ("reordered", 2) in kinds or ("reordered", 3) in kinds
    assert all(p["kind"] == "reordered" for p in answer["problems"])  # no content changed


def test_verify_refuses_a_file_that_is_not_events(tmp_path: Path) -> None:
    bad = tmp_path / "x.jsonl"
    bad.write_text('{"hello": 1}\n')
    result = runner.invoke(app, ["analytics", "verify", "--file", str(bad)])
    assert result.exit_code == 1 and "x.jsonl:1: not an analytics event" in result.stderr


def test_clickhouse_store_keeps_the_chain_and_catches_tampering(recorded: list[AnalyticsEvent]) -> None:
    with tempfile.TemporaryDirectory(prefix="chdb-") as path:
        executor = ChdbExecutor(path)
        try:
            store = ClickHouseEventStore(executor, database=f"t_{uuid.uuid4().hex[:12]}")
            store.insert(recorded)
            stored = store.events(UsageFilter(), limit=100)
            assert [e.record_hash for e in stored] == [e.record_hash for e in recorded]
            assert verify(stored).ok
            victim = recorded[9]
            executor.command(f"ALTER TABLE {store.table} UPDATE latency_ms = 0.001 "
                             f"WHERE event_id = '{victim.event_id}' SETTINGS mutations_sync = 1")
            executor.command(f"ALTER TABLE {store.table} DELETE WHERE event_id = '{recorded[2].event_id}' "
                             "SETTINGS mutations_sync = 1")
            problems = verify(store.events(UsageFilter(), limit=100)).problems
            assert {(p.kind, p.seq) for p in problems} == {("modified", 9), ("missing", 2)}
        finally:
            executor.close()


def test_older_rows_without_a_chain_are_counted_not_failed(tmp_path: Path, recorded: list[AnalyticsEvent]) -> None:
    path = tmp_path / "analytics.db"
    store = SQLiteEventStore(path)
    store.insert([*recorded, AnalyticsEvent(server="s", namespace="n", rpc_method="tools/call", decision="allow",
                                            status=200, latency_ms=1.0)])
    store.close()
    code, answer = run_verify("--store", str(path))
    assert code == 0 and answer["unchained"] == 1 and answer["records"] == 13


def _client_chain() -> list[AnalyticsEvent]:
    """A chain whose middle records came from OAuth clients (`client_id`) and the rest from adapter tokens."""
    from mcp_runtime.sentinel.chain import EventChain

    chain = EventChain()
    return [chain.link(AnalyticsEvent(server="payments", namespace="mcp-team-acme", rpc_method="tools/call",
                                      decision="allow", status=200, latency_ms=1.0,
                                      client_id="client-4f2a" if i in (1, 2) else None)) for i in range(4)]


def test_records_made_before_client_id_existed_still_verify(recorded: list[AnalyticsEvent]) -> None:
    """A record without a client (or a virtual server) keeps the hash it had before those fields were added
    (its canonical JSON has neither key), so decision logs written by older gateways verify unchanged."""
    import hashlib

    from mcp_runtime.sentinel.chain import record_hash

    event = recorded[0]
    assert event.client_id is None and event.virtual_server is None
    body = event.model_dump(mode="json", exclude={"record_hash", "client_id", "virtual_server"})
    body["timestamp"] = event.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    old_style = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert record_hash(event) == old_style == event.record_hash


@pytest.mark.parametrize("kind", ["sqlite", "clickhouse"])
def test_the_oauth_client_is_stored_chained_and_tamper_evident(tmp_path: Path, kind: str) -> None:
    events = _client_chain()
    executor = ChdbExecutor(str(tmp_path / "chdb")) if kind == "clickhouse" else None
    store: SQLiteEventStore | ClickHouseEventStore = (
        ClickHouseEventStore(executor, database=f"t_{uuid.uuid4().hex[:12]}") if executor is not None
        else SQLiteEventStore(tmp_path / "analytics.db"))
    try:
        store.insert(events)
        stored = store.events(UsageFilter(), limit=10)
        assert [e.client_id for e in stored] == [None, "client-4f2a", "client-4f2a", None]
        assert verify(stored).ok
        forged = [e.model_copy(update={"client_id": "someone-else"}) if e.chain_seq == 1 else e for e in stored]
        assert {(p.kind, p.seq) for p in verify(forged).problems} == {("modified", 1)}
    finally:
        store.close()
        if executor is not None:
            executor.close()
