"""`mcp-runtime audit export` and `audit verify` against a live platform (SQLite and PostgreSQL).

The platform's mutations are hash-chained as they are stored; a gateway chain's decisions are ingested;
a signed checkpoint pins the heads; the export is verified untouched, then each kind of tampering a
security team must catch is applied to a copy and `audit verify` must name it.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from platform_support import World, grant_doc
from typer.testing import CliRunner

from mcp_runtime.cli.app import app
from mcp_runtime.sentinel.chain import EventChain
from mcp_runtime.sentinel.events import AnalyticsEvent

Cli = Callable[..., Any]
ACME_NS = "mcp-team-acme"
runner = CliRunner()


def _decisions(world: World, chain: EventChain, count: int) -> None:
    """`count` decisions linked into `chain` exactly as a gateway links them, sent to the ingest."""
    events = [chain.link(AnalyticsEvent(server="payments", namespace=ACME_NS, rpc_method="tools/call",
                                        tool_name="echo", decision="allow", reason="allowed", status=200,
                                        latency_ms=1.0, agent_id="cursor")) for _ in range(count)]
    answer = world.live.call("POST", "/ingest/events", token=world.live.platform.ingest_keys.local_key,
                             json={"events": [json.loads(e.model_dump_json()) for e in events]})
    assert answer.status_code == 202, answer.text


@pytest.fixture
def exported(world: World, cli: Cli, tmp_path: Path) -> tuple[Path, Path, str]:
    """An export holding a gateway chain of 6 decisions (a checkpoint signed after the 4th) and a grant
    created after it; with the platform's JWKS in a file. Yields (export, jwks file, chain id)."""
    chain = EventChain()
    _decisions(world, chain, 4)
    signed = world.live.platform.checkpoints.checkpoint()
    assert signed is not None and {"chainID": chain.chain_id, "seq": 3, "headHash": chain.last_hash} in \
        signed["chains"]
    world.ok("owner", "POST", "/runtime/grants", grant_doc(f"audited-{uuid.uuid4().hex[:6]}", ACME_NS, "payments",
                                                           {"agentID": "cursor"}))
    _decisions(world, chain, 2)
    export = tmp_path / "audit.jsonl"
    env = {"MCP_PLATFORM_API_URL": world.live.url, "MCP_PLATFORM_API_TOKEN": world.tokens["admin"]}
    done = cli(["audit", "export", "-o", "jsonl", "--file", str(export)], env=env)
    assert done.returncode == 0, done.stderr
    assert oct(export.stat().st_mode & 0o777) == "0o600"
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(world.ok("admin", "GET", "/auth/jwks")))
    return export, jwks, chain.chain_id


def _verify(export: Path, jwks: Path) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["audit", "verify", str(export), "--jwks-file", str(jwks), "-o", "json"])
    return result.exit_code, json.loads(result.stdout)


def _lines(export: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in export.read_text().splitlines()]


def _write(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


def _mine(items: list[dict[str, Any]], chain_id: str) -> list[int]:
    return [i for i, item in enumerate(items) if item.get("chain_id") == chain_id]


def _kinds(answer: dict[str, Any]) -> set[tuple[str, str, int | None]]:
    return {(p["kind"], p["chainID"], p["seq"]) for p in answer["problems"]}


def test_an_untouched_export_verifies(exported: tuple[Path, Path, str], cli: Cli) -> None:
    export, jwks, chain_id = exported
    items = _lines(export)
    assert items[0]["type"] == "export" and items[-1]["type"] == "checkpoint" and items[-1]["closing"]
    grants = [i for i in items if i["type"] == "platform" and i["kind"] == "MCPAccessGrant"]
    assert grants and all(isinstance(g["chainSeq"], int) and g["recordHash"] for g in grants)
    assert [i["chain_seq"] for i in items if i.get("chain_id") == chain_id] == list(range(6))
    code, answer = _verify(export, jwks)
    assert code == 0 and answer["ok"], answer["problems"]
    plain = cli(["audit", "verify", str(export), "--jwks-file", str(jwks)])
    assert plain.returncode == 0 and "intact" in plain.stdout, plain.stdout + plain.stderr


def test_verify_names_a_changed_platform_record(exported: tuple[Path, Path, str], tmp_path: Path) -> None:
    export, jwks, _ = exported
    items = _lines(export)
    grant = next(i for i in items if i["type"] == "platform" and i["kind"] == "MCPAccessGrant")
    grant["actor"] = "someone-else@acme.com"
    code, answer = _verify(_write(tmp_path / "changed.jsonl", items), jwks)
    assert code == 1 and ("modified", "platform", grant["chainSeq"]) in _kinds(answer)


def test_verify_names_a_removed_and_reordered_decision(exported: tuple[Path, Path, str], tmp_path: Path) -> None:
    export, jwks, chain_id = exported
    items = _lines(export)
    mine = _mine(items, chain_id)
    removed = [item for i, item in enumerate(items) if i != mine[2]]
    code, answer = _verify(_write(tmp_path / "removed.jsonl", removed), jwks)
    assert code == 1 and ("missing", chain_id, 2) in _kinds(answer)
    swapped = list(items)
    swapped[mine[1]], swapped[mine[3]] = swapped[mine[3]], swapped[mine[1]]
    code, answer = _verify(_write(tmp_path / "reordered.jsonl", swapped), jwks)
    assert code == 1 and ("reordered", chain_id, 1) in _kinds(answer)


def test_verify_catches_a_truncated_tail_by_the_signed_checkpoints(exported: tuple[Path, Path, str],
                                                                  tmp_path: Path) -> None:
    """The newest records cut off (nothing links to them any more) and the closing checkpoint dropped:
    the checkpoint stored in the audit log still names record 3, the export ends at 2."""
    export, jwks, chain_id = exported
    items = _lines(export)
    mine = _mine(items, chain_id)
    cut = [item for i, item in enumerate(items[:-1]) if i not in mine[3:]]
    code, answer = _verify(_write(tmp_path / "cut.jsonl", cut), jwks)
    assert code == 1
    assert ("truncated", chain_id, 3) in _kinds(answer)
    assert ("unsealed", "-", None) in _kinds(answer)


def test_verify_catches_a_chain_rewritten_from_scratch(exported: tuple[Path, Path, str], tmp_path: Path) -> None:
    """Someone who can write the store re-links the chain with changed content: every hash and link is
    consistent again, but the signed checkpoints name other heads."""
    export, jwks, chain_id = exported
    items = _lines(export)
    forger = EventChain(chain_id)
    for index in _mine(items, chain_id):
        event = AnalyticsEvent.model_validate({k: v for k, v in items[index].items() if k != "type"})
        event = event.model_copy(update={"decision": "deny", "reason": "tool_not_granted", "chain_seq": None,
                                         "prev_hash": None, "record_hash": None})
        items[index] = {"type": "decision", **json.loads(forger.link(event).model_dump_json())}
    code, answer = _verify(_write(tmp_path / "rewritten.jsonl", items), jwks)
    assert code == 1
    kinds = _kinds(answer)
    assert ("rewritten", chain_id, 3) in kinds and ("rewritten", chain_id, 5) in kinds
    assert not {k for k in kinds if k[0] in ("modified", "missing")}


def test_verify_refuses_a_forged_checkpoint(exported: tuple[Path, Path, str], tmp_path: Path) -> None:
    export, jwks, chain_id = exported
    items = _lines(export)
    closing = items[-1]
    mine = next(c for c in closing["chains"] if c["chainID"] == chain_id)
    mine["seq"] = 2  # cover up a cut after record 2
    code, answer = _verify(_write(tmp_path / "forged.jsonl", items), jwks)
    assert code == 1 and ("forged", "-", None) in _kinds(answer)


def test_an_export_since_a_time_verifies_on_its_own(world: World, cli: Cli, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    since = datetime.now(UTC).isoformat()
    chain = EventChain()
    _decisions(world, chain, 3)
    world.live.platform.checkpoints.checkpoint()
    export = tmp_path / "recent.jsonl"
    env = {"MCP_PLATFORM_API_URL": world.live.url, "MCP_PLATFORM_API_TOKEN": world.tokens["admin"]}
    done = cli(["audit", "export", "--since", since, "--file", str(export)], env=env)
    assert done.returncode == 0, done.stderr
    items = _lines(export)
    assert items[0]["since"] is not None
    assert [i["chain_seq"] for i in items if i.get("chain_id") == chain.chain_id] == [0, 1, 2]
    assert any(i["type"] == "platform" and i["kind"] == "Checkpoint" for i in items)
    assert not any(i["type"] == "platform" and i["kind"] == "Team" for i in items)  # older than the window
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(world.ok("admin", "GET", "/auth/jwks")))
    code, answer = _verify(export, jwks)
    assert code == 0, answer["problems"]
    denied = world.call("owner", "GET", "/audit/export")
    assert denied.status_code == 403


def test_concurrent_writers_never_fork_the_platform_chain(store: Any) -> None:
    """Four threads appending at once (on PostgreSQL: as API replicas would): one chain, no gap, every link."""
    import threading

    from mcp_runtime.store import AuditRecord
    from mcp_runtime.store.audit_chain import body_hash, entry_body

    def write(worker: int) -> None:
        for i in range(10):
            store.append_audit(AuditRecord(actor=f"w{worker}@example.com", action="update", kind="Team",
                                           name=f"t{i}", after={"n": i, "nested": [1, 2.5, "x"]}))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = store.audit_since()
    assert [e.seq for e in entries] == list(range(len(entries))) and len(entries) >= 40
    for before, entry in itertools.pairwise(entries):
        assert entry.prev_hash == before.record_hash
    for entry in entries:
        assert entry.record_hash == body_hash(entry_body(
            id=entry.id, at=entry.at, actor=entry.actor, action=entry.action, kind=entry.kind,
            namespace=entry.namespace, name=entry.name, before=entry.before, after=entry.after, seq=entry.seq,
            prev_hash=entry.prev_hash))
