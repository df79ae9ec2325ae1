"""The dashboard's "Preview impact" step: no grant is saved or deleted before its impact on recorded calls is shown.

The platform serves the API and the dashboard (`create_site`); the week's events reach it through the ingest
API as the gateway sends them (version 2, with the replay inputs). The flows run in the system's Chromium
with Playwright (screenshots in test-artifacts/), the refusals with a plain HTTP client.
"""

from __future__ import annotations

import html
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dashboard_support import LiveSite, csrf_of, login_client, serve_site
from platform_support import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORDS, deploy_body, grant_doc, platform_settings

from mcp_runtime.resources import MCPAccessGrant
from mcp_runtime.sentinel.events import AnalyticsEvent
from mcp_runtime.store.sql import sqlite_url

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ACME_NS = "mcp-team-acme"
SHARED = "payments-to-globex"
CALLS = {"echo": 30, "add": 12, "create_task": 4}  # bob's calls of the last days


def _api(site: LiveSite, token: str, method: str, path: str, body: Any = None) -> Any:
    answer = httpx.request(method, f"{site.url}/api/v1{path}", json=body, timeout=30,
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.is_success, f"{method} {path}: {answer.status_code} {answer.text}"
    return answer.json() if answer.content else None


def _token(site: LiveSite, email: str, password: str) -> str:
    answer = httpx.post(f"{site.url}/api/v1/auth/login", json={"email": email, "password": password}, timeout=30)
    return str(answer.json()["accessToken"])


def _bobs_calls(acme: str, globex: str) -> list[AnalyticsEvent]:
    """What the gateway recorded: bob (Globex, Cursor, session s-bob at low trust) on Acme's payments."""
    now = datetime.now(UTC)
    events = []
    for tool, count in CALLS.items():
        allowed = tool != "create_task"
        for i in range(count):
            events.append(AnalyticsEvent(
                timestamp=now - timedelta(hours=2 + 3 * i), server="payments", namespace=ACME_NS, team_id=acme,
                human_id="bob@globex.com", agent_id="cursor", subject_team_id=globex, session_id="s-bob",
                rpc_method="tools/call", tool_name=tool, decision="allow" if allowed else "deny",
                reason="allowed" if allowed else "tool_not_granted", matched_grant=SHARED, status=200,
                latency_ms=1.5, event_version=2, session_state="active", consented_trust="low",
                arguments_digest="0" * 64))
    return events


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    data_dir = tmp_path_factory.mktemp("preview")
    with serve_site(platform_settings(data_dir, sqlite_url(data_dir))) as served:
        admin = _token(served, ADMIN_EMAIL, ADMIN_PASSWORD)
        teams = {slug: _api(served, admin, "POST", "/teams", {"slug": slug, "name": slug.title()})["id"]
                 for slug in ("acme", "globex")}
        for team, email, role in (("acme", "alice@acme.com", "owner"), ("acme", "carol@acme.com", "member"),
                                  ("globex", "bob@globex.com", "member")):
            _api(served, admin, "POST", f"/teams/{team}/users",
                 {"username": email, "password": PASSWORDS[email], "role": role})
        alice = _token(served, "alice@acme.com", PASSWORDS["alice@acme.com"])
        _api(served, alice, "POST", "/runtime/servers", deploy_body("payments"))
        _api(served, alice, "POST", "/runtime/grants", grant_doc(
            SHARED, ACME_NS, "payments", {"teamID": teams["globex"], "agentID": "cursor"},
            toolRules=[{"name": "echo"}, {"name": "add"}]))
        events = _bobs_calls(teams["acme"], teams["globex"])
        answer = httpx.post(f"{served.url}/api/v1/ingest/events", timeout=30,
                            headers={"Authorization": f"Bearer {served.platform.ingest_keys.local_key}"},
                            json={"events": [json.loads(e.model_dump_json()) for e in events]})
        assert answer.status_code == 202 and answer.json()["accepted"] == len(events)
        yield served


def _stored_tools(site: LiveSite) -> list[str] | None:
    grant = site.platform.repo.get(MCPAccessGrant, ACME_NS, SHARED)
    return None if grant is None else [rule.name for rule in grant.spec.tool_rules]


def _without_add(text: str) -> str:
    doc = yaml.safe_load(text)
    doc["spec"]["toolRules"] = [rule for rule in doc["spec"]["toolRules"] if rule["name"] != "add"]
    return str(yaml.safe_dump(doc, sort_keys=False))


def _narrowed_yaml(page_text: str) -> str:
    """The edit form's YAML with the `add` rule removed."""
    text = page_text.split('name="grant"', 1)[1].split(">", 1)[1].split("</textarea>", 1)[0]
    return _without_add(html.unescape(text))


# --- the rules, over HTTP --------------------------------------------------------------------------------


def test_only_writers_of_the_namespace_get_edit_and_delete(site: LiveSite) -> None:
    edit = f"/grants/{ACME_NS}/{SHARED}/edit"
    with login_client(site, "carol@acme.com", PASSWORDS["carol@acme.com"]) as member:
        page = member.get("/grants").text
        assert edit in page and "/grants/new" in page
    with login_client(site, "bob@globex.com", PASSWORDS["bob@globex.com"]) as bob:
        page = bob.get("/grants")
        assert SHARED in page.text and edit not in page.text  # he sees the grant naming his team, nothing more
        preview = bob.get(f"/grants/{ACME_NS}/{SHARED}/delete")
        assert preview.status_code == 403 and "you cannot simulate" in preview.text
        refused = bob.post(f"/grants/{ACME_NS}/{SHARED}/delete", data={"csrf": csrf_of(page.text)})
        assert refused.status_code == 403 and _stored_tools(site) == ["echo", "add"]


def test_saving_needs_a_preview_of_exactly_that_text_and_a_csrf_token(site: LiveSite) -> None:
    with login_client(site, "alice@acme.com", PASSWORDS["alice@acme.com"]) as alice:
        form = alice.get(f"/grants/{ACME_NS}/{SHARED}/edit")
        narrowed = _narrowed_yaml(form.text)
        forged = alice.post("/grants/save", data={"grant": narrowed, "previewed": "x", "csrf": "forged" * 8})
        assert forged.status_code == 403 and _stored_tools(site) == ["echo", "add"]
        unseen = alice.post("/grants/save", data={"grant": narrowed, "previewed": "not-this-text",
                                                  "csrf": csrf_of(form.text)})
        assert unseen.status_code == 200 and 'data-testid="impact-summary"' in unseen.text  # previewed, not saved
        assert _stored_tools(site) == ["echo", "add"]


def test_bad_yaml_comes_back_on_the_form_with_the_text_kept(site: LiveSite) -> None:
    with login_client(site, "alice@acme.com", PASSWORDS["alice@acme.com"]) as alice:
        form = alice.get("/grants/new")
        assert form.status_code == 200 and "serverRef" in form.text
        broken = "metadata: [unclosed\nspec: {}"
        answer = alice.post("/grants/preview", data={"grant": broken, "since": "7d", "csrf": csrf_of(form.text)})
        assert answer.status_code == 422 and "not valid YAML" in answer.text and "[unclosed" in answer.text
        wrong = grant_doc("x", ACME_NS, "payments", {"agentID": "cursor"}, maxTrust="ultra")
        answer = alice.post("/grants/preview", data={"grant": yaml.safe_dump(wrong), "since": "7d",
                                                     "csrf": csrf_of(form.text)})
        assert answer.status_code == 422 and "grants[0]: " in answer.text and "ultra" in answer.text


# --- in Chromium ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _sign_in(site: LiveSite, browser: Any, email: str) -> Any:
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.goto(f"{site.url}/login?next=/grants")
    page.fill("#email", email)
    page.fill("#password", PASSWORDS[email])
    page.click("button[type=submit]")
    page.wait_for_url("**/grants")
    return page


def _impact_rows(page: Any) -> list[list[str]]:
    rows = page.locator("[data-testid=impact-rows] tbody tr")
    return [[c.strip() for c in rows.nth(i).locator("td").all_inner_texts()] for i in range(rows.count())]


def test_editing_a_grant_in_chromium_previews_the_impact_before_saving(site: LiveSite, browser: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page = _sign_in(site, browser, "alice@acme.com")
    try:
        page.click(f"a[href='/grants/{ACME_NS}/{SHARED}/edit']")
        page.wait_for_url("**/edit")
        text = page.input_value("#grant")
        assert "name: add" in text
        page.fill("#grant", _without_add(text))
        page.click("[data-testid=preview-impact]")
        page.wait_for_selector("[data-testid=impact-summary]")
        page.screenshot(path=str(ARTIFACTS / "dashboard-preview-edit.png"), full_page=True)
        assert page.inner_text("[data-testid=newly-denied]") == str(CALLS["add"])
        rows = _impact_rows(page)
        assert len(rows) == 1
        user, agent, team, tool, before, after, calls = rows[0][:7]
        assert (user, agent, team, tool, calls) == ("bob@globex.com", "cursor", "globex", "add", str(CALLS["add"]))
        assert before.split() == ["allow", "allowed"] and after.split() == ["deny", "tool_not_granted"]
        assert "would be denied (1 caller(s), 1 tool(s))" in page.inner_text("[data-testid=impact-summary]")
        assert _stored_tools(site) == ["echo", "add"]  # nothing saved yet
        page.click("[data-testid=save-grant]")
        page.wait_for_url("**/grants?notice=*")
        assert f"Grant {SHARED} updated in {ACME_NS}." in page.inner_text(".flash.ok")
        assert _stored_tools(site) == ["echo"]
    finally:
        page.close()


def test_deleting_a_grant_in_chromium_shows_who_loses_access_first(site: LiveSite, browser: Any) -> None:
    page = _sign_in(site, browser, "carol@acme.com")
    try:
        page.click(f"a[href='/grants/{ACME_NS}/{SHARED}/delete']")
        page.wait_for_selector("[data-testid=impact-summary]")
        page.screenshot(path=str(ARTIFACTS / "dashboard-preview-delete.png"), full_page=True)
        granted = _stored_tools(site) or []
        lost = {row[3]: row for row in _impact_rows(page) if row[4].startswith("allow")}
        assert set(lost) == set(granted) and "echo" in lost
        assert all(lost[tool][6] == str(CALLS[tool]) and lost[tool][5].split() == ["deny", "no_matching_grant"]
                   for tool in granted)
        page.select_option("#since", "24h")  # the window is a choice: bob's calls of the last day only
        page.wait_for_url("**since=24h**")
        assert page.inner_text("[data-testid=newly-denied]") == str(8 * len(granted))
        assert site.platform.repo.get(MCPAccessGrant, ACME_NS, SHARED) is not None
        page.click("[data-testid=delete-grant]")
        page.wait_for_url("**/grants?notice=*")
        assert f"Grant {SHARED} deleted from {ACME_NS}." in page.inner_text(".flash.ok")
        assert site.platform.repo.get(MCPAccessGrant, ACME_NS, SHARED) is None
    finally:
        page.close()
