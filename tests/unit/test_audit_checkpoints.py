"""Signed checkpoints (platform/checkpoints.py): what is signed, what verifies, and that idle chains are let go."""

from __future__ import annotations

from datetime import UTC, datetime

from mcp_runtime.platform.checkpoints import ChainHeads, Checkpointer, sign_checkpoint, signature_valid
from mcp_runtime.security import KeyRing
from mcp_runtime.sentinel.chain import EventChain
from mcp_runtime.sentinel.events import AnalyticsEvent
from mcp_runtime.store import AuditRecord
from mcp_runtime.store.sql import SqlStore


def _event(chain: EventChain) -> AnalyticsEvent:
    return chain.link(AnalyticsEvent(server="s", namespace="n", rpc_method="tools/call", tool_name="t",
                                     decision="allow", reason="allowed", status=200, latency_ms=1.0))


def test_a_checkpoint_verifies_only_unchanged_and_with_the_platform_s_keys() -> None:
    ring = KeyRing.generate()
    checkpoint = sign_checkpoint(ring, {"gw-1": (4, "ab" * 32)}, datetime(2026, 12, 6, tzinfo=UTC))
    assert signature_valid(checkpoint, ring.public_keys())
    assert not signature_valid({**checkpoint, "chains": [{"chainID": "gw-1", "seq": 3, "headHash": "ab" * 32}]},
                               ring.public_keys())
    assert not signature_valid(checkpoint, KeyRing.generate().public_keys())
    assert not signature_valid({**checkpoint, "signature": "not base64!"}, ring.public_keys())


def test_only_moved_heads_are_signed_and_idle_chains_are_let_go(tmp_path: object) -> None:
    store = SqlStore.open(f"sqlite:///{tmp_path}/cp.db")
    heads = ChainHeads()
    checkpointer = Checkpointer(store, KeyRing.generate(), heads, interval=0)
    busy, idle = EventChain("gw-busy"), EventChain("gw-idle")
    heads.observe([_event(busy), _event(idle), _event(busy)])
    store.append_audit(AuditRecord(actor="a@example.com", action="create", kind="Team", name="t"))
    first = checkpointer.checkpoint()
    assert first is not None
    assert {(c["chainID"], c["seq"]) for c in first["chains"]} == {("gw-busy", 1), ("gw-idle", 0), ("platform", 0)}
    heads.observe([_event(busy)])
    second = checkpointer.checkpoint()
    assert second is not None  # busy moved; the platform chain moved (the first checkpoint is an entry)
    assert {(c["chainID"], c["seq"]) for c in second["chains"]} == {("gw-busy", 2), ("platform", 1)}
    assert "gw-idle" not in heads.snapshot()  # signed and idle: forgotten
    heads.observe([_event(idle)])  # it moves again: back, and signed
    third = checkpointer.checkpoint()
    assert third is not None and ("gw-idle", 1) in {(c["chainID"], c["seq"]) for c in third["chains"]}
    store.close()
