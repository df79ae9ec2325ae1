"""MCPVirtualServer through the API: members must be visible, another team's only when a grant shares
it; the virtual server's sessions are compiled into every member's policy (and leave it again)."""

from __future__ import annotations

import json
from typing import Any

from platform_support import World, deploy_body, session_doc

GLOBEX = "mcp-team-globex"
ACME = "mcp-team-acme"


def virtual_doc(name: str, namespace: str, members: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPVirtualServer",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"members": members, **spec}}


def test_a_member_shared_by_a_grant_is_accepted_and_its_policy_gets_the_virtual_session(world: World) -> None:
    body = virtual_doc("globex-tools", GLOBEX, [{"serverRef": {"name": "payments", "namespace": ACME}}])
    created = world.call("other", "POST", "/runtime/virtualservers", body)
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["teamID"] == world.teams["globex"]["id"]
    try:
        listed = world.ok("other", "GET", f"/runtime/virtualservers?namespace={GLOBEX}")["items"]
        assert [v["metadata"]["name"] for v in listed] == ["globex-tools"]
        session = session_doc("vs-bob", GLOBEX, "globex-tools",
                              {"teamID": world.teams["globex"]["id"], "agentID": "cursor"})
        issued = world.call("admin", "POST", "/runtime/sessions", session)
        assert issued.status_code == 201, issued.text
        policy = json.loads(world.call("owner", "GET", f"/runtime/servers/{ACME}/payments/policy").content)
        assert f"{GLOBEX}/vs-bob" in [s["name"] for s in policy["sessions"]]
        world.ok("admin", "POST", f"/runtime/sessions/{GLOBEX}/vs-bob/revoke")
        policy = json.loads(world.call("owner", "GET", f"/runtime/servers/{ACME}/payments/policy").content)
        assert next(s for s in policy["sessions"] if s["name"] == f"{GLOBEX}/vs-bob")["revoked"] is True
        world.ok("admin", "DELETE", f"/runtime/sessions/{GLOBEX}/vs-bob")
    finally:
        member_delete = world.call("other", "DELETE", f"/runtime/virtualservers/{GLOBEX}/globex-tools")
        assert member_delete.status_code == 403  # like servers: members apply, owners and admins delete
        world.ok("admin", "DELETE", f"/runtime/virtualservers/{GLOBEX}/globex-tools")
    assert world.call("other", "GET", f"/runtime/virtualservers/{GLOBEX}/globex-tools").status_code == 404


def test_a_member_the_owner_cannot_see_is_refused_with_the_reason(world: World) -> None:
    body = virtual_doc("sneaky", GLOBEX, [{"serverRef": {"name": "ledger", "namespace": ACME}}])
    refused = world.call("other", "POST", "/runtime/virtualservers", body)
    assert refused.status_code == 403 and refused.json()["error"] == "member_not_visible"
    assert "no grant shares it" in refused.json()["message"] and "subject.teamID" in refused.json()["message"]
    missing = world.call("owner", "POST", "/runtime/virtualservers",
                         virtual_doc("ghost", ACME, [{"serverRef": {"name": "nope"}}]))
    assert missing.status_code == 422 and missing.json()["error"] == "member_not_found"


def test_bad_virtual_servers_are_refused_before_anything_is_stored(world: World) -> None:
    collision = virtual_doc("clash", ACME, [{"serverRef": {"name": "payments"}, "prefix": "p_"},
                                            {"serverRef": {"name": "ledger"}, "prefix": "p_l_"}])
    answer = world.call("owner", "POST", "/runtime/virtualservers", collision)
    assert answer.status_code == 422 and "prefix collision" in answer.json()["message"]
    same_name = world.call("owner", "POST", "/runtime/virtualservers",
                           virtual_doc("payments", ACME, [{"serverRef": {"name": "ledger"}}]))
    assert same_name.status_code == 409 and same_name.json()["error"] == "name_conflict"
    world.ok("owner", "POST", "/runtime/virtualservers",
             virtual_doc("vs-taken", ACME, [{"serverRef": {"name": "ledger"}}]))
    try:
        server = world.call("owner", "POST", "/runtime/servers", deploy_body("vs-taken"))
        assert server.status_code == 409 and server.json()["error"] == "name_conflict"
    finally:
        world.ok("admin", "DELETE", f"/runtime/virtualservers/{ACME}/vs-taken")
    foreign = world.call("other", "POST", "/runtime/virtualservers",
                         virtual_doc("x", ACME, [{"serverRef": {"name": "ledger"}}]))
    assert foreign.status_code == 403
    stored = {v["metadata"]["name"] for v in world.ok("admin", "GET", "/runtime/virtualservers")["items"]}
    assert not stored & {"clash", "payments", "x", "sneaky", "ghost"}
