"""The analytics event (docs/architecture.md, "Analytics events"), its time-ordered id, and the ingest batch.

One `AnalyticsEvent` is emitted per MCP request the gateway handles. `event_id` is a UUIDv7: it is the
idempotency key the ingest deduplicates on, and because its first 48 bits are the emission time in
milliseconds, sorting ids sorts events in emission order (see `new_event_id`).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

MAX_BATCH_EVENTS = 5_000
"""The most events one ingest request may carry (bounded request sizes)."""

_UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

# ---------------------------------------------------------------------------------------------------
# UUIDv7 (RFC 9562): 48-bit unix ms | 4-bit version 7 | 12-bit rand_a | 2-bit variant 10 | 62-bit rand_b
# ---------------------------------------------------------------------------------------------------

_RAND_BITS = 74  # rand_a (12) + rand_b (62), treated as one counter for monotonicity
_RAND_MASK = (1 << _RAND_BITS) - 1
_MAX_STEP = 1 << 32  # random increment within the same ms: still unguessable, ~2**42 ids per ms

_id_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def _uuid7_int(ms: int, rand: int) -> int:
    rand_a = rand >> 62
    rand_b = rand & ((1 << 62) - 1)
    return (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b


def new_event_id() -> str:
    """A new UUIDv7 string; strictly increasing within this process.

    Monotonic by RFC 9562 method 2 ("monotonic random"): when the clock has not advanced (or went
    backwards), the previous 74 random bits are incremented by a random step instead of drawn anew, so
    ids made in the same millisecond still sort in the order they were made. On the (practically
    impossible) overflow of the random bits the timestamp is advanced by one millisecond.
    """
    global _last_ms, _last_rand
    now_ms = time.time_ns() // 1_000_000
    with _id_lock:
        if now_ms > _last_ms:
            ms, rand = now_ms, int.from_bytes(os.urandom(10), "big") & _RAND_MASK
            # leave head room so increments within this millisecond rarely overflow
            rand &= _RAND_MASK >> 1
        else:
            ms = _last_ms
            rand = _last_rand + 1 + (int.from_bytes(os.urandom(4), "big") % _MAX_STEP)
            if rand > _RAND_MASK:
                ms, rand = ms + 1, int.from_bytes(os.urandom(10), "big") & (_RAND_MASK >> 1)
        _last_ms, _last_rand = ms, rand
    return str(uuid.UUID(int=_uuid7_int(ms, rand)))


def event_id_time(event_id: str) -> datetime:
    """The emission time (millisecond precision, UTC) encoded in a UUIDv7 event id."""
    value = uuid.UUID(event_id)
    if value.version != 7:
        raise ValueError(f"not a UUIDv7: {event_id}")
    return datetime.fromtimestamp((value.int >> 80) / 1000, tz=UTC)


# ---------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------

Name = Annotated[str, Field(min_length=1, max_length=253)]
"""Kubernetes-sized names and ids: servers, namespaces, grants, sessions, users, agents, teams."""
ShortText = Annotated[str, Field(min_length=1, max_length=128)]
_CLIENT_TEXT_MAX = 128


def _clip(value: object) -> object:
    return value[:_CLIENT_TEXT_MAX] if isinstance(value, str) else value


ClientText = Annotated[str, BeforeValidator(_clip), Field(min_length=1, max_length=_CLIENT_TEXT_MAX)]
"""Text a client chooses (method, tool name, trace id): cut to 128 characters rather than refused, so an
absurd tool name still leaves an audit event (of the denied call) instead of none."""
TrustLevel = Literal["low", "medium", "high"]
SideEffectKind = Literal["read", "write", "destructive"]
DecisionKind = Literal["allow", "deny"]
SessionStateKind = Literal["active", "revoked", "expired", "not_found"]

EVENT_VERSION = 2
"""What an event records. 1: the decision and who asked. 2 (the gateway's events since the policy
replay, `access simulate`): also the state and consented trust of the caller's session and the digest
of a tool call's arguments, so the decision can be replayed faithfully under another policy. An event
that does not say otherwise is version 1 (an older gateway, or a row stored before version 2)."""
REPLAYABLE_VERSION = 2


def _now() -> datetime:
    return datetime.now(UTC)


class AnalyticsEvent(BaseModel):
    """What the gateway knew and decided about one MCP request.

    Only the fields every request has are required (where, what method, the outcome); identity, tool
    and policy fields are None when the request did not carry them (e.g. `initialize` has no tool, an
    unauthenticated request has no human). Strings are bounded so a hostile client cannot make events
    (and so the spool and the store) arbitrarily large.

    The replay inputs (`event_version` 2): `session_state` is where the caller's session stood in the
    policy at that moment, `consented_trust` its consented trust, `arguments_digest` the SHA-256 (hex)
    of a tool call's arguments as canonical JSON (sorted keys, no spaces; absent arguments as `{}`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(default_factory=new_event_id, pattern=_UUID_PATTERN)
    timestamp: datetime = Field(default_factory=_now)
    trace_id: ClientText | None = None
    source: ShortText = "gateway"
    server: Name
    namespace: Name
    team_id: Name | None = None
    human_id: Name | None = None
    agent_id: Name | None = None
    subject_team_id: Name | None = None
    session_id: Name | None = None
    rpc_method: ClientText
    tool_name: ClientText | None = None
    decision: DecisionKind
    reason: ShortText | None = None
    matched_grant: Name | None = None
    required_trust: TrustLevel | None = None
    effective_trust: TrustLevel | None = None
    side_effect: SideEffectKind | None = None
    status: int = Field(ge=100, le=599)
    latency_ms: float = Field(ge=0, allow_inf_nan=False)
    bytes_in: int = Field(default=0, ge=0)
    bytes_out: int = Field(default=0, ge=0)
    policy_revision: ShortText | None = None
    event_version: int = Field(default=1, ge=1, le=1000)
    session_state: SessionStateKind | None = None
    consented_trust: TrustLevel | None = None
    arguments_digest: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    # The hash chain of the gateway's decision log (sentinel/chain.py): which chain, where in it, the
    # previous record's hash and this record's. None on events of older gateways and other sources.
    chain_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    chain_seq: int | None = Field(default=None, ge=0)
    prev_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    record_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    # The OAuth client the caller's access token was issued to (its `client_id` claim, MCP authorization);
    # None for adapter session tokens. Last, so older stores add it as a column at the end.
    client_id: Name | None = None

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        """Store every timestamp in UTC; a naive one is taken to be UTC already."""
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class IngestBatch(BaseModel):
    """The body of `POST /api/v1/ingest/events`: `{"events": [...]}`, at most 5,000 events."""

    model_config = ConfigDict(extra="forbid")

    events: list[AnalyticsEvent] = Field(max_length=MAX_BATCH_EVENTS)


class IngestResult(BaseModel):
    """The ingest's 202 answer: how many events were new, how many it had already stored."""

    model_config = ConfigDict(extra="forbid")

    accepted: int = Field(ge=0)
    duplicates: int = Field(ge=0)
