"""Defects the fuzzers found (tests/platform/test_api_fuzz.py), each kept as the request that exposed it."""

from __future__ import annotations

from typing import Any

from platform_support import World, deploy_body


def _with_lifetime(name: str, lifetime: str) -> dict[str, Any]:
    body = deploy_body(name)
    body["metadata"]["session"] = {"maxLifetime": lifetime}
    return body


def test_a_duration_too_long_for_python_is_a_422_not_a_500(world: World) -> None:
    """`session.maxLifetime: 99999999999999999999d` overflowed `timedelta` inside validation: 500."""
    for n, lifetime in enumerate(("99999999999999999999d", "3651d", "999999999h")):
        answer = world.call("owner", "POST", "/runtime/servers", _with_lifetime(f"too-long-{n}", lifetime))
        assert answer.status_code == 422, answer.text
        assert "duration" in answer.json()["message"], answer.text
    kept = world.call("owner", "POST", "/runtime/servers", _with_lifetime("ten-years", "3650d"))
    assert kept.status_code in (200, 201), kept.text
    world.call("owner", "DELETE", "/runtime/servers/mcp-team-acme/ten-years")


def test_an_audit_cursor_past_64_bits_is_a_422_not_a_500(world: World) -> None:
    """`GET /audit?before=605210285621485102381622362112` overflowed the database's integer: 500
    (PostgreSQL's INTEGER id is 32-bit)."""
    answer = world.call("admin", "GET", "/audit?before=605210285621485102381622362112&limit=153")
    assert answer.status_code == 422, answer.text
    assert world.call("admin", "GET", f"/audit?before={2**31 - 1}").status_code == 200
    assert world.call("admin", "GET", f"/audit?before={2**31}").status_code == 422


def test_a_since_before_the_year_1_is_a_422_not_a_500(world: World) -> None:
    """`since=999999w` overflowed `datetime` (found reviewing the audit export, which takes `since` too): 500."""
    for path in ("/audit/export?since=999999w", "/analytics/usage?since=999999w"):
        answer = world.call("admin", "GET", path)
        assert answer.status_code == 422 and "before the year 1" in answer.json()["message"], answer.text
    assert world.call("admin", "GET", "/analytics/usage?since=5200w").status_code == 200
