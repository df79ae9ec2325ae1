"""The gateway's rate-limit counters on a fake clock: token refill, all-or-nothing, quota days, bounds."""

from __future__ import annotations

from datetime import UTC, datetime

from mcp_runtime.gateway.limits import Limiter
from mcp_runtime.policy import AppliedLimit, PolicyRateLimit
from mcp_runtime.resources import LimitKey

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Tick:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def rate(rps: float, burst: int, key: str = "bob") -> AppliedLimit:
    return AppliedLimit("grant/g", (key,), PolicyRateLimit(requests_per_second=rps, burst=burst,
                                                           per=(LimitKey.human,)))


def quota(calls: int, key: str = "bob") -> AppliedLimit:
    return AppliedLimit("server", (key,), PolicyRateLimit(calls_per_day=calls, per=(LimitKey.human,)))


def test_token_bucket_refills_at_the_rate() -> None:
    tick = Tick()
    limiter = Limiter(clock=tick)
    limit = rate(2, 3)
    assert [limiter.take([limit], NOW) for _ in range(3)] == [None, None, None]
    refused = limiter.take([limit], NOW)
    assert refused is not None and abs(refused.retry_after - 0.5) < 1e-9
    tick.t += 0.5
    assert limiter.take([limit], NOW) is None
    assert limiter.take([limit], NOW) is not None
    tick.t += 100  # never more than the burst after a long pause
    assert [limiter.take([limit], NOW) is None for _ in range(4)] == [True, True, True, False]


def test_a_refused_call_uses_no_other_limit() -> None:
    limiter = Limiter(clock=Tick())
    tight, daily = rate(1, 1), quota(5)
    assert limiter.take([tight, daily], NOW) is None
    refused = limiter.take([tight, daily], NOW)
    assert refused is not None and refused.limit is tight
    assert limiter.used_today(daily, NOW) == 1  # the refused call was not counted against the quota


def test_quota_counts_per_utc_day_and_key() -> None:
    limiter = Limiter(clock=Tick())
    assert [limiter.take([quota(2)], NOW) is None for _ in range(3)] == [True, True, False]
    refused = limiter.take([quota(2)], NOW)
    assert refused is not None and refused.retry_after == 12 * 3600
    assert limiter.take([quota(2, key="dave")], NOW) is None
    assert limiter.take([quota(2)], datetime(2026, 6, 2, 0, 0, tzinfo=UTC)) is None


def test_memory_is_bounded() -> None:
    tick = Tick()
    limiter = Limiter(clock=tick, max_keys=100)
    for i in range(1000):
        limiter.take([rate(1, 1, key=f"k{i}"), quota(1, key=f"k{i}")], NOW)
        tick.t += 0.001
    assert len(limiter._buckets) <= 100 and len(limiter._quotas) <= 100
