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
    links = [Link(event.chain_seq, event.event_id, event.prev_hash, event.record_hash, record_hash(event))
             for _, event in members if event.chain_seq is not None]
    check_links(chain_id, links, True, problems)


@dataclass
class Link:
    """One chained record as the checks need it."""

    seq: int
    record_id: str
    prev_hash: str | None
    stored_hash: str | None
    computed_hash: str


def check_links(chain_id: str, links: list[Link], anchored: bool, problems: list[Problem]) -> None:
    """Order, gaps, duplicates, hashes and links of one chain, given in stored (or file) order; `anchored`:
    the chain must start at record 0 (false for an export that starts midway)."""
    highest = -1
    by_seq: dict[int, Link] = {}
    for link in links:
        if link.seq < highest:
            problems.append(Problem("reordered", chain_id, link.seq, link.record_id,
                                    f"record {link.seq} comes after record {highest}"))
        highest = max(highest, link.seq)
        if link.seq in by_seq:
            problems.append(Problem("duplicate", chain_id, link.seq, link.record_id,
                                    f"two records carry sequence number {link.seq}"))
        by_seq[link.seq] = link
    expected = 0 if anchored else min(by_seq)
    previous: Link | None = None
    for seq in sorted(by_seq):
        link = by_seq[seq]
        if seq != expected:
            after = f"between {by_seq[expected - 1].record_id} and" if expected - 1 in by_seq else "before"
            problems.append(Problem("missing", chain_id, expected, None,
                                    f"records {expected}-{seq - 1} are missing ({after} {link.record_id})"))
            previous = None
        if link.stored_hash != link.computed_hash:
            problems.append(Problem("modified", chain_id, seq, link.record_id,
                                    "the record's content does not match its hash"))
        elif previous is not None and link.prev_hash != previous.stored_hash:
            problems.append(Problem("modified", chain_id, seq, link.record_id,
                                    f"its link does not match record {seq - 1}'s hash"))
        elif seq == 0 and link.prev_hash is not None:
            problems.append(Problem("modified", chain_id, seq, link.record_id, "the first record links to another"))
        previous = link
        expected = seq + 1
