"""`audit verify FILE`: check an `audit export` line by line, and name every record that broke.

Each chain (the platform's, each gateway process's) must be unbroken: every record's hash matches its
content (else *modified*), sequence numbers have no gap (*missing*) and do not run backwards in the
file (*reordered*), and every link matches the record before it. Then the signed checkpoints: each must
verify with the platform's public keys (else *forged*), and every chain must reach the head a checkpoint
signed, with the same hash: a chain that stops short was *truncated*, one whose record at that position
has another hash was *rewritten*. An export without its closing checkpoint is *unsealed* (its tail may
have been cut). An export `--since` a time starts chains midway: their first record's link is taken
as it is, and checkpoints of records before the window are not judged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from mcp_runtime.platform.checkpoints import CHECKPOINT_KIND, signature_valid
from mcp_runtime.security import PublicKeySet
from mcp_runtime.sentinel.chain import Problem, Verdict, record_hash
from mcp_runtime.sentinel.events import AnalyticsEvent
from mcp_runtime.store.audit_chain import body_hash


@dataclass
class Link:
    """One chained record as the checks need it."""

    seq: int
    record_id: str
    prev_hash: str | None
    stored_hash: str | None
    computed_hash: str


@dataclass
class Parsed:
    chains: dict[str, list[Link]]
    checkpoints: list[dict[str, Any]]
    anchored: bool  # the export starts at the beginning (no --since): chains must start at 0
    sealed: bool
    verdict: Verdict


def verify_export(lines: Iterable[str], keys: PublicKeySet) -> Verdict:
    parsed = parse_export(lines)
    for chain_id, links in parsed.chains.items():
        check_links(chain_id, links, parsed.anchored, parsed.verdict.problems)
    for checkpoint in parsed.checkpoints:
        check_checkpoint(checkpoint, parsed.chains, keys, parsed.anchored, parsed.verdict.problems)
    if not parsed.sealed:
        parsed.verdict.problems.append(Problem("unsealed", "-", None, None, "the export does not end with its "
                                               "closing checkpoint: its last records may have been cut off"))
    parsed.verdict.chains = len(parsed.chains)
    return parsed.verdict


def parse_export(lines: Iterable[str]) -> Parsed:
    parsed = Parsed({}, [], True, False, Verdict())
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if parsed.sealed:
            parsed.verdict.problems.append(Problem("unsealed", "-", None, None, f"line {number} comes after the "
                                                   "closing checkpoint"))
            parsed.sealed = False
        try:
            item = json.loads(line)
            kind = item.get("type")
        except (ValueError, AttributeError):
            raise ValueError(f"line {number} is not a JSON object: {line[:80]!r}") from None
        if kind == "export":
            parsed.anchored = item.get("since") is None
        elif kind == "platform":
            _add_platform(item, parsed, number)
        elif kind == "decision":
            _add_decision(item, parsed, number)
        elif kind == "checkpoint":
            parsed.checkpoints.append(item)
            parsed.sealed = bool(item.get("closing"))
        else:
            raise ValueError(f"line {number} has an unknown type {kind!r} (is this an `audit export` file?)")
    return parsed


def _add_platform(item: dict[str, Any], parsed: Parsed, number: int) -> None:
    parsed.verdict.records += 1
    seq = item.get("chainSeq")
    if not isinstance(seq, int):
        parsed.verdict.unchained += 1
        return
    body = {k: v for k, v in item.items() if k not in ("type", "chainID", "recordHash")}
    link = Link(seq, f"audit#{item.get('id')}", item.get("prevHash"), item.get("recordHash"), body_hash(body))
    parsed.chains.setdefault(str(item.get("chainID")), []).append(link)
    if item.get("kind") == CHECKPOINT_KIND and isinstance(item.get("after"), dict):
        parsed.checkpoints.append(item["after"])


def _add_decision(item: dict[str, Any], parsed: Parsed, number: int) -> None:
    parsed.verdict.records += 1
    try:
        event = AnalyticsEvent.model_validate({k: v for k, v in item.items() if k != "type"})
    except ValidationError as exc:
        raise ValueError(f"line {number} is not a valid decision record: {exc.errors()[0]['msg']}") from None
    if event.chain_id is None or event.chain_seq is None:
        parsed.verdict.unchained += 1
        return
    link = Link(event.chain_seq, event.event_id, event.prev_hash, event.record_hash, record_hash(event))
    parsed.chains.setdefault(event.chain_id, []).append(link)


def check_links(chain_id: str, links: list[Link], anchored: bool, problems: list[Problem]) -> None:
    """Order, gaps, duplicates, hashes and links of one chain, in file order."""
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
            problems.append(Problem("missing", chain_id, expected, None,
                                    f"records {expected}-{seq - 1} are missing (before {link.record_id})"))
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


def check_checkpoint(checkpoint: dict[str, Any], chains: dict[str, list[Link]], keys: PublicKeySet,
                     anchored: bool, problems: list[Problem]) -> None:
    """A checkpoint must verify, and every chain must reach the head it signed, with that hash."""
    where = f"checkpoint of {checkpoint.get('at')}"
    if not signature_valid(checkpoint, keys):
        problems.append(Problem("forged", "-", None, None, f"the {where} does not verify with the platform's "
                                "public keys (changed, or not signed by this platform)"))
        return
    for head in checkpoint.get("chains", []):
        chain_id, seq, digest = str(head.get("chainID")), int(head.get("seq", -1)), head.get("headHash")
        links = {link.seq: link for link in chains.get(chain_id, [])}
        if not links and not anchored:
            continue  # a chain with nothing in the export's window
        if seq in links:
            if links[seq].stored_hash != digest:
                problems.append(Problem("rewritten", chain_id, seq, links[seq].record_id,
                                        f"record {seq} is not the one the {where} signed: the chain was rewritten"))
        elif not links or seq > max(links):
            last = max(links) if links else None
            problems.append(Problem("truncated", chain_id, seq, None,
                                    f"the {where} signed record {seq}, the chain ends at "
                                    f"{last if last is not None else '(no record)'}: its tail was cut off"))
