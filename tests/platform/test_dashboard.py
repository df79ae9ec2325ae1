"""The dashboard: login session, CSRF, what each user sees, session revocation, and a real Chromium run.

Events reach the store through the ingest API, as the gateway sends them. The browser test drives the
system's Chromium with Playwright (no downloaded browser) and saves screenshots to test-artifacts/.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_support import LiveSite, csrf_of, login_client, serve_site
from platform_support import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PASSWORDS,
    deploy_body,
    grant_doc,
    platform_settings,
    session_doc,
)

from mcp_runtime.sentinel.events import AnalyticsEvent
from mcp_runtime.store.sql import sqlite_url

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ACME_NS = "mcp-team-acme"


def _api(site: LiveSite, token: str, method: str, path: str, body: Any = None) -> Any:
    answer = httpx.request(method, f"{site.url}/api/v1{path}", json=body, timeout=30,
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.is_success, f"{method} {path}: {answer.status_code} {answer.text}"
    return answer.json() if answer.content else None


def _token(site: LiveSite, email: str, password: str) -> str:
    answer = httpx.post(f"{site.url}/api/v1/auth/login", json={"email": email, "password": password}, timeout=30)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["accessToken"])


def _tutorial_traffic(acme: str, globex: str) -> list[AnalyticsEvent]:
    """Step 6-8 of the multi-team tutorial as the gateway reports it, spread over the last hours."""
    now = datetime.now(UTC)
    bob = {"human_id": "bob@globex.com", "agent_id": "cursor", "team_id": acme, "subject_team_id": globex,
           "session_id": "globex-payments-session", "matched_grant": "payments-to-globex"}
    alice = {"human_id": "alice@acme.com", "agent_id": "claude", "team_id": acme, "subject_team_id": acme}
    events = []
    for i in range(60):
        who = bob if i % 3 else alice
        tool = ["echo", "add", "echo", "upper"][i % 4]
        denied = i % 11 == 0 and who is bob
        events.append(AnalyticsEvent(
            server="payments", namespace=ACME_NS, rpc_method="tools/call", tool_name="create_task" if denied else tool,
            decision="deny" if denied else "allow", reason="tool_not_granted" if denied else "allowed",
            status=200, latency_ms=2.0 + i % 7, timestamp=now - timedelta(minutes=5 + i * 17), **who))
    events.append(AnalyticsEvent(server="workspace", namespace="mcp-team-globex", rpc_method="tools/call",
                                 tool_name="slugify", decision="allow", reason="allowed", status=200,
                                 latency_ms=1.0, human_id="dave@globex.com", agent_id="claude", team_id=globex,
                                 subject_team_id=globex, timestamp=now - timedelta(minutes=3)))
    return events


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    data_dir = tmp_path_factory.mktemp("dashboard")
    settings = platform_settings(data_dir, sqlite_url(data_dir))
    with serve_site(settings) as served:
        admin = _token(served, ADMIN_EMAIL, ADMIN_PASSWORD)
        teams = {slug: _api(served, admin, "POST", "/teams", {"slug": slug, "name": name})
                 for slug, name in (("acme", "Acme Corp"), ("globex", "Globex Corp"), ("initech", "Initech"))}
        for team, email, role in (("acme", "alice@acme.com", "owner"), ("acme", "carol@acme.com", "member"),
                                  ("globex", "bob@globex.com", "member"), ("globex", "dave@globex.com", "member"),
                                  ("initech", "erin@initech.com", "member")):
            _api(served, admin, "POST", f"/teams/{team}/users",
                 {"username": email, "password": PASSWORDS.get(email, "erin-pass"), "role": role})
        alice = _token(served, "alice@acme.com", PASSWORDS["alice@acme.com"])
        body = deploy_body("payments")
        body["metadata"]["description"] = "Invoices and payments for Acme."
        _api(served, alice, "POST", "/runtime/servers", body)
        globex_id, acme_id = teams["globex"]["id"], teams["acme"]["id"]
        _api(served, alice, "POST", "/runtime/grants", grant_doc(
            "payments-to-globex", ACME_NS, "payments", {"teamID": globex_id, "agentID": "cursor"},
            toolRules=[{"name": "echo"}, {"name": "add"}]))
        _api(served, admin, "POST", "/runtime/sessions", session_doc(
            "globex-payments-session", ACME_NS, "payments", {"teamID": globex_id, "agentID": "cursor"},
            consentedTrust="low"))
        events = _tutorial_traffic(acme_id, globex_id)
        answer = httpx.post(f"{served.url}/api/v1/ingest/events", timeout=30,
                            headers={"Authorization": f"Bearer {served.platform.ingest_keys.local_key}"},
                            json={"events": [json.loads(e.model_dump_json()) for e in events]})
        assert answer.status_code == 202 and answer.json()["accepted"] == len(events)
        yield served


def _tools_rows(html: str) -> str:
    return html.split('data-testid="tools-table"', 1)[1].split("</table>", 1)[0]


def test_login_sets_a_strict_httponly_cookie_and_needs_csrf(site: LiveSite) -> None:
    with httpx.Client(base_url=site.url, follow_redirects=False) as client:
        assert client.get("/analytics").headers["location"].startswith("/login")
        page = client.get("/login")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        forged = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf": "x" * 43})
        assert forged.status_code == 403 and "mcpr_access" not in forged.cookies
        wrong = client.post("/login", data={"email": ADMIN_EMAIL, "password": "nope", "csrf": csrf_of(page.text)})
        assert wrong.status_code == 401 and "email or password is wrong" in wrong.text
        answer = client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                             "csrf": csrf_of(page.text), "next": "https://evil.example/"})
        assert answer.status_code == 303 and answer.headers["location"] == "/analytics"
        cookies = [v for k, v in answer.headers.multi_items() if k == "set-cookie"]
        access = next(c for c in cookies if c.startswith("mcpr_access="))
        assert "HttpOnly" in access and "SameSite=strict" in access.replace("Strict", "strict")
        assert client.get("/analytics").status_code == 200
        out = client.post("/logout", data={"csrf": csrf_of(client.get("/analytics").text)})
        assert out.status_code == 303
        assert client.get("/analytics").status_code == 303


def test_expired_access_token_is_refreshed_from_the_cookie(site: LiveSite) -> None:
    with login_client(site, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
        client.cookies.set("mcpr_access", "not-a-token")  # an unusable access token: back to login
        assert client.get("/analytics").status_code == 303
    with login_client(site, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
        client.cookies.delete("mcpr_access")  # only the refresh token: a new pair is issued
        page = client.get("/analytics")
        assert page.status_code == 200 and "mcpr_access=" in page.headers.get("set-cookie", "")


def test_tools_table_names_users_and_teams_per_caller(site: LiveSite) -> None:
    with login_client(site, ADMIN_EMAIL, ADMIN_PASSWORD) as admin:
        rows = _tools_rows(admin.get("/analytics?since=24h").text)
        for text in ("bob@globex.com", ">globex<", "cursor", "payments", "alice@acme.com", "slugify"):
            assert text in rows, text
        visible_text = re.sub(r"<[^>]+>", " ", rows)
        assert site.platform.store.get_team("globex").id not in visible_text  # type: ignore[union-attr]
    with login_client(site, "carol@acme.com", PASSWORDS["carol@acme.com"]) as acme_member:
        rows = _tools_rows(acme_member.get("/analytics").text)
        assert "bob@globex.com" in rows and "alice@acme.com" in rows and "slugify" not in rows
    with login_client(site, "bob@globex.com", PASSWORDS["bob@globex.com"]) as bob:
        rows = _tools_rows(bob.get("/analytics").text)
        assert "bob@globex.com" in rows and "slugify" in rows and "alice@acme.com" not in rows
    with login_client(site, "erin@initech.com", "erin-pass") as third:
        page = third.get("/analytics?server=payments")
        rows = _tools_rows(page.text)
        assert "payments" not in rows and "bob@globex.com" not in rows and "No tool calls" in rows
        assert third.get("/teams").status_code == 403 and third.get("/audit").status_code == 403


def test_only_owners_and_admins_revoke_sessions_and_only_with_csrf(site: LiveSite) -> None:
    path = f"/sessions/{ACME_NS}/globex-payments-session/revoke"
    with login_client(site, "carol@acme.com", PASSWORDS["carol@acme.com"]) as member:
        page = member.get("/sessions")
        assert "globex-payments-session" in page.text and path not in page.text  # no button for members
        assert member.post(path, data={"csrf": csrf_of(page.text)}).status_code == 403
    with login_client(site, "alice@acme.com", PASSWORDS["alice@acme.com"]) as owner:
        page = owner.get("/sessions")
        assert path in page.text
        assert owner.post(path, data={"csrf": "forged" * 8}).status_code == 403
        session = site.platform.access.get_session(site.platform.identity.principal(
            site.platform.store.get_user_by_email("alice@acme.com")), ACME_NS, "globex-payments-session")  # type: ignore[arg-type]
        assert not session.spec.revoked
        done = owner.post(path, data={"csrf": csrf_of(page.text)})
        assert done.status_code == 303 and "notice=" in done.headers["location"]
        after = owner.get("/sessions").text
        assert "Revoked" in after and path not in after
    audit = site.platform.store.list_audit(limit=20, kind="MCPAgentSession")
    assert any(e.action == "revoke" and e.actor == "alice@acme.com" for e in audit)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_analytics_in_chromium_shows_the_tutorials_cross_team_rows(site: LiveSite, browser: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    try:
        page.goto(f"{site.url}/analytics")
        assert page.url.endswith("/login?next=%2Fanalytics")
        page.screenshot(path=str(ARTIFACTS / "dashboard-login.png"))
        page.fill("#email", ADMIN_EMAIL)
        page.fill("#password", ADMIN_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/analytics")
        page.click("text=Analytics")
        table = page.locator("[data-testid=tools-table]")
        rows = table.locator("tbody tr")
        cells = [[c.strip() for c in rows.nth(i).locator("td").all_inner_texts()] for i in range(rows.count())]
        bob_rows = [r for r in cells if r[2] == "bob@globex.com"]
        assert bob_rows and all(r[3] == "globex" and r[4] == "cursor" and r[0].startswith("payments")
                                for r in bob_rows)
        assert page.locator("svg.chart rect.bar-calls").count() > 0  # the chart drew bars
        assert page.locator("svg.chart rect.bar-denied").count() > 0
        page.screenshot(path=str(ARTIFACTS / "dashboard-analytics.png"), full_page=True)
        # the period filter submits on change (the small script runs under the CSP)
        page.select_option("#since", "1h")
        page.wait_for_url("**since=1h**")
        for name in ("servers", "grants", "sessions", "teams", "audit"):
            page.goto(f"{site.url}/{name}")
            assert page.locator("h1").first.inner_text().lower().startswith(name[:5])
            page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)
    finally:
        page.close()


def test_servers_page_lists_the_virtual_servers_a_user_may_see(site: LiveSite) -> None:
    alice = _token(site, "alice@acme.com", PASSWORDS["alice@acme.com"])
    _api(site, alice, "POST", "/runtime/virtualservers", {
        "apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPVirtualServer",
        "metadata": {"name": "acme-tools", "namespace": ACME_NS},
        "spec": {"members": [{"serverRef": {"name": "payments"}}]}})
    try:
        with login_client(site, "carol@acme.com", PASSWORDS["carol@acme.com"]) as member:
            page = member.get("/servers").text
            table = page[page.index('data-testid="virtual-servers"'):]
            assert "acme-tools" in table and "payments" in table and "/v/acme-tools/mcp" in table
        with login_client(site, "bob@globex.com", PASSWORDS["bob@globex.com"]) as other:
            assert "acme-tools" not in other.get("/servers").text
    finally:
        _api(site, alice, "DELETE", f"/runtime/virtualservers/{ACME_NS}/acme-tools")


def test_the_daily_quotas_table_shows_use_per_key(site: LiveSite) -> None:
    alice = _token(site, "alice@acme.com", PASSWORDS["alice@acme.com"])
    acme_id = site.platform.store.get_team("acme").id  # type: ignore[union-attr]
    _api(site, alice, "POST", "/runtime/grants", grant_doc(
        "payments-quota", ACME_NS, "payments", {"teamID": acme_id, "agentID": "quota-bot"},
        toolRules=[{"name": "echo", "rateLimit": {"callsPerDay": 8, "per": ["agent"]}}]))
    events = [AnalyticsEvent(server="payments", namespace=ACME_NS, rpc_method="tools/call", tool_name="echo",
                             decision="allow", reason="allowed", status=200, latency_ms=1.0, agent_id="quota-bot",
                             team_id=acme_id, subject_team_id=acme_id, matched_grant="payments-quota")
              for _ in range(6)]
    answer = httpx.post(f"{site.url}/api/v1/ingest/events", timeout=30,
                        headers={"Authorization": f"Bearer {site.platform.ingest_keys.local_key}"},
                        json={"events": [json.loads(e.model_dump_json()) for e in events]})
    assert answer.status_code == 202
    with login_client(site, "alice@acme.com", PASSWORDS["alice@acme.com"]) as owner:
        page = owner.get("/analytics").text
    table = page.split('data-testid="quotas-table"', 1)[1].split("</table>", 1)[0]
    row = next(r for r in table.split("<tr>") if "grant/payments-quota/tool/echo" in r)
    cells = [c.strip() for c in re.sub(r"<[^>]+>", "|", row).split("|") if c.strip()]
    assert cells[-5:] == ["quota-bot", "6", "8", "75.0%", "0"], cells
    with login_client(site, "erin@initech.com", "erin-pass") as third:
        assert 'data-testid="quotas-table"' not in third.get("/analytics").text
