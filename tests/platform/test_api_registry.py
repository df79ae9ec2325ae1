"""`registry/*`: push authorization by team and scope, info, provisioning (admin only)."""

from __future__ import annotations

from platform_support import World


def authorize(world: World, role: str, image: str, scope: str = "tenant", **extra: str) -> tuple[int, dict]:
    answer = world.call(role, "POST", "/registry/authorize", {"image": image, "scope": scope, **extra})
    return answer.status_code, answer.json()


def test_short_tenant_names_get_the_callers_team_prefix(world: World) -> None:
    host = world.ok("member", "GET", "/registry/info")["host"]
    status, body = authorize(world, "member", "payments:v1")
    assert status == 200, body
    assert body["reference"] == f"{host}/acme/payments:v1"
    assert body["namespace"] == "mcp-team-acme"


def test_a_tenant_push_under_another_teams_prefix_is_refused(world: World) -> None:
    host = world.ok("member", "GET", "/registry/info")["host"]
    status, body = authorize(world, "member", f"{host}/globex/payments:v1")
    assert status == 403
    assert "globex/" in body["message"] and "not one of your teams" in body["message"]
    assert authorize(world, "other", "globex/payments:v1")[0] == 200


def test_org_and_public_pushes_need_write_access_to_the_catalog(world: World) -> None:
    assert authorize(world, "member", "payments:v1", "org")[0] == 403
    status, body = authorize(world, "admin", "payments:v1", "public")
    assert status == 200 and body["repository"] == "public/payments"
    status, body = authorize(world, "admin", "org/payments:v1", "public")
    assert status == 403 and "public images live under public/" in body["message"]


def test_a_reference_to_another_registry_is_refused(world: World) -> None:
    status, body = authorize(world, "member", "registry.example.com/acme/payments:v1")
    assert status == 422 and body["error"] == "wrong_registry"


def test_only_admins_provision_an_external_registry(world: World) -> None:
    assert world.call("member", "PUT", "/registry", {"url": "https://registry.example.com"}).status_code == 403
    before = world.ok("admin", "GET", "/registry/info")
    try:
        answer = world.ok("admin", "PUT", "/registry", {"url": "https://registry.example.com/"})
        assert answer["host"] == "registry.example.com" and answer["kind"] == "external"
        status, body = authorize(world, "member", "payments:v1")
        assert status == 200, body
        assert body["reference"] == "registry.example.com/acme/payments:v1"
    finally:
        world.ok("admin", "PUT", "/registry", {"url": before["host"]})
