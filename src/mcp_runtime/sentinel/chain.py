"""The hash chain over a gateway's decision log: each event carries the hash of the one before it.

Every gateway process is one *chain* (`chain_id`, random per start). Its events are numbered
(`chain_seq` 0, 1, 2, ...), and each carries `prev_hash` (the `record_hash` of the event before it,
empty for the first) and `record_hash`: SHA-256 over the event's canonical JSON (sorted keys, no
spaces, every field but `record_hash` itself). Changing any stored field of a record breaks its own
hash; deleting or reordering records breaks the sequence and the links. `verify` names what broke.

What this alone does not catch: the newest records of a chain deleted together (nothing after them
links to them), a whole chain deleted, or a chain rewritten from scratch by someone who can write the
store (SHA-256 without a key). The platform's signed checkpoints close these (platform/checkpoints.py,
checked by `audit verify`, docs/audit.md).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mcp_runtime.sentinel.events import AnalyticsEvent

_LATER_FIELDS = ("client_id", "virtual_server")


def record_hash(event: AnalyticsEvent) -> str:
    """SHA-256 (hex) of the event's canonical JSON without `record_hash`."""
    # Fields added after the chain was (client_id) count only when set: records made before them verify.
    body = event.model_dump(mode="json", exclude={"record_hash", *(f for f in _LATER_FIELDS
                                                                  if getattr(event, f) is None)})
    # Timestamps as stored (microseconds, UTC): the same text whichever store gave the event back.
    body["timestamp"] = event.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


class EventChain:
    """Links the events of one gateway process, in the order they are made (one thread: the event loop)."""

    def __init__(self, chain_id: str | None = None) -> None:
        self.chain_id = chain_id or f"gw-{uuid.uuid4().hex[:20]}"
        self.seq = 0
        self.last_hash = ""

    def link(self, event: AnalyticsEvent) -> AnalyticsEvent:
        linked = event.model_copy(update={"chain_id": self.chain_id, "chain_seq": self.seq,
                                          "prev_hash": self.last_hash or None})
        digest = record_hash(linked)
        self.seq += 1
        self.last_hash = digest
        return linked.model_copy(update={"record_hash": digest})


@dataclass
class Problem:
    """One break in a chain: what kind, where, and the record it concerns."""

    kind: str  # modified | missing | reordered | duplicate
    chain_id: str
    seq: int | None
    event_id: str | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chainID": self.chain_id, "seq": self.seq, "eventID": self.event_id,
                "detail": self.detail}


@dataclass
class Verdict:
    """What `verify` found: counts and every problem."""

    records: int = 0
    chains: int = 0
    unchained: int = 0  # events without a chain (older gateways, other sources): not verifiable
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(events: Iterable[AnalyticsEvent]) -> Verdict:
    """Check every chain in `events`, given in stored order (by event id, or by time).

    A record whose hash does not match its content is *modified*; a gap in a chain's sequence is
    *missing* records; records whose sequence runs backwards in the stored order are *reordered*; a link
    that does not match the record before it is reported as modified (the record or its predecessor)."""
    verdict = Verdict()
    chains: dict[str, list[tuple[int, AnalyticsEvent]]] = {}
    for position, event in enumerate(events):
        verdict.records += 1
        if event.chain_id is None or event.chain_seq is None:
            verdict.unchained += 1
            continue
        chains.setdefault(event.chain_id, []).append((position, event))
    verdict.chains = len(chains)
    for chain_id, members in chains.items():
        _verify_chain(chain_id, members, verdict.problems)
    return verdict


def _verify_chain(chain_id: str, members: list[tuple[int, AnalyticsEvent]], problems: list[Problem]) -> None:
    # Stored order against sequence order: a record that comes before one with a lower seq was moved.
    highest = -1
    for _, event in members:
        seq = event.chain_seq
        assert seq is not None
        if seq < highest:
            problems.append(Problem("reordered", chain_id, seq, event.event_id,
                                    f"record {seq} is stored after record {highest}"))
        highest = max(highest, seq)
    by_seq: dict[int, AnalyticsEvent] = {}
    for _, event in members:
        assert event.chain_seq is not None
        if event.chain_seq in by_seq:
            problems.append(Problem("duplicate", chain_id, event.chain_seq, event.event_id,
                                    f"two records carry sequence number {event.chain_seq}"))
        by_seq[event.chain_seq] = event
    previous: AnalyticsEvent | None = None
    expected = min(by_seq)
    if expected != 0:
        problems.append(Problem("missing", chain_id, 0, None, f"records 0-{expected - 1} are missing"))
    for seq in sorted(by_seq):
        event = by_seq[seq]
        if seq != expected:
            problems.append(Problem("missing", chain_id, expected, None,
                                    f"records {expected}-{seq - 1} are missing (between "
                                    f"{by_seq[expected - 1].event_id if expected - 1 in by_seq else '?'} "
                                    f"and {event.event_id})"))
            previous = None
        if event.record_hash != record_hash(event):
            problems.append(Problem("modified", chain_id, seq, event.event_id,
                                    "the record's content does not match its hash"))
        elif previous is not None and event.prev_hash != previous.record_hash:
            problems.append(Problem("modified", chain_id, seq, event.event_id,
                                    f"its link does not match record {seq - 1}'s hash"))
        elif seq == 0 and event.prev_hash is not None:
            problems.append(Problem("modified", chain_id, seq, event.event_id, "the first record links to another"))
        previous = event
        expected = seq + 1
