"""The authorization matrix: every endpoint x every kind of caller -> the status they get.

Callers: anonymous, platform admin, Acme's owner (alice), Acme's member (carol), a member of another
team (bob, Globex, whose team holds a grant on Acme's payments server), and carol's API key.
Resources that a request changes are created fresh for each caller, so rows do not disturb each other.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from platform_support import World, deploy_body, grant_doc, session_doc

ROLES = ("anonymous", "admin", "owner", "member", "other", "apikey")
ACME = "mcp-team-acme"
_counter = itertools.count()


def fresh(prefix: str) -> str:
    return f"{prefix}{next(_counter)}"


# Each preparer returns (path, body); it may create what the request acts on (as admin).
Prepare = Callable[[World], tuple[str, Any]]


def fixed(path: str, body: Any = None) -> Prepare:
    return lambda _world: (path, body)


def wrong_login(_: World) -> tuple[str, Any]:
    return "/auth/login", {"email": f"{fresh('nobody')}@example.com", "password": "wrong"}


def new_team_body(_: World) -> tuple[str, Any]:
    return "/teams", {"slug": fresh("team"), "name": "Temp"}


def existing_team(w: World) -> tuple[str, Any]:
    slug = fresh("team")
    w.ok("admin", "POST", "/teams", {"slug": slug})
    return f"/teams/{slug}", None


def existing_member(w: World) -> tuple[str, Any]:
    email = f"{fresh('leaver')}@acme.com"
    w.ok("admin", "POST", "/teams/acme/users", {"email": email, "password": "secret123"})
    return f"/teams/acme/users/{email}", None


def new_user_body(_: World) -> tuple[str, Any]:
    return "/teams/acme/users", {"email": f"{fresh('user')}@acme.com", "password": "secret123"}


def new_server_body(_: World) -> tuple[str, Any]:
    return "/runtime/servers", deploy_body(fresh("srv"), ACME)


def existing_server(w: World) -> tuple[str, Any]:
    name = fresh("srv")
    w.ok("admin", "POST", "/runtime/servers", deploy_body(name, ACME))
    return f"/runtime/servers/{ACME}/{name}", None


def new_grant_body(_: World) -> tuple[str, Any]:
    return "/runtime/grants", grant_doc(fresh("grant"), ACME, "payments", {"agentID": "tmp-agent"})


def existing_grant(suffix: str = "", method_body: bool = False) -> Prepare:
    def prepare(w: World) -> tuple[str, Any]:
        doc = grant_doc(fresh("grant"), ACME, "payments", {"agentID": "tmp-agent"})
        w.ok("admin", "POST", "/runtime/grants", doc)
        return f"/runtime/grants/{ACME}/{doc['metadata']['name']}{suffix}", (doc if method_body else None)
    return prepare


def new_session_body(_: World) -> tuple[str, Any]:
    return "/runtime/sessions", session_doc(fresh("sess"), ACME, "payments", {"agentID": "tmp-agent"})


def existing_session(suffix: str = "", revoked: bool = False, method_body: bool = False) -> Prepare:
    def prepare(w: World) -> tuple[str, Any]:
        doc = session_doc(fresh("sess"), ACME, "payments", {"agentID": "tmp-agent"}, revoked=revoked)
        w.ok("admin", "POST", "/runtime/sessions", doc)
        return f"/runtime/sessions/{ACME}/{doc['metadata']['name']}{suffix}", (doc if method_body else None)
    return prepare


def virtual_body(name: str) -> dict[str, Any]:
    return {"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPVirtualServer",
            "metadata": {"name": name, "namespace": ACME}, "spec": {"members": [{"serverRef": {"name": "payments"}}]}}


def new_virtual_body(_: World) -> tuple[str, Any]:
    return "/runtime/virtualservers", virtual_body(fresh("vs"))


def existing_virtual(w: World) -> tuple[str, Any]:
    name = fresh("vs")
    w.ok("admin", "POST", "/runtime/virtualservers", virtual_body(name))
    return f"/runtime/virtualservers/{ACME}/{name}", None


def pending_approval(approver: str, action: str) -> Prepare:
    """A call of payments' echo by bob (Globex) held for approval: the caller's or the owners'."""
    def prepare(w: World) -> tuple[str, Any]:
        from mcp_runtime.platform.approvals import ApprovalCall
        from mcp_runtime.resources.approval import Approver, arguments_digest

        call = ApprovalCall(namespace=ACME, server="payments", tool="echo", arguments_digest=arguments_digest({}),
                            arguments="{}", human_id="bob@globex.com", agent_id="cursor", team_id=None,
                            session_id=fresh("s"), approver=Approver(approver), timeout_seconds=60)
        return f"/runtime/approvals/{w.live.platform.approvals.open(call).id}/{action}", None
    return prepare


def existing_secret(w: World) -> tuple[str, Any]:
    name = fresh("sec")
    w.ok("admin", "PUT", f"/secrets/{ACME}/{name}", {"data": {"k": "v"}})
    return f"/secrets/{ACME}/{name}", None


def dead_registry(path: str) -> Prepare:
    """The platform pointed at a registry address where nothing listens (port 9), so answers do not
    depend on whether some registry runs on this machine."""
    def prepare(w: World) -> tuple[str, Any]:
        w.ok("admin", "PUT", "/registry", {"url": DEAD_REGISTRY})
        return path, None
    return prepare


DEAD_REGISTRY = "127.0.0.1:9"
PUSH = {"image": "acme/payments:v1", "scope": "tenant"}
ADAPTER = {"server": "payments", "agent": "cursor", "agentID": "cursor"}
EXPLAIN = {"server": "payments", "namespace": ACME, "tool": "echo", "agentID": "cursor"}
# a simulation is for those who may apply the change: globex can see payments (it holds a grant on it)
# but may not change its access (403); ledger it cannot see at all (404)
SIMULATE = {"server": "payments", "namespace": ACME, "deleteGrants": ["acme-cursor"]}
SIMULATE_PRIVATE = {"server": "ledger", "namespace": ACME,
                    "grants": [grant_doc("ledger-tmp", ACME, "ledger", {"agentID": "tmp-agent"})]}

#                                                                       anon admin owner member other apikey
MATRIX: list[tuple[str, str, Prepare, str]] = [
    ("health", "GET", fixed("/healthz"),                                 "200 200 200 200 200 200"),
    ("jwks", "GET", fixed("/auth/jwks"),                                 "200 200 200 200 200 200"),
    ("openapi", "GET", fixed("/openapi.json"),                           "200 200 200 200 200 200"),
    ("me", "GET", fixed("/auth/me"),                                     "401 200 200 200 200 200"),
    ("logout", "POST", fixed("/auth/logout"),                            "401 204 204 204 204 204"),
    ("create api key", "POST", fixed("/user/api-keys", {"name": "x"}),   "401 201 201 201 201 201"),
    ("list api keys", "GET", fixed("/user/api-keys"),                    "401 200 200 200 200 200"),
    ("delete unknown api key", "DELETE", fixed("/user/api-keys/nope"),   "401 404 404 404 404 404"),
    ("list teams", "GET", fixed("/teams"),                               "401 200 200 200 200 200"),
    ("create team", "POST", new_team_body,                               "401 201 403 403 403 403"),
    ("get team", "GET", fixed("/teams/acme"),                            "401 200 200 200 403 200"),
    ("delete team", "DELETE", existing_team,                             "401 204 403 403 403 403"),
    ("rename team", "PATCH", lambda w: (existing_team(w)[0], {"name": "New"}), "401 200 403 403 403 403"),
    ("remove team user", "DELETE", existing_member,                      "401 204 204 403 403 403"),
    ("add team user", "POST", new_user_body,                             "401 201 201 403 403 403"),
    ("list team users", "GET", fixed("/teams/acme/users"),               "401 200 200 200 403 200"),
    ("deploy server", "POST", new_server_body,                           "401 201 201 201 403 201"),
    ("list servers", "GET", fixed("/runtime/servers"),                   "401 200 200 200 200 200"),
    ("get granted server", "GET", fixed(f"/runtime/servers/{ACME}/payments"), "401 200 200 200 200 200"),
    ("get private server", "GET", fixed(f"/runtime/servers/{ACME}/ledger"),   "401 200 200 200 404 200"),
    ("delete server", "DELETE", existing_server,                         "401 200 200 403 404 403"),
    ("server policy", "GET", fixed(f"/runtime/servers/{ACME}/payments/policy"), "401 200 200 200 200 200"),
    ("private policy", "GET", fixed(f"/runtime/servers/{ACME}/ledger/policy"),  "401 200 200 200 404 200"),
    ("create grant", "POST", new_grant_body,                             "401 201 201 201 403 201"),
    ("list grants", "GET", fixed("/runtime/grants"),                     "401 200 200 200 200 200"),
    ("get shared grant", "GET", fixed(f"/runtime/grants/{ACME}/payments-to-globex"), "401 200 200 200 200 200"),
    ("get internal grant", "GET", fixed(f"/runtime/grants/{ACME}/acme-cursor"),      "401 200 200 200 404 200"),
    ("replace grant", "PUT", existing_grant(method_body=True),           "401 200 200 200 403 200"),
    ("disable grant", "POST", existing_grant("/disable"),                "401 200 200 200 404 200"),
    ("enable grant", "POST", existing_grant("/enable"),                  "401 200 200 200 404 200"),
    ("delete grant", "DELETE", existing_grant(),                         "401 200 200 200 404 200"),
    ("apply session", "POST", new_session_body,                          "401 201 403 403 403 403"),
    ("list sessions", "GET", fixed("/runtime/sessions"),                 "401 200 200 200 200 200"),
    ("get session", "GET", existing_session(),                           "401 200 200 200 404 200"),
    ("revoke session", "POST", existing_session("/revoke"),              "401 200 200 403 404 403"),
    ("unrevoke session", "POST", existing_session("/unrevoke", True),    "401 200 403 403 404 403"),
    ("session token", "POST", existing_session("/token"),                "401 200 200 403 404 403"),
    ("delete session", "DELETE", existing_session(),                     "401 200 403 403 404 403"),
    ("apply virtual server", "POST", new_virtual_body,                  "401 201 201 201 403 201"),
    ("list virtual servers", "GET", fixed("/runtime/virtualservers"),   "401 200 200 200 200 200"),
    ("get virtual server", "GET", existing_virtual,                     "401 200 200 200 404 200"),
    ("delete virtual server", "DELETE", existing_virtual,               "401 200 200 403 404 403"),
    ("adapter session", "POST", fixed("/runtime/adapter/sessions", ADAPTER), "401 403 200 200 200 200"),
    ("failed login", "POST", wrong_login,                                "401 401 401 401 401 401"),
    ("refresh", "POST", fixed("/auth/refresh", {"refreshToken": "nope"}), "401 401 401 401 401 401"),
    ("replace session", "PUT", existing_session(method_body=True),       "401 200 403 403 403 403"),
    ("explain", "POST", fixed("/runtime/explain", EXPLAIN),              "401 200 200 200 200 200"),
    ("simulate", "POST", fixed("/runtime/simulate", SIMULATE),           "401 200 200 200 403 200"),
    ("simulate private", "POST", fixed("/runtime/simulate", SIMULATE_PRIVATE), "401 200 200 200 404 200"),
    ("audit", "GET", fixed("/audit"),                                    "401 200 403 403 403 403"),
    ("audit export", "GET", fixed("/audit/export"),                      "401 200 403 403 403 403"),
    ("registry info", "GET", fixed("/registry/info"),                    "401 200 200 200 200 200"),
    ("registry status", "GET", dead_registry("/registry/status"),        "401 200 200 200 200 200"),
    ("registry catalog (down)", "GET", dead_registry("/registry/catalog"), "401 502 502 502 502 502"),
    ("authorize push", "POST", fixed("/registry/authorize", PUSH),       "401 200 200 200 403 200"),
    ("provision registry", "PUT", fixed("/registry", {"url": DEAD_REGISTRY}), "401 200 403 403 403 403"),
    ("server status", "GET", fixed(f"/runtime/servers/{ACME}/payments/status"), "401 200 200 200 200 200"),
    ("private status", "GET", fixed(f"/runtime/servers/{ACME}/ledger/status"),  "401 200 200 200 404 200"),
    ("server events", "GET", fixed(f"/runtime/servers/{ACME}/payments/events"), "401 200 200 200 200 200"),
    ("private events", "GET", fixed(f"/runtime/servers/{ACME}/ledger/events"),  "401 200 200 200 404 200"),
    # no runtime runs servers here: the team gets 501 logs_unavailable, a grantee may not read logs at all
    ("server logs", "GET", fixed(f"/runtime/servers/{ACME}/payments/logs"),     "401 501 501 501 403 501"),
    ("private logs", "GET", fixed(f"/runtime/servers/{ACME}/ledger/logs"),      "401 501 501 501 404 501"),
    ("server tools", "GET", fixed(f"/runtime/servers/{ACME}/payments/tools"),   "401 200 200 200 200 200"),
    ("private tools", "GET", fixed(f"/runtime/servers/{ACME}/ledger/tools"),    "401 200 200 200 404 200"),
    # owners only; with nothing listed yet, those allowed get 409 tools_not_seen
    ("approve tools", "POST", fixed(f"/runtime/servers/{ACME}/payments/tools/approve", {}),
     "401 409 409 403 403 403"),
    ("approve private tools", "POST", fixed(f"/runtime/servers/{ACME}/ledger/tools/approve", {}),
     "401 409 409 403 404 403"),
    # secrets are write-only and for the namespace's team: another team gets 403, values never come back
    ("set secret", "PUT", fixed(f"/secrets/{ACME}/tok", {"data": {"k": "v"}}), "401 200 200 200 403 200"),
    ("list secrets", "GET", fixed(f"/secrets/{ACME}"),                  "401 200 200 200 403 200"),
    ("delete secret", "DELETE", existing_secret,                        "401 200 200 200 403 200"),
    ("delete unknown secret", "DELETE", fixed(f"/secrets/{ACME}/nope"), "401 404 404 404 403 404"),
    ("platform status", "GET", fixed("/status"),                         "200 200 200 200 200 200"),
    ("analytics usage", "GET", fixed("/analytics/usage"),                "401 200 200 200 200 200"),
    ("analytics events", "GET", fixed("/analytics/events"),              "401 200 200 200 200 200"),
    # only ingest keys may send events: no user credential, not even an admin's, is one
    ("ingest events", "POST", fixed("/ingest/events", {"events": []}),   "401 401 401 401 401 401"),
    ("ingest tools", "POST", fixed("/ingest/tools", {"namespace": ACME, "server": "payments", "tools": {}}),
     "401 401 401 401 401 401"),
    # approvals: everyone signed in lists those they may decide; the caller's own (bob) or the owners'
    ("list approvals", "GET", fixed("/runtime/approvals"),              "401 200 200 200 200 200"),
    ("approve own call", "POST", pending_approval("caller", "approve"), "401 200 200 403 200 403"),
    ("deny own call", "POST", pending_approval("caller", "deny"),       "401 200 200 403 200 403"),
    ("approve for owners", "POST", pending_approval("owners", "approve"), "401 200 200 403 404 403"),
    ("decide unknown", "POST", fixed("/runtime/approvals/apr_nope/deny"), "401 404 404 404 404 404"),
    ("ingest approval", "POST", fixed("/ingest/approvals", {}),          "401 401 401 401 401 401"),
    ("ingest approval wait", "GET", fixed("/ingest/approvals/apr_nope"), "401 401 401 401 401 401"),
    ("ingest approval finish", "POST", fixed("/ingest/approvals/apr_nope/finish", {"status": "timeout"}),
     "401 401 401 401 401 401"),
]


@pytest.mark.parametrize(("endpoint", "method", "prepare", "expected"), MATRIX, ids=[row[0] for row in MATRIX])
def test_authorization_matrix(world: World, endpoint: str, method: str, prepare: Prepare, expected: str) -> None:
    wrong = []
    for role, status in zip(ROLES, expected.split(), strict=True):
        path, body = prepare(world)
        answer = world.call(role, method, path, body)
        if answer.status_code != int(status):
            wrong.append(f"{role}: expected {status}, got {answer.status_code} {answer.text[:200]}")
        elif answer.status_code >= 400:
            envelope = answer.json()
            assert set(envelope) >= {"error", "message"} and envelope["message"], envelope
    assert not wrong, f"{method} {endpoint}:\n" + "\n".join(wrong)


def test_every_route_is_in_the_matrix(world: World) -> None:
    """A new endpoint must be added to the matrix above."""
    paths = world.call("anonymous", "GET", "/openapi.json").json()["paths"]
    declared = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    covered = {method for _, method, _, _ in MATRIX}
    assert covered <= {"GET", "POST", "PUT", "PATCH", "DELETE"}
    # one row per (method, route shape): compare route shapes with the prepared paths' shapes
    shapes = set()
    for _, method, prepare, _ in MATRIX:
        path, _ = prepare(world)
        shapes.add((method, _shape(path)))
    missing = {(m, p) for m, p in declared if (m, _shape(p)) not in shapes}
    assert not missing, f"routes without a matrix row: {sorted(missing)}"


def _shape(path: str) -> str:
    path = path.removeprefix("/api/v1")
    parts = path.strip("/").split("/")
    fixed_words = {"auth", "user", "api-keys", "teams", "users", "runtime", "servers", "grants", "sessions",
                   "policy", "enable", "disable", "revoke", "unrevoke", "token", "adapter", "explain", "audit",
                   "healthz", "jwks", "me", "logout", "login", "refresh", "openapi.json", "status", "logs",
                   "events", "simulate", "secrets", "export"}
    return "/" + "/".join(p if p in fixed_words else "*" for p in parts)
