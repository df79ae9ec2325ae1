"""Every audited request becomes an analytics event that reaches a real ingest receiver."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures.gateway import (
    CALLER_TEAM,
    NAMESPACE,
    TEAM,
    EchoUpstream,
    IngestReceiver,
    serve_app,
    serve_gateway,
    standard_kit,
)
from mcp_runtime.security import KeyRing
from mcp_runtime.sentinel.emitter import Emitter

JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
INGEST_KEY = "mcpr_test-ingest-key"


@pytest.fixture
def ingest() -> Iterator[tuple[IngestReceiver, str]]:
    receiver = IngestReceiver()
    with serve_app(receiver) as base:
        yield receiver, base + "/api/v1/ingest/events"


def call(tool: str, msg_id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "method": "tools/call", "params": {"name": tool, "arguments": {}}}


def test_calls_become_events_with_decision_reason_tool_and_identity(ingest: Any, tmp_path: Path) -> None:
    receiver, ingest_url = ingest
    kit = standard_kit()
    emitter = Emitter(ingest_url=ingest_url, api_key=INGEST_KEY, spool_path=tmp_path / "spool.sqlite",
                      flush_interval=0.05)
    with serve_app(EchoUpstream()) as upstream, \
            serve_gateway(upstream + "/mcp", kit, emitter=emitter) as (url, _gw), \
            httpx.Client(timeout=5) as client:
        token = kit.token("s-cursor", "cursor")
        auth = {**JSON, "Authorization": f"Bearer {token}"}
        traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        assert "result" in client.post(url, headers={**auth, "traceparent": traceparent},
                                       json=call("echo", 1)).json()
        assert "error" in client.post(url, headers=auth, json=call("reverse", 2)).json()
        assert client.post(url, headers=JSON, json=call("echo", 3)).status_code == 401
        other = kit.token("s-cursor", "cursor", keyring=KeyRing.generate())
        assert client.post(url, headers={**JSON, "Authorization": f"Bearer {other}"},
                           json=call("echo", 4)).status_code == 401
        client.post(url, headers=auth, json={"jsonrpc": "2.0", "method": "notifications/initialized"})

        deadline = time.monotonic() + 10
        while len(receiver.events) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        metrics = client.get(url.removesuffix("/mcp") + "/metrics").text

    assert receiver.auth and all(a == f"Bearer {INGEST_KEY}" for a in receiver.auth)
    events = sorted(receiver.events, key=lambda e: e["event_id"])
    assert len(events) == 4  # the notification is not a request: no event
    allowed, denied, anonymous, forged = events
    revision = kit.document().revision
    for event in events:
        assert event["server"] == "data-utility" and event["namespace"] == NAMESPACE
        assert event["team_id"] == TEAM
        assert event["rpc_method"] == "tools/call"
        assert event["policy_revision"] == revision
        assert event["latency_ms"] >= 0 and event["bytes_in"] > 0
    assert allowed["decision"] == "allow" and allowed["reason"] == "allowed"
    assert allowed["tool_name"] == "echo" and allowed["status"] == 200
    assert allowed["human_id"] == "bob@globex.com" and allowed["agent_id"] == "cursor"
    assert allowed["subject_team_id"] == CALLER_TEAM and allowed["session_id"] == "s-cursor"
    assert allowed["matched_grant"] == "g-cursor" and allowed["side_effect"] == "read"
    assert allowed["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert allowed["bytes_out"] > 0
    assert denied["decision"] == "deny" and denied["reason"] == "tool_not_granted"
    assert denied["tool_name"] == "reverse" and denied["agent_id"] == "cursor"
    assert anonymous["decision"] == "deny" and anonymous["reason"] == "missing_identity"
    assert anonymous["status"] == 401 and anonymous["agent_id"] is None
    assert forged["decision"] == "deny" and forged["reason"] == "unknown_key" and forged["human_id"] is None
    # what a replay needs (access simulate): the session as it stood, and a digest of the arguments
    assert all(e["event_version"] == 2 for e in events)
    assert allowed["session_state"] == "active" and allowed["consented_trust"] == "high"
    assert allowed["arguments_digest"] == hashlib.sha256(b"{}").hexdigest()
    assert anonymous["session_state"] is None and forged["session_state"] is None
    assert "mcp_gateway_events_sent_total" in metrics
