"""Servers, grants, sessions and policies through the API, as the multi-team tutorial uses them."""

from __future__ import annotations

import threading
from typing import Any

from platform_support import World, deploy_body, grant_doc, session_doc

from mcp_runtime.policy import PolicyDocument
from mcp_runtime.security import verify_session_token

ACME = "mcp-team-acme"


def _adapter(world: World, role: str, **body: Any) -> Any:
    return world.call(role, "POST", "/runtime/adapter/sessions", {"agent": "cursor", "agentID": "cursor", **body})


def test_cross_team_grant_gives_globex_a_session_on_acme_server(world: World) -> None:
    globex_id = world.teams["globex"]["id"]
    answer = _adapter(world, "other", server="payments")
    assert answer.status_code == 200, answer.text
    issued = answer.json()
    assert issued["namespace"] == ACME and issued["grant"] == "payments-to-globex"
    assert issued["humanID"] == "bob@globex.com" and issued["teamID"] == globex_id
    claims = verify_session_token(issued["token"], world.live.platform.keyring.public_keys(),
                                  audience=f"mcp-server:{ACME}/payments")
    assert (claims.human_id, claims.agent_id, claims.team_id) == ("bob@globex.com", "cursor", globex_id)
    assert claims.session_id == issued["session"]["metadata"]["name"]
    # asking again reuses the same session
    again = _adapter(world, "other", server="payments").json()
    assert again["reused"] and again["session"]["metadata"]["name"] == claims.session_id
    # dave is in Globex too and the grant names Globex's team: he may use it as agent cursor...
    assert _adapter(world, "dave", server="payments").status_code == 200
    # ...but not as another agent
    denied = _adapter(world, "dave", server="payments", agentID="claude", agent="claude")
    assert denied.status_code == 403 and denied.json()["error"] == "no_matching_grant"


def test_globex_member_without_grant_is_refused(world: World) -> None:
    denied = _adapter(world, "other", server="ledger")
    assert denied.status_code == 403
    assert denied.json()["error"] == "no_matching_grant"


def test_globex_cannot_write_in_acme_namespace(world: World) -> None:
    globex_id = world.teams["globex"]["id"]
    grant = grant_doc("globex-self-service", ACME, "payments", {"teamID": globex_id})
    answer = world.call("other", "POST", "/runtime/grants", grant)
    assert answer.status_code == 403 and "mcp-team-acme" in answer.json()["message"]
    deploy = world.call("other", "POST", "/runtime/servers", deploy_body("intruder", ACME))
    assert deploy.status_code == 403


def test_grant_may_only_reference_servers_in_its_namespace(world: World) -> None:
    grant = grant_doc("cross-ns", ACME, "payments", {"agentID": "cursor"})
    grant["spec"]["serverRef"]["namespace"] = "mcp-team-globex"
    answer = world.call("owner", "POST", "/runtime/grants", grant)
    assert answer.status_code == 422 and "namespace" in answer.json()["message"]
    missing = world.call("owner", "POST", "/runtime/grants", grant_doc("ghost", ACME, "ghost", {"agentID": "x"}))
    assert missing.status_code == 404 and missing.json()["error"] == "server_not_found"


def test_team_slug_instead_of_uuid_gets_a_hint(world: World) -> None:
    answer = world.call("owner", "POST", "/runtime/grants",
                        grant_doc("by-slug", ACME, "payments", {"teamID": "globex"}))
    assert answer.status_code == 422
    assert world.teams["globex"]["id"] in answer.json()["message"]


def test_consented_trust_is_capped_by_the_grant_and_ttl_by_24h(world: World) -> None:
    answer = _adapter(world, "member", server="payments", trust="high", ttlSeconds=7 * 86400, agent="carol-hi")
    assert answer.status_code == 200, answer.text
    issued = answer.json()
    assert issued["consentedTrust"] == "medium"  # acme-cursor grant: maxTrust medium
    claims = verify_session_token(issued["token"], world.live.platform.keyring.public_keys(),
                                  audience=f"mcp-server:{ACME}/payments")
    lifetime = claims.expires_at - claims.issued_at
    assert 23 * 3600 < lifetime.total_seconds() <= 24 * 3600


def test_revoked_adapter_session_stays_revoked_until_unrevoked(world: World) -> None:
    issued = _adapter(world, "member", server="payments", agent="carol-revoke").json()
    name = issued["session"]["metadata"]["name"]
    revoked = world.call("owner", "POST", f"/runtime/sessions/{ACME}/{name}/revoke")
    assert revoked.status_code == 200 and revoked.json()["status"]["phase"] == "Revoked"
    again = _adapter(world, "member", server="payments", agent="carol-revoke")
    assert again.status_code == 403 and again.json()["error"] == "session_revoked"
    token = world.call("admin", "POST", f"/runtime/sessions/{ACME}/{name}/token")
    assert token.status_code == 403 and token.json()["error"] == "session_revoked"
    assert world.call("admin", "POST", f"/runtime/sessions/{ACME}/{name}/unrevoke").status_code == 200
    assert _adapter(world, "member", server="payments", agent="carol-revoke").status_code == 200


def test_admin_session_apply_returns_a_token_and_statuses_are_written(world: World) -> None:
    globex_id = world.teams["globex"]["id"]
    doc = session_doc("globex-payments-session", ACME, "payments", {"teamID": globex_id, "agentID": "cursor"},
                      consentedTrust="low", expiresAt="2099-01-01T00:00:00Z")
    answer = world.call("admin", "POST", "/runtime/sessions", doc)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["session"]["status"]["phase"] == "Active" and body["token"].count(".") == 2
    expired = session_doc("old-session", ACME, "payments", {"agentID": "cursor"}, expiresAt="2001-01-01T00:00:00Z")
    assert world.call("admin", "POST", "/runtime/sessions", expired).json()["session"]["status"]["phase"] == "Expired"
    grant = grant_doc("to-disable", ACME, "payments", {"agentID": "someone"})
    assert world.ok("owner", "POST", "/runtime/grants", grant)["status"]["phase"] == "Active"
    disabled = world.ok("owner", "POST", f"/runtime/grants/{ACME}/to-disable/disable")
    assert disabled["status"]["phase"] == "Disabled" and disabled["spec"]["disabled"] is True
    old = grant_doc("old-grant", ACME, "payments", {"agentID": "someone"}, expiresAt="2001-01-01T00:00:00Z")
    assert world.ok("owner", "POST", "/runtime/grants", old)["status"]["phase"] == "Expired"


def test_policy_is_recompiled_and_published_on_every_change(world: World) -> None:
    seen: list[tuple[str, str, PolicyDocument | None]] = []
    changed = threading.Event()

    def on_policy(namespace: str, name: str, document: PolicyDocument | None) -> None:
        seen.append((namespace, name, document))
        changed.set()

    unsubscribe = world.live.platform.publisher.subscribe(on_policy, replay=False)
    try:
        before = world.ok("owner", "GET", f"/runtime/servers/{ACME}/payments/policy")
        world.ok("owner", "POST", "/runtime/grants",
                 grant_doc("published", ACME, "payments", {"agentID": "ci-bot"}, toolRules=[{"name": "echo"}]))
        assert changed.wait(5)
        namespace, name, document = seen[-1]
        assert (namespace, name) == (ACME, "payments") and document is not None
        assert "published" in [g.name for g in document.grants]
        after = world.ok("owner", "GET", f"/runtime/servers/{ACME}/payments/policy")
        assert after["revision"] == document.revision != before["revision"]
        assert PolicyDocument.from_json(world.call("owner", "GET",
                                                   f"/runtime/servers/{ACME}/payments/policy").content)
    finally:
        unsubscribe()


def test_explain_uses_the_evaluator(world: World) -> None:
    globex_id = world.teams["globex"]["id"]
    body = {"server": "payments", "namespace": ACME, "agentID": "cursor", "teamID": globex_id}
    allowed = world.ok("other", "POST", "/runtime/explain", {**body, "tool": "echo"})
    assert allowed["allowed"] and allowed["matchedGrant"] == "payments-to-globex"
    denied = world.ok("other", "POST", "/runtime/explain", {**body, "tool": "create_task"})
    assert not denied["allowed"] and denied["reason"] == "tool_not_granted"
    unknown = world.ok("other", "POST", "/runtime/explain", {**body, "tool": "drop_tables"})
    assert unknown["reason"] == "tool_side_effect_unknown"
    nobody = world.ok("owner", "POST", "/runtime/explain",
                      {"server": "payments", "tool": "echo", "agentID": "stranger"})
    assert nobody["reason"] == "no_matching_grant"


def test_deploy_scopes_update_and_route_conflicts(world: World) -> None:
    first = world.call("member", "POST", "/runtime/servers", deploy_body("workspace"))
    assert first.status_code == 201
    server = first.json()
    assert server["metadata"]["namespace"] == ACME  # tenant: the caller's only team
    assert server["spec"]["teamID"] == world.teams["acme"]["id"]
    assert server["spec"]["gateway"]["enabled"] is True
    again = world.call("member", "POST", "/runtime/servers", deploy_body("workspace"))
    assert again.status_code == 409 and "--update" in again.json()["message"]
    body = deploy_body("workspace", update=True)
    body["metadata"]["description"] = "v2"
    updated = world.call("member", "POST", "/runtime/servers", body)
    assert updated.status_code == 200 and updated.json()["metadata"]["generation"] == 2
    assert updated.json()["metadata"]["uid"] == server["metadata"]["uid"]
    # globex wants the same route /workspace/mcp
    clash = world.call("other", "POST", "/runtime/servers", deploy_body("workspace"))
    assert clash.status_code == 409 and clash.json()["error"] == "route_conflict"
    # org and public scopes are the catalogs: admins only
    assert world.call("member", "POST", "/runtime/servers", deploy_body("org-tool", scope="org")).status_code == 403
    org = world.ok("admin", "POST", "/runtime/servers", deploy_body("org-tool", scope="org"))
    assert org["metadata"]["namespace"] == "mcp-servers-org"
    public = world.ok("admin", "POST", "/runtime/servers", deploy_body("pub-tool", scope="public"))
    assert public["metadata"]["namespace"] == "mcp-servers-public"
    # everyone signed in sees the catalogs
    listed = {s["metadata"]["name"] for s in world.ok("other", "GET", "/runtime/servers")["items"]}
    assert {"org-tool", "pub-tool", "payments"} <= listed and "ledger" not in listed
    # a spec instead of metadata works too, and the team is chosen explicitly
    spec = {"image": "registry.local/globex/notes:v1", "tools": [{"name": "note", "sideEffect": "write"}]}
    notes = world.ok("other", "POST", "/runtime/servers", {"name": "notes", "team": "globex", "spec": spec})
    assert notes["metadata"]["namespace"] == "mcp-team-globex"
    assert notes["spec"]["teamID"] == world.teams["globex"]["id"]


def test_runtime_hooks_hear_about_server_changes(world: World) -> None:
    events: list[tuple[str, str]] = []

    class Recorder:
        def server_created(self, server: Any) -> None:
            events.append(("created", server.metadata.name))

        def server_updated(self, server: Any) -> None:
            events.append(("updated", server.metadata.name))

        def server_deleted(self, server: Any) -> None:
            events.append(("deleted", server.metadata.name))

    services = world.live.platform.servers
    previous, services.hooks = services.hooks, Recorder()
    try:
        world.ok("owner", "POST", "/runtime/servers", deploy_body("hooked"))
        world.ok("owner", "POST", "/runtime/servers", {**deploy_body("hooked"), "update": True,
                                                      "imageTag": "v2"})
        world.ok("owner", "DELETE", f"/runtime/servers/{ACME}/hooked")
    finally:
        services.hooks = previous
    assert events == [("created", "hooked"), ("updated", "hooked"), ("deleted", "hooked")]


def test_audit_records_who_what_and_before_after(world: World) -> None:
    world.ok("owner", "POST", "/runtime/grants", grant_doc("audited", ACME, "payments", {"agentID": "a"}))
    world.ok("owner", "POST", f"/runtime/grants/{ACME}/audited/disable")
    entries = world.ok("admin", "GET", "/audit?kind=MCPAccessGrant&limit=10")["items"]
    disable = next(e for e in entries if e["name"] == "audited" and e["action"] == "disable")
    assert disable["actor"] == "alice@acme.com"
    assert disable["before"]["spec"]["disabled"] is False and disable["after"]["spec"]["disabled"] is True


def test_adapter_namespace_is_resolved_from_grants_and_ambiguity_lists_candidates(world: World) -> None:
    globex_id = world.teams["globex"]["id"]
    body = deploy_body("payments")
    body["metadata"]["route"] = "/globex-payments"
    world.ok("other", "POST", "/runtime/servers", {**body, "team": "globex"})
    world.ok("other", "POST", "/runtime/grants", grant_doc("own-payments", "mcp-team-globex", "payments",
                                                           {"teamID": globex_id}))
    ambiguous = _adapter(world, "other", server="payments")
    assert ambiguous.status_code == 409
    assert ambiguous.json()["details"]["candidates"] == ["mcp-team-acme", "mcp-team-globex"]
    chosen = _adapter(world, "other", server="payments", namespace="mcp-team-globex")
    assert chosen.status_code == 200 and chosen.json()["grant"] == "own-payments"
    world.ok("other", "DELETE", "/runtime/grants/mcp-team-globex/own-payments")
    assert _adapter(world, "other", server="payments").json()["namespace"] == ACME


def test_grant_conditions_are_validated_and_explained(world: World) -> None:
    globex_id = world.teams["globex"]["id"]
    bad = grant_doc("add-capped", ACME, "payments", {"teamID": globex_id, "agentID": "claude"},
                    toolRules=[{"name": "add", "condition": "args.a <="}])
    refused = world.call("owner", "POST", "/runtime/grants", bad)
    assert refused.status_code == 422
    assert "toolRule 'add'" in refused.json()["message"] and "not a valid CEL" in refused.json()["message"]
    good = grant_doc("add-capped", ACME, "payments", {"teamID": globex_id, "agentID": "claude"},
                     toolRules=[{"name": "add", "condition": "args.a + args.b <= 10"}])
    world.ok("owner", "POST", "/runtime/grants", good)
    body = {"server": "payments", "namespace": ACME, "agentID": "claude", "teamID": globex_id, "tool": "add"}
    small = world.ok("other", "POST", "/runtime/explain", {**body, "arguments": {"a": 2, "b": 3}})
    assert small["allowed"] and small["condition"] == "args.a + args.b <= 10" and not small["conditional"]
    big = world.ok("other", "POST", "/runtime/explain", {**body, "arguments": {"a": 20, "b": 3}})
    assert not big["allowed"] and big["reason"] == "condition_not_met" and big["matchedGrant"] == "add-capped"
    unknown = world.ok("other", "POST", "/runtime/explain", body)
    assert unknown["allowed"] and unknown["conditional"]
