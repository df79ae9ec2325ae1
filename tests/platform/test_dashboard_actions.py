"""The dashboard's actions in headless Chromium: approve and deny a call waiting for a person; disable,
enable and delete a grant; revoke and unrevoke a session. Each is a CSRF-protected form over the same
platform service (and authorization) as the CLI; a forged form is refused.

The approvals world (a real gateway holding calls of a real MCP server) is test_approvals_oob.py's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dashboard_support import csrf_of, login_client
from platform_support import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORDS
from test_approvals_oob import NS, Caller, World, world
from test_dashboard import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, _api, _token

from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession

__all__ = ["world"]  # the fixture, used by name

GRANT = "customers-cursor"
SESSION = "customers-bob"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def resources(world: World) -> World:
    """A server and a session in acme's namespace, for the grant and session actions."""
    alice = _token(world.site, "alice@acme.com", PASSWORDS["alice@acme.com"])
    _api(world.site, alice, "POST", "/runtime/servers",
         {"metadata": {"name": "customers", "tools": [{"name": "lookup", "sideEffect": "read"}]}})
    admin = _token(world.site, ADMIN_EMAIL, ADMIN_PASSWORD)
    _api(world.site, admin, "POST", "/runtime/sessions", {
        "apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAgentSession",
        "metadata": {"name": SESSION, "namespace": NS},
        "spec": {"serverRef": {"name": "customers"}, "subject": {"agentID": "cursor", "humanID": "bob@globex.com"},
                 "consentedTrust": "low", "expiresAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}})
    return world


def _signed_in(browser: Any, world: World, email: str, password: str, landing: str) -> Any:
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    page.on("dialog", lambda dialog: dialog.accept())  # the data-confirm prompts
    page.goto(f"{world.site.url}/login?next={landing}")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{landing}")
    return page


def test_an_owner_approves_and_denies_waiting_calls_in_chromium(world: World, browser: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    caller = Caller(world)
    approved = caller.in_background("reverse", {"text": "repaid"})
    [first] = world.pending("reverse")
    page = _signed_in(browser, world, "alice@acme.com", PASSWORDS["alice@acme.com"], "/approvals")
    try:
        row = page.locator(f"[data-testid=approval-{first['id']}]")
        assert "reverse" in row.inner_text() and '{"text":"repaid"}' in row.inner_text()
        page.screenshot(path=str(ARTIFACTS / "dashboard-approvals.png"), full_page=True)
        page.click(f"[data-testid=approve-{first['id']}]")
        page.wait_for_url(re.compile(r".*/approvals\?notice=.*"))
        assert "was approved" in page.content()
        assert approved() == "diaper"
        assert "approved" in page.locator(f"[data-testid=decided-{first['id']}]").inner_text()

        denied = caller.in_background("reverse", {"text": "regal"})
        [second] = world.pending("reverse")
        page.click("[data-testid=refresh-approvals]")
        page.click(f"[data-testid=deny-{second['id']}]")
        page.wait_for_url(re.compile(r".*/approvals\?notice=.*"))
        assert denied() == "approval_denied"
    finally:
        page.close()


GRANT_YAML = f"""apiVersion: mcpruntime.org/v1alpha1
kind: MCPAccessGrant
metadata:
  name: {GRANT}
  namespace: {NS}
spec:
  serverRef:
    name: customers
  subject:
    agentID: cursor
"""


def test_grants_are_created_disabled_enabled_and_deleted_in_chromium(resources: World, browser: Any) -> None:
    world = resources
    repo = world.site.platform.repo
    page = _signed_in(browser, world, "alice@acme.com", PASSWORDS["alice@acme.com"], "/grants")
    try:
        page.click("[data-testid=new-grant]")
        page.wait_for_url("**/grants/new")
        page.fill("#grant", GRANT_YAML)
        page.click("[data-testid=preview-impact]")
        page.wait_for_selector("[data-testid=impact-summary]")
        page.click("[data-testid=save-grant]")
        page.wait_for_url(re.compile(r".*/grants\?notice=.*"))
        assert repo.get(MCPAccessGrant, NS, GRANT) is not None
        page.click(f"[data-testid=disable-{GRANT}]")
        page.wait_for_url(re.compile(r".*/grants\?notice=.*"))
        assert repo.get(MCPAccessGrant, NS, GRANT).spec.disabled  # type: ignore[union-attr]
        document = world.site.platform.publisher.get(NS, "customers")
        assert document is not None and document.grants[0].disabled  # pushed to the gateway at once
        page.click(f"[data-testid=enable-{GRANT}]")
        page.wait_for_url(re.compile(r".*/grants\?notice=.*"))
        assert not repo.get(MCPAccessGrant, NS, GRANT).spec.disabled  # type: ignore[union-attr]
        page.click(f"[data-testid=delete-{GRANT}]")
        page.click("[data-testid=delete-grant]")  # after the impact preview
        page.wait_for_url(re.compile(r".*/grants\?notice=.*"))
        assert repo.get(MCPAccessGrant, NS, GRANT) is None
    finally:
        page.close()


def test_sessions_are_revoked_and_unrevoked_in_chromium(resources: World, browser: Any) -> None:
    world = resources
    repo = world.site.platform.repo
    page = _signed_in(browser, world, ADMIN_EMAIL, ADMIN_PASSWORD, "/sessions")
    try:
        page.click(f"[data-testid=revoke-{SESSION}]")
        page.wait_for_url(re.compile(r".*/sessions\?notice=.*"))
        assert repo.get(MCPAgentSession, NS, SESSION).spec.revoked  # type: ignore[union-attr]
        page.click(f"[data-testid=unrevoke-{SESSION}]")
        page.wait_for_url(re.compile(r".*/sessions\?notice=.*"))
        assert not repo.get(MCPAgentSession, NS, SESSION).spec.revoked  # type: ignore[union-attr]
    finally:
        page.close()


def test_actions_need_the_dashboards_csrf_token_and_the_right_role(resources: World) -> None:
    world = resources
    with login_client(world.site, "carol@acme.com", PASSWORDS["carol@acme.com"]) as member:
        page = member.get("/sessions").text
        assert f"unrevoke-{SESSION}" not in page  # unrevoking is for admins
        forged = {"csrf": "forged" * 8}
        for path in (f"/sessions/{NS}/{SESSION}/revoke", f"/sessions/{NS}/{SESSION}/unrevoke",
                     "/approvals/apr_x/approve", "/approvals/apr_x/deny"):
            assert member.post(path, data=forged).status_code == 403, path
        # with the token, the service's own authorization answers: members cannot unrevoke
        answer = member.post(f"/sessions/{NS}/{SESSION}/unrevoke", data={"csrf": csrf_of(page)})
        assert answer.status_code == 403 and "admin" in answer.text
        answer = member.post("/approvals/apr_unknown/approve", data={"csrf": csrf_of(page)})
        assert answer.status_code == 404
    assert not world.site.platform.repo.get(MCPAgentSession, NS, SESSION).spec.revoked  # type: ignore[union-attr]
