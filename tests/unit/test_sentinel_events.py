"""The analytics event schema and its UUIDv7 ids."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from mcp_runtime.sentinel import events
from mcp_runtime.sentinel.events import (
    MAX_BATCH_EVENTS,
    AnalyticsEvent,
    IngestBatch,
    event_id_time,
    new_event_id,
)


def make_event(**overrides: object) -> AnalyticsEvent:
    fields: dict[str, object] = {
        "server": "payments", "namespace": "mcp-team-acme", "rpc_method": "tools/call",
        "tool_name": "refund", "decision": "allow", "status": 200, "latency_ms": 1.25,
    }
    fields.update(overrides)
    return AnalyticsEvent.model_validate(fields)


def test_event_id_is_uuid_version_7_with_rfc_variant() -> None:
    value = uuid.UUID(new_event_id())
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert (value.int >> 76) & 0xF == 7
    assert (value.int >> 62) & 0b11 == 0b10


def test_event_ids_sort_in_the_order_they_were_made() -> None:
    ids = [new_event_id() for _ in range(20_000)]  # many share a millisecond
    assert len(set(ids)) == len(ids)
    assert sorted(ids) == ids


def test_event_ids_stay_ordered_when_the_clock_goes_backwards(monkeypatch: pytest.MonkeyPatch) -> None:
    first = new_event_id()
    monkeypatch.setattr(events.time, "time_ns", lambda: 1_000_000_000_000_000)  # 2001: far in the past
    later = [new_event_id() for _ in range(100)]
    assert sorted([first, *later]) == [first, *later]


def test_event_ids_are_unique_across_threads() -> None:
    results: list[list[str]] = [[] for _ in range(8)]

    def make(slot: list[str]) -> None:
        slot.extend(new_event_id() for _ in range(2_000))

    threads = [threading.Thread(target=make, args=(slot,)) for slot in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for slot in results for i in slot]
    assert len(set(everything)) == len(everything)
    assert all(sorted(slot) == slot for slot in results)


def test_event_id_carries_its_creation_time() -> None:
    before = datetime.fromtimestamp(time.time_ns() // 1_000_000 / 1000, tz=UTC)
    made = new_event_id()
    after = datetime.fromtimestamp(time.time_ns() // 1_000_000 / 1000, tz=UTC)
    assert before <= event_id_time(made) <= after


def test_event_id_time_refuses_other_uuid_versions() -> None:
    with pytest.raises(ValueError):
        event_id_time(str(uuid.uuid4()))


def test_event_defaults_give_an_id_and_a_utc_timestamp() -> None:
    event = make_event()
    assert uuid.UUID(event.event_id).version == 7
    assert event.timestamp.tzinfo is not None and event.timestamp.utcoffset() == timedelta(0)
    assert event.human_id is None and event.matched_grant is None
    assert event.source == "gateway"


def test_event_timestamps_are_normalised_to_utc() -> None:
    paris = timezone(timedelta(hours=1))
    aware = make_event(timestamp=datetime(2026, 1, 1, 13, 0, tzinfo=paris))
    assert aware.timestamp == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert aware.timestamp.utcoffset() == timedelta(0)
    naive = make_event(timestamp=datetime(2026, 1, 1, 12, 0))
    assert naive.timestamp == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_event_round_trips_through_json() -> None:
    event = make_event(human_id="bob", agent_id="claude", required_trust="medium", effective_trust="high",
                       side_effect="write", reason="allowed", matched_grant="bob-payments")
    assert AnalyticsEvent.model_validate_json(event.model_dump_json()) == event


@pytest.mark.parametrize("overrides", [
    {"unexpected": "field"},
    {"server": "x" * 254},
    {"matched_grant": "g" * 254},
    {"decision": "maybe"},
    {"required_trust": "extreme"},
    {"side_effect": "explosive"},
    {"status": 42},
    {"latency_ms": -1.0},
    {"latency_ms": float("nan")},
    {"bytes_in": -5},
    {"event_id": "not-a-uuid"},
    {"event_id": str(uuid.uuid4()).upper()},
    {"server": ""},
])
def test_event_rejects_bad_fields(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        make_event(**overrides)


def test_client_chosen_text_is_clipped_not_refused() -> None:
    event = make_event(tool_name="t" * 10_000, rpc_method="m" * 500, trace_id="x" * 300)
    assert event.tool_name == "t" * 128
    assert event.rpc_method == "m" * 128
    assert event.trace_id == "x" * 128


def test_ingest_batch_is_bounded() -> None:
    one = make_event()
    assert len(IngestBatch(events=[one] * MAX_BATCH_EVENTS).events) == MAX_BATCH_EVENTS
    with pytest.raises(ValidationError):
        IngestBatch(events=[one] * (MAX_BATCH_EVENTS + 1))
    with pytest.raises(ValidationError):
        IngestBatch.model_validate({"events": [], "extra": 1})


def test_virtual_server_is_hashed_only_when_set_so_older_records_still_verify() -> None:
    import hashlib
    import json as _json

    from mcp_runtime.sentinel.chain import record_hash

    plain = AnalyticsEvent(server="payments", namespace="ns", rpc_method="tools/call", decision="allow", status=200,
                           latency_ms=1.0)
    body = plain.model_dump(mode="json", exclude={"record_hash", "client_id", "virtual_server"})  # made before them
    body["timestamp"] = plain.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    before = hashlib.sha256(_json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert record_hash(plain) == before
    through = plain.model_copy(update={"virtual_server": "ns/toolbox"})
    assert record_hash(through) != before
    assert record_hash(through) != record_hash(plain.model_copy(update={"virtual_server": "ns/other"}))
