"""The counters behind rate limits and daily quotas: the `limit` step of the request path.

The evaluator says which limits apply to an allowed call and which bucket it counts in
(`Decision.limits`); this module keeps the buckets and answers "yes" or "not before N seconds". A call
takes one token from *every* limit that applies, or from none: a refused call does not use up another
limit's budget.

- Rate: a token bucket per (limit, key), `burst` tokens refilled at `requestsPerSecond` (monotonic
  clock, so a wall-clock jump neither refills nor drains it).
- Quota: a count per (limit, key) and UTC day of the decision time (`Exchange.now`, the clock every
  decision of the request is made at), so it resets at 00:00 UTC.

Several gateway replicas: each replica keeps its own buckets (docs/governance.md, "Rate limits and
quotas"). A call costs a dictionary lookup and a few float operations, never a network round trip;
the price is that N replicas behind a load balancer let through up to N times a limit at worst (about
the limit when the balancer spreads callers evenly). A shared store (NATS KV) would cost a round trip
on every limited call and fail closed or open when it is down; the project chose the local bucket.

Memory is bounded: at most `max_keys` buckets and quota counters each; past that, full buckets (which
are the same as absent ones) and counters of past days are dropped first, then the oldest half.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from mcp_runtime.policy import AppliedLimit

MAX_KEYS = 100_000

_BucketKey = tuple[object, ...]


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


@dataclass(frozen=True, slots=True)
class Refused:
    """The limit that refused a call and how long until it would let one through."""

    limit: AppliedLimit
    retry_after: float


class Limiter:
    """Token buckets and daily counts of one gateway process (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[_BucketKey, _Bucket] = {}
        self._quotas: dict[_BucketKey, int] = {}

    def take(self, limits: Sequence[AppliedLimit], now: datetime) -> Refused | None:
        """One call against every limit in `limits`: None if all allow it (and it is counted in each),
        else the limit that refused it with the longest wait (and nothing is counted)."""
        mono = self.clock()
        day = now.date()
        refused: Refused | None = None
        buckets: list[_Bucket] = []
        quotas: list[_BucketKey] = []
        for applied in limits:
            limit = applied.limit
            key = (applied.scope, applied.key, limit.params)
            if limit.requests_per_second is not None:
                bucket = self._bucket(key, limit.burst, mono)
                rate = limit.requests_per_second
                bucket.tokens = min(float(limit.burst), bucket.tokens + (mono - bucket.updated) * rate)
                bucket.updated = mono
                if bucket.tokens < 1.0:
                    refused = _longer(refused, Refused(applied, (1.0 - bucket.tokens) / rate))
                else:
                    buckets.append(bucket)
            if limit.calls_per_day is not None:
                quota_key: _BucketKey = (*key, day)
                if self._quotas.get(quota_key, 0) >= limit.calls_per_day:
                    refused = _longer(refused, Refused(applied, _until_next_day(now)))
                else:
                    quotas.append(quota_key)
        if refused is not None:
            return refused
        for bucket in buckets:
            bucket.tokens -= 1.0
        for quota_key in quotas:
            if quota_key not in self._quotas and len(self._quotas) >= self.max_keys:
                self._prune_quotas(day)
            self._quotas[quota_key] = self._quotas.get(quota_key, 0) + 1
        return None

    def used_today(self, applied: AppliedLimit, now: datetime) -> int:
        """Calls counted today against a quota (what `/metrics` and the tests read)."""
        return self._quotas.get((applied.scope, applied.key, applied.limit.params, now.date()), 0)

    def quota_use(self, day: date) -> dict[tuple[str, int], tuple[int, int, int]]:
        """For `/metrics`, per (limit scope, calls per day): calls counted on `day` over all keys, the most
        one key used, and how many keys counted (read at scrape time, nothing on the request path)."""
        use: dict[tuple[str, int], tuple[int, int, int]] = {}
        for (scope, _key, params, counted_day), count in list(self._quotas.items()):
            if counted_day != day:
                continue
            assert isinstance(params, tuple) and isinstance(scope, str)
            per_day = int(params[2] or 0)
            total, most, keys = use.get((scope, per_day), (0, 0, 0))
            use[(scope, per_day)] = (total + count, max(most, count), keys + 1)
        return use

    def _bucket(self, key: _BucketKey, burst: int, mono: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._prune_buckets(mono)
            bucket = self._buckets[key] = _Bucket(float(burst), mono)
        return bucket

    def _prune_buckets(self, mono: float) -> None:
        """Drop buckets that have refilled (a full bucket is the same as none), else the oldest half."""
        full = [k for k, b in self._buckets.items()
                if b.tokens + (mono - b.updated) * (_rate(k) or 0.0) >= _burst(k)]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            for key in sorted(self._buckets, key=lambda k: self._buckets[k].updated)[: len(self._buckets) // 2]:
                del self._buckets[key]

    def _prune_quotas(self, today: object) -> None:
        for key in [k for k in self._quotas if k[-1] != today]:
            del self._quotas[key]
        if len(self._quotas) >= self.max_keys:
            for key in list(self._quotas)[: len(self._quotas) // 2]:
                del self._quotas[key]


def _rate(key: _BucketKey) -> float | None:
    params = key[2]
    assert isinstance(params, tuple)
    rate: float | None = params[0]
    return rate


def _burst(key: _BucketKey) -> float:
    params = key[2]
    assert isinstance(params, tuple)
    return float(params[1])


def _longer(current: Refused | None, new: Refused) -> Refused:
    return new if current is None or new.retry_after > current.retry_after else current


def _until_next_day(now: datetime) -> float:
    """Seconds from `now` to the next 00:00 UTC, when daily quotas reset."""
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo)
    return max(1.0, math.ceil((midnight - now).total_seconds()))
