"""Rate limits, daily quotas and argument conditions through a real gateway (uvicorn, real HTTP upstream,
real session tokens): what an agent sees when it calls too fast, too often, or with arguments a rule
does not allow."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from fixtures.gateway import NAMESPACE, SERVER, EchoUpstream, PolicyKit, serve_app
from mcp_runtime.gateway import Gateway, GatewayRoute, InProcessPolicySource

JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def call(tool: str, msg_id: int, **arguments: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}


def limited_kit(rule_limit: dict[str, Any] | None = None, grant_limit: dict[str, Any] | None = None,
                condition: str | None = None) -> PolicyKit:
    kit = PolicyKit()
    kit.grant("g-cursor", "cursor", tools=["echo", "add"])
    rules = kit.grants[0]["spec"]["toolRules"]
    if rule_limit is not None:
        rules[0]["rateLimit"] = rule_limit  # echo
    if condition is not None:
        rules[1]["condition"] = condition  # add
    if grant_limit is not None:
        kit.grants[0]["spec"]["rateLimit"] = grant_limit
    kit.session("s-cursor", "cursor")
    kit.session("s-dave", "cursor", human="dave@globex.com")
    return kit


class Clock:
    """The decision clock of the gateway (quotas count per UTC day of it), moved by the test."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def serve() -> Iterator[Any]:
    stack: list[Any] = []

    def start(kit: PolicyKit, clock: Any = None) -> tuple[str, Gateway]:
        upstream_cm = serve_app(EchoUpstream())
        upstream = upstream_cm.__enter__()
        stack.append(upstream_cm)
        kwargs = {"clock": clock} if clock is not None else {}
        gateway = Gateway([GatewayRoute(upstream=upstream + "/mcp", policy=InProcessPolicySource(kit.document()),
                                        keys=kit.keyring.public_keys(), path="/mcp")], **kwargs)
        gateway_cm = serve_app(gateway)
        base = gateway_cm.__enter__()
        stack.append(gateway_cm)
        return base + "/mcp", gateway

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


def test_burst_then_429_with_retry_after_then_refill(serve: Any) -> None:
    kit = limited_kit(rule_limit={"requestsPerSecond": 2, "burst": 3})
    url, _ = serve(kit)
    auth = {**JSON, "Authorization": f"Bearer {kit.token('s-cursor', 'cursor')}"}
    with httpx.Client(timeout=5) as client:
        answers = [client.post(url, headers=auth, json=call("echo", i, text="hi")) for i in range(5)]
        assert [a.status_code for a in answers[:3]] == [200, 200, 200]
        refused = [a for a in answers[3:] if a.status_code == 429]
        assert refused, [a.status_code for a in answers]
        body = refused[0].json()
        assert body["error"]["data"]["reason"] == "rate_limited"
        assert body["error"]["data"]["limit"] == "grant/g-cursor/tool/echo"
        assert body["error"]["data"]["retryAfter"] == 1 and refused[0].headers["retry-after"] == "1"
        assert "retry in 1 s" in body["error"]["message"]
        # other tools of the grant are not limited by echo's rule
        assert client.post(url, headers=auth, json=call("add", 9, a=1, b=2)).status_code == 200
        time.sleep(0.6)  # the hint is honoured: a token is back
        assert client.post(url, headers=auth, json=call("echo", 10, text="hi")).status_code == 200
        metrics = client.get(url.removesuffix("/mcp") + "/metrics").text
    assert 'mcp_gateway_rate_limited_total{limit="grant/g-cursor/tool/echo",server="data-utility"}' in metrics
    assert 'reason="rate_limited"' in metrics


def test_concurrent_callers_never_get_more_than_the_limit(serve: Any) -> None:
    """8 threads send 15 calls each into one shared bucket (per: server) as fast as they can: no more pass
    than the burst plus the rate times the time they took."""
    kit = limited_kit(grant_limit={"requestsPerSecond": 10, "burst": 5, "per": ["server"]})
    url, _ = serve(kit)
    tokens = [kit.token("s-cursor", "cursor"), kit.token("s-dave", "cursor", human="dave@globex.com")]
    statuses: list[int] = []
    retry_after: set[str] = set()
    lock = threading.Lock()
    times: list[float] = []

    def hammer(token: str) -> None:
        with httpx.Client(timeout=30) as client:
            for i in range(15):
                with lock:
                    times.append(time.monotonic())
                answer = client.post(url, headers={**JSON, "Authorization": f"Bearer {token}"},
                                     json=call("echo", i, text="x"))
                with lock:
                    statuses.append(answer.status_code)
                    if answer.status_code == 429:
                        retry_after.add(answer.headers["retry-after"])

    threads = [threading.Thread(target=hammer, args=(tokens[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = max(times) - min(times)
    passed = statuses.count(200)
    assert len(statuses) == 120 and set(statuses) <= {200, 429}, statuses
    assert retry_after == {"1"}
    assert 5 <= passed <= 5 + 10 * elapsed + 1, (passed, elapsed)
    assert statuses.count(429) > 0


def test_each_caller_has_its_own_bucket_by_default(serve: Any) -> None:
    kit = limited_kit(grant_limit={"requestsPerSecond": 0.5, "burst": 1})
    url, _ = serve(kit)
    with httpx.Client(timeout=5) as client:
        for token in (kit.token("s-cursor", "cursor"), kit.token("s-dave", "cursor", human="dave@globex.com")):
            auth = {**JSON, "Authorization": f"Bearer {token}"}
            assert client.post(url, headers=auth, json=call("echo", 1, text="a")).status_code == 200
            assert client.post(url, headers=auth, json=call("add", 2, a=1, b=1)).status_code == 429


def test_daily_quota_resets_at_utc_midnight(serve: Any) -> None:
    clock = Clock(datetime(2026, 6, 1, 23, 59, 0, tzinfo=UTC))
    kit = limited_kit(rule_limit={"callsPerDay": 2})
    url, _ = serve(kit, clock)
    auth = {**JSON, "Authorization": f"Bearer {kit.token('s-cursor', 'cursor', ttl=timedelta(days=400))}"}
    with httpx.Client(timeout=5) as client:
        assert [client.post(url, headers=auth, json=call("echo", i, text="q")).status_code for i in range(3)] == [
            200, 200, 429]
        over = client.post(url, headers=auth, json=call("echo", 4, text="q"))
        assert over.status_code == 429 and over.headers["retry-after"] == "60"  # seconds to 00:00 UTC
        clock.now = datetime(2026, 6, 2, 0, 0, 1, tzinfo=UTC)
        assert client.post(url, headers=auth, json=call("echo", 5, text="q")).status_code == 200


def test_quota_use_is_on_the_metrics_page(serve: Any) -> None:
    """Calls counted today per quota, the quota, the largest share one caller used and how many callers."""
    clock = Clock(datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC))
    kit = limited_kit(rule_limit={"callsPerDay": 4})
    url, _ = serve(kit, clock)
    ttl = timedelta(days=400)
    bob = {**JSON, "Authorization": f"Bearer {kit.token('s-cursor', 'cursor', ttl=ttl)}"}
    dave = {**JSON, "Authorization": f"Bearer {kit.token('s-dave', 'cursor', human='dave@globex.com', ttl=ttl)}"}
    labels = '{limit="grant/g-cursor/tool/echo",server="data-utility"}'
    with httpx.Client(timeout=5) as client:
        for i in range(3):
            assert client.post(url, headers=bob, json=call("echo", i, text="q")).status_code == 200
        assert client.post(url, headers=dave, json=call("echo", 9, text="q")).status_code == 200
        metrics = client.get(url.removesuffix("/mcp") + "/metrics").text
        assert f"mcp_gateway_quota_calls_today{labels} 4.0" in metrics
        assert f"mcp_gateway_quota_limit{labels} 4.0" in metrics
        assert f"mcp_gateway_quota_max_used_ratio{labels} 0.75" in metrics
        assert f"mcp_gateway_quota_keys_today{labels} 2.0" in metrics
        clock.now = datetime(2026, 6, 2, 0, 0, 1, tzinfo=UTC)  # a new UTC day: nothing counted yet
        assert "mcp_gateway_quota_calls_today{" not in client.get(url.removesuffix("/mcp") + "/metrics").text


def test_batch_keeps_allowed_calls_and_answers_limited_ones(serve: Any) -> None:
    kit = limited_kit(rule_limit={"requestsPerSecond": 1, "burst": 1})
    url, _ = serve(kit)
    auth = {**JSON, "Authorization": f"Bearer {kit.token('s-cursor', 'cursor')}"}
    with httpx.Client(timeout=5) as client:
        answer = client.post(url, headers=auth, json=[call("echo", 1, text="a"), call("echo", 2, text="b"),
                                                       call("add", 3, a=1, b=2)])
    assert answer.status_code == 200
    by_id = {m["id"]: m for m in answer.json()}
    assert "result" in by_id[1] and "result" in by_id[3]
    assert by_id[2]["error"]["data"]["reason"] == "rate_limited"


def test_argument_condition_through_the_gateway(serve: Any) -> None:
    kit = limited_kit(condition="args.a + args.b <= 10")
    url, _ = serve(kit)
    auth = {**JSON, "Authorization": f"Bearer {kit.token('s-cursor', 'cursor')}"}
    with httpx.Client(timeout=5) as client:
        assert "result" in client.post(url, headers=auth, json=call("add", 1, a=2, b=3)).json()
        denied = client.post(url, headers=auth, json=call("add", 2, a=20, b=3))
        missing = client.post(url, headers=auth, json=call("add", 3, a=2))
        listed = client.post(url, headers=auth, json={"jsonrpc": "2.0", "id": 4, "method": "tools/list"}).json()
    assert denied.status_code == 200
    error = denied.json()["error"]
    assert error["data"]["reason"] == "condition_not_met" and error["data"]["condition"] == "args.a + args.b <= 10"
    assert "only when args.a + args.b <= 10" in error["message"]
    assert missing.json()["error"]["data"]["reason"] == "condition_not_met"
    assert "argument 'b' is missing" in missing.json()["error"]["message"]
    assert {t["name"] for t in listed["result"]["tools"]} == {"echo", "add"}  # add is callable with some args


def test_policy_document_carries_limits_and_namespace() -> None:
    kit = limited_kit(rule_limit={"requestsPerSecond": 5}, grant_limit={"callsPerDay": 1000, "per": ["tool"]})
    doc = kit.document()
    grant = doc.grants[0]
    assert grant.rate_limit is not None and grant.rate_limit.calls_per_day == 1000
    assert grant.tool_rules[0].rate_limit is not None and grant.tool_rules[0].rate_limit.burst == 5
    assert doc.server.name == SERVER and doc.server.namespace == NAMESPACE
