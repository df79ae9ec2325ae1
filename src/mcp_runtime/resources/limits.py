"""Rate limits and daily quotas: how many calls a grant, a tool rule or a server lets through.

A limit is a token bucket (`requestsPerSecond` refilled continuously, up to `burst` at once) and/or a
daily quota (`callsPerDay`, reset at 00:00 UTC). `per` says whose calls share one bucket: the default
(`team`, `human`, `agent`) gives every caller its own; `[server]` makes one bucket for everyone the
limit covers; add `tool` to count each tool apart. The evaluator (policy/) says which limits apply to a
call; the gateway keeps the counters (gateway/limits.py).
"""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from mcp_runtime.resources.common import CamelModel


class LimitKey(StrEnum):
    """What a limit counts per: calls that agree on every listed key share a bucket."""

    server = "server"
    tool = "tool"
    team = "team"
    human = "human"
    agent = "agent"


DEFAULT_PER = (LimitKey.team, LimitKey.human, LimitKey.agent)


class RateLimit(CamelModel):
    """`requestsPerSecond` with `burst` (token bucket) and/or `callsPerDay` (UTC days), counted `per`."""

    requests_per_second: float | None = Field(default=None, ge=0.001, le=100_000)  # ge: CRD schemas lack gt
    burst: int | None = Field(default=None, ge=1, le=1_000_000)
    calls_per_day: int | None = Field(default=None, ge=1, le=1_000_000_000)
    per: list[LimitKey] = Field(default_factory=lambda: list(DEFAULT_PER), max_length=5)

    @field_validator("per")
    @classmethod
    def _per(cls, value: list[LimitKey]) -> list[LimitKey]:
        if len(set(value)) != len(value):
            raise ValueError("per names a key twice")
        return sorted(value, key=list(LimitKey).index)

    @model_validator(mode="after")
    def _something(self) -> RateLimit:
        if self.requests_per_second is None and self.calls_per_day is None:
            raise ValueError("a rateLimit needs requestsPerSecond or callsPerDay (or both)")
        if self.burst is not None and self.requests_per_second is None:
            raise ValueError("burst applies to requestsPerSecond: set it too, or drop burst")
        return self

    @property
    def capacity(self) -> int:
        """The bucket's size: `burst`, else one second's worth (at least one call)."""
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.requests_per_second or 1))
