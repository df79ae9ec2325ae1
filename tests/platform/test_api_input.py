"""Bad input gets a clear 4xx with the envelope; a restart of the API loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from platform_support import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    World,
    deploy_body,
    grant_doc,
    platform_settings,
    serve_platform,
)

ACME = "mcp-team-acme"


def _envelope(answer, status: int, code: str | None = None) -> str:  # type: ignore[no-untyped-def]
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) >= {"error", "message"}, body
    if code:
        assert body["error"] == code, body
    return str(body["message"])


def test_malformed_json(world: World) -> None:
    answer = world.call("owner", "POST", "/runtime/grants", content=b'{"kind": ', headers={
        "content-type": "application/json"})
    _envelope(answer, 400, "malformed_json")


def test_unknown_fields_are_named(world: World) -> None:
    grant = grant_doc("typo", ACME, "payments", {"agentID": "cursor"})
    grant["spec"]["maxTrsut"] = "high"
    assert "maxTrsut" in _envelope(world.call("owner", "POST", "/runtime/grants", grant), 422, "invalid_request")
    body = {**deploy_body("typo-server"), "scoep": "tenant"}
    assert "scoep" in _envelope(world.call("owner", "POST", "/runtime/servers", body), 422)
    login = world.live.call("POST", "/auth/login", json={"email": "a@b.c", "password": "x", "remember": True})
    _envelope(login, 422)


def test_wrong_enums(world: World) -> None:
    grant = grant_doc("bad-trust", ACME, "payments", {"agentID": "cursor"}, maxTrust="ultra")
    assert "maxTrust" in _envelope(world.call("owner", "POST", "/runtime/grants", grant), 422)
    body = deploy_body("bad-effect")
    body["metadata"]["tools"] = [{"name": "echo", "sideEffect": "sometimes"}]
    assert "sideEffect" in _envelope(world.call("owner", "POST", "/runtime/servers", body), 422)
    role = world.call("admin", "POST", "/teams/acme/users", {"email": "x@acme.com", "password": "p4ssword",
                                                              "role": "king"})
    _envelope(role, 422)


def test_invalid_assembled_resources_are_422(world: World) -> None:
    bad_name = {**deploy_body("ok"), "name": "Bad_Name"}
    assert "name" in _envelope(world.call("owner", "POST", "/runtime/servers", bad_name), 422)
    body = deploy_body("port-clash")
    body["metadata"]["port"] = 8091  # the gateway's port
    assert "gateway" in _envelope(world.call("owner", "POST", "/runtime/servers", body), 422)


def test_huge_bodies_get_413(world: World) -> None:
    huge = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    answer = world.call("owner", "POST", "/user/api-keys", content=huge, headers={"content-type": "application/json"})
    _envelope(answer, 413, "payload_too_large")
    # also without a Content-Length (chunked upload)
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 65536

    chunked = world.call("owner", "POST", "/user/api-keys", content=chunks(),
                         headers={"content-type": "application/json"})
    _envelope(chunked, 413, "payload_too_large")


def test_duplicates_are_conflicts(world: World) -> None:
    _envelope(world.call("admin", "POST", "/teams", {"slug": "acme", "name": "Again"}), 409, "already_exists")
    world.ok("owner", "POST", "/runtime/grants", grant_doc("dup", ACME, "payments", {"agentID": "cursor"}))
    _envelope(world.call("owner", "POST", "/runtime/grants", grant_doc("dup", ACME, "payments", {"agentID": "x"})),
              409, "already_exists")


@pytest.mark.parametrize("evil", ["x'; DROP TABLE resources; --", "a\" OR 1=1 --", "../../etc/passwd"])
def test_sql_looking_strings_are_just_invalid_names_or_data(world: World, evil: str) -> None:
    _envelope(world.call("owner", "POST", "/runtime/grants", grant_doc(evil, ACME, "payments", {"agentID": "c"})),
              422)
    _envelope(world.call("admin", "POST", "/teams", {"slug": evil}), 422)
    # as data (a subject id) they are stored verbatim and harmless
    grant = grant_doc("evil-subject", ACME, "payments", {"agentID": evil}) if "/" not in evil else None
    if grant:
        world.call("owner", "DELETE", f"/runtime/grants/{ACME}/evil-subject")
        created = world.ok("owner", "POST", "/runtime/grants", grant)
        assert created["spec"]["subject"]["agentID"] == evil
    assert world.call("owner", "GET", "/runtime/servers").status_code == 200
    _envelope(world.call("owner", "GET", f"/runtime/grants/{ACME}/x' OR '1'='1"), 404)


def test_unknown_routes_and_methods(world: World) -> None:
    _envelope(world.call("owner", "GET", "/no/such/thing"), 404, "not_found")
    _envelope(world.call("owner", "PATCH", "/teams"), 405, "method_not_allowed")
    _envelope(world.call("owner", "POST", "/runtime/grants", [1, 2, 3]), 422)


def test_restart_loses_nothing(db_url: str, tmp_path: Path) -> None:
    settings = platform_settings(tmp_path / "data", db_url)
    with serve_platform(settings) as live:
        admin = live.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        token = admin["accessToken"]
        assert live.call("POST", "/teams", token=token, json={"slug": "keep", "name": "Keep"}).status_code == 201
        deployed = live.call("POST", "/runtime/servers", token=token,
                             json={**deploy_body("kept"), "team": "keep"})
        assert deployed.status_code == 201, deployed.text
        grant = grant_doc("kept-grant", "mcp-team-keep", "kept", {"agentID": "cursor"})
        assert live.call("POST", "/runtime/grants", token=token, json=grant).status_code == 201
        jwks = live.call("GET", "/auth/jwks").json()
        revision = live.call("GET", "/runtime/servers/mcp-team-keep/kept/policy", token=token).json()["revision"]
    with serve_platform(settings) as live:
        # the same signing keys (old tokens still verify), users, refresh tokens, resources and policy
        assert live.call("GET", "/auth/jwks").json() == jwks
        assert live.call("GET", "/auth/me", token=token).status_code == 200
        assert live.call("POST", "/auth/refresh", json={"refreshToken": admin["refreshToken"]}).status_code == 200
        assert live.call("GET", "/runtime/grants/mcp-team-keep/kept-grant", token=token).status_code == 200
        again = live.call("GET", "/runtime/servers/mcp-team-keep/kept/policy", token=token).json()
        assert again["revision"] == revision
        assert any(e["name"] == "kept-grant" for e in live.call("GET", "/audit", token=token).json()["items"])


def test_openapi_is_published_with_resource_schemas(world: World) -> None:
    document = world.call("anonymous", "GET", "/openapi.json").json()
    schemas = document["components"]["schemas"]
    body = document["paths"]["/api/v1/runtime/grants"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == "#/components/schemas/MCPAccessGrant"
    assert "serverRef" in schemas["AccessGrantSpec"]["properties"]

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    dangling = {r for r in refs(document) if r.removeprefix("#/components/schemas/") not in schemas}
    assert not dangling
