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
from mcp_runtime.sentinel.chain import Link, Problem, Verdict, check_links, record_hash
from mcp_runtime.sentinel.events import AnalyticsEvent
from mcp_runtime.store.audit_chain import body_hash


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
