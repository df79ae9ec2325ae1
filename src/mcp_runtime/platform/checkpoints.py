"""Signed checkpoints of the hash chains: each chain's head (id, sequence number, hash) at a moment,
signed with the platform's Ed25519 key.

A hash chain alone cannot show that its newest records were cut off, or that someone who can write the
store rewrote a chain from scratch (SHA-256 has no key). A checkpoint can: `audit verify` checks that
every chain reaches the head a checkpoint signed, with the hash it signed. Heads of the gateways'
decision chains are taken as events are ingested (what the gateways sent, before any store saw them);
the head of the platform's own audit chain from the store. Every `interval` seconds, when a head moved,
the `Checkpointer` appends a checkpoint to the platform audit log (kind `Checkpoint`), so it is kept,
chained and exported like any other entry; `audit export` ends with a fresh one over what it exported.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature

from mcp_runtime.resources.common import utcnow
from mcp_runtime.security import KeyRing, PublicKeySet
from mcp_runtime.sentinel.events import AnalyticsEvent
from mcp_runtime.store import AuditRecord, ControlPlaneStore
from mcp_runtime.store.audit_chain import PLATFORM_CHAIN, timestamp_text

log = logging.getLogger("mcp_runtime.platform.checkpoints")

PURPOSE = "mcp-runtime audit checkpoint"
"""Signed with every checkpoint, so its signature can never pass for any other signed object."""
CHECKPOINT_KIND = "Checkpoint"
DEFAULT_INTERVAL = 60.0

Heads = dict[str, tuple[int, str]]
"""chain id -> (sequence number, record hash) of the chain's newest record."""


def signed_bytes(at: str, chains: list[dict[str, Any]], kid: str) -> bytes:
    payload = {"purpose": PURPOSE, "at": at, "chains": chains, "kid": kid}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_checkpoint(keyring: KeyRing, heads: Mapping[str, tuple[int, str]], at: datetime,
                    *, closing: bool = False) -> dict[str, Any]:
    """A checkpoint of `heads` signed with the ring's current key (as exported: camelCase)."""
    chains = [{"chainID": chain, "seq": seq, "headHash": digest} for chain, (seq, digest) in sorted(heads.items())]
    kid, key = keyring.signing_key()
    stamp = timestamp_text(at)
    signature = base64.urlsafe_b64encode(key.sign(signed_bytes(stamp, chains, kid))).rstrip(b"=").decode()
    checkpoint: dict[str, Any] = {"type": "checkpoint", "at": stamp, "chains": chains, "kid": kid,
                                  "signature": signature}
    if closing:
        checkpoint["closing"] = True
    return checkpoint


def signature_valid(checkpoint: Mapping[str, Any], keys: PublicKeySet) -> bool:
    """Whether the checkpoint was signed by one of `keys` (the platform's JWKS) and not changed since."""
    try:
        key = keys[str(checkpoint["kid"])]
        text = str(checkpoint["signature"])
        signature = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        key.verify(signature, signed_bytes(str(checkpoint["at"]), list(checkpoint["chains"]), str(checkpoint["kid"])))
    except (KeyError, TypeError, ValueError, InvalidSignature):
        return False
    return True


class ChainHeads:
    """The newest (highest sequence) record seen of each decision chain; fed by the ingest."""

    def __init__(self) -> None:
        self._heads: Heads = {}
        self._lock = threading.Lock()

    def observe(self, events: Iterable[AnalyticsEvent]) -> None:
        with self._lock:
            heads = self._heads
            for event in events:
                chain, seq, digest = event.chain_id, event.chain_seq, event.record_hash
                if chain is None or seq is None or digest is None:
                    continue
                known = heads.get(chain)
                if known is None or seq > known[0]:
                    heads[chain] = (seq, digest)

    def snapshot(self) -> Heads:
        with self._lock:
            return dict(self._heads)

    def forget(self, chain: str, head: tuple[int, str]) -> None:
        """Drop a chain whose head is still `head` (signed, and idle since): the map stays as small as the
        set of gateways sending now; a chain that moves again comes back with its next event."""
        with self._lock:
            if self._heads.get(chain) == head:
                del self._heads[chain]


class Checkpointer:
    """Appends a signed checkpoint to the audit log every `interval` seconds when a head moved."""

    def __init__(self, store: ControlPlaneStore, keyring: KeyRing, heads: ChainHeads,
                 interval: float = DEFAULT_INTERVAL) -> None:
        self.store = store
        self.keyring = keyring
        self.heads = heads
        self.interval = interval
        self._signed: Heads = {}
        self._task: asyncio.Task[None] | None = None

    def checkpoint(self, now: datetime | None = None) -> dict[str, Any] | None:
        """Sign and store a checkpoint of every head that moved since the last one (None: nothing moved)."""
        heads = self.heads.snapshot()
        newest = self.store.list_audit(limit=1)
        if newest and newest[0].seq is not None and newest[0].record_hash is not None:
            heads[PLATFORM_CHAIN] = (newest[0].seq, newest[0].record_hash)
        moved = {chain: head for chain, head in heads.items() if self._signed.get(chain) != head}
        for chain, head in heads.items():
            if chain not in moved and chain != PLATFORM_CHAIN:  # signed last time and idle since
                self.heads.forget(chain, head)
                del self._signed[chain]
        if not moved:
            return None
        checkpoint = sign_checkpoint(self.keyring, moved, now or utcnow())
        self.store.append_audit(AuditRecord(actor="system", action="checkpoint", kind=CHECKPOINT_KIND,
                                            after=checkpoint))
        self._signed.update(moved)
        return checkpoint

    async def start(self) -> None:
        if self._task is None and self.interval > 0:
            self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await asyncio.to_thread(self._safe_checkpoint)  # the heads reached before stopping

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await asyncio.to_thread(self._safe_checkpoint)

    def _safe_checkpoint(self) -> None:
        try:
            self.checkpoint()
        except Exception:
            log.exception("could not write an audit checkpoint (retrying at the next interval)")
