"""MCP authorization end to end on `mcp-runtime up`: the official Python SDK's OAuth client, given only the
server URL, discovers the platform (401 -> protected resource metadata -> authorization server metadata),
registers, sends the user to the dashboard's consent page (driven here over HTTP like a browser, and in
headless Chromium below), gets tokens and calls tools through the gateway under the user's grants. Then
refresh rotation, replay, the audience binding, and revocation, each as a client or an owner would see it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest
from oauth_support import (
    ACME_NS,
    ALICE,
    BOB,
    CALLBACK,
    ConsentBrowser,
    Flow,
    MemoryStorage,
    Up,
    build_world,
    mcp_list,
    run_up,
    sdk_flow,
    wait_ready,
)

from fixtures.cli import run_cli

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    data_dir: Path = tmp_path_factory.mktemp("oauth-up")
    with run_up(data_dir) as live:
        build_world(live)
        yield live


def test_sdk_oauth_client_reaches_a_governed_tool_through_consent(up: Up) -> None:
    browser = ConsentBrowser(up, BOB)
    storage = MemoryStorage()
    try:
        outcome = anyio.run(sdk_flow, f"{up.url}/payments/mcp", browser, storage)
    finally:
        browser.close()
    # the consent page showed the server, the client and what bob's grant allows at which trust
    page = browser.last_page
    assert "Claude Test Agent" in page and "payments" in page and "claude-test-agent" in page
    assert "from trust low" in page and "from trust medium" in page
    assert outcome["tools"] == ["add", "echo"]  # tools/list filtered by bob's grant
    assert outcome["echo"] and outcome["add"] and outcome["reverse_denied"]
    assert outcome["denial"]["code"] == -32001 and outcome["denial"]["reason"] == "tool_not_granted", outcome["denial"]
    assert storage.tokens is not None and storage.tokens.refresh_token

    # the authorization is a session: bob, agent from the client's name, Globex, the OAuth client labelled
    sessions = up.api(ALICE, "GET", f"/runtime/sessions?namespace={ACME_NS}")["items"]
    ours = [s for s in sessions if s["metadata"].get("labels", {}).get("mcpruntime.org/issued-by") == "oauth"]
    assert len(ours) == 1
    subject = ours[0]["spec"]["subject"]
    assert subject == {"humanID": BOB[0], "agentID": "claude-test-agent", "teamID": up.teams["globex"]["id"]}
    assert ours[0]["spec"]["consentedTrust"] == "medium"
    assert ours[0]["metadata"]["labels"]["mcpruntime.org/oauth-client"] == storage.client.client_id  # type: ignore[union-attr]

    # the analytics rows of those calls carry the OAuth client (the token's client_id claim), in the API
    # and in `analytics events`
    client_id = storage.client.client_id  # type: ignore[union-attr]
    events = wait_until(lambda: up.api(ALICE, "GET", "/analytics/events?server=payments&tool=echo")["items"],
                        lambda items: any(e["user"] == BOB[0] for e in items))
    assert {e["client"] for e in events if e["user"] == BOB[0]} == {client_id}
    printed = run_cli(["analytics", "events", "--server", "payments"], env=cli_login(up, ALICE))
    assert printed.returncode == 0 and "CLIENT" in printed.stdout and client_id[:10] in printed.stdout, printed
    owner = ConsentBrowser(up, ALICE)  # the dashboard's recent requests name it on the agent
    try:
        assert f'title="OAuth client {client_id}"' in owner.http.get("/analytics").text
    finally:
        owner.close()

    # the owner revokes it: the client's token is refused on its next call
    token = storage.tokens.access_token
    assert mcp_list(up, "payments", token).status_code != 401
    up.api(ALICE, "POST", f"/runtime/sessions/{ACME_NS}/{ours[0]['metadata']['name']}/revoke")
    started = time.monotonic()
    refused = mcp_list(up, "payments", token)
    assert refused.status_code == 401 and refused.json()["error"] == "session_revoked"
    assert time.monotonic() - started < 1.0
    assert 'resource_metadata="' in refused.headers["www-authenticate"]


def wait_until(probe: Any, done: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not done(value := probe()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def cli_login(up: Up, who: tuple[str, str]) -> dict[str, str]:
    """The environment a CLI user of `who` has: the platform URL and an API key."""
    key = up.api(who, "POST", "/user/api-keys", {"name": "cli"})["key"]
    return {"MCP_PLATFORM_API_TOKEN": key, "MCP_PLATFORM_API_URL": up.url}


def test_discovery_documents(up: Up) -> None:
    anonymous = httpx.post(f"{up.url}/payments/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                           timeout=30)
    assert anonymous.status_code == 401
    challenge = anonymous.headers["www-authenticate"]
    metadata_url = f"{up.url}/.well-known/oauth-protected-resource/payments/mcp"
    assert f'resource_metadata="{metadata_url}"' in challenge
    for url in (metadata_url, metadata_url + "/", f"{up.url}/.well-known/oauth-protected-resource/payments"):
        prm = httpx.get(url, timeout=30)
        assert prm.status_code == 200, url
        assert prm.json()["resource"] == f"{up.url}/payments/mcp"
        assert prm.json()["authorization_servers"] == [f"{up.url}/api/v1/oauth"]
    # two servers: the root form cannot say which one
    assert httpx.get(f"{up.url}/.well-known/oauth-protected-resource", timeout=30).status_code == 404
    for path in ("/.well-known/oauth-authorization-server/api/v1/oauth",
                 "/.well-known/openid-configuration/api/v1/oauth",
                 "/api/v1/oauth/.well-known/openid-configuration"):
        meta = httpx.get(f"{up.url}{path}", timeout=30)
        assert meta.status_code == 200, path
        body = meta.json()
        assert body["issuer"] == f"{up.url}/api/v1/oauth"
        assert body["code_challenge_methods_supported"] == ["S256"]
        assert body["registration_endpoint"] == f"{up.url}/api/v1/oauth/register"
        assert body["revocation_endpoint"] == f"{up.url}/api/v1/oauth/revoke"


def test_refresh_rotates_and_a_replayed_refresh_token_revokes_the_authorization(up: Up) -> None:
    flow = Flow(up)
    assert flow.register().status_code == 201
    browser = ConsentBrowser(up, BOB)
    try:
        first = flow.exchange(flow.code(browser)).json()
    finally:
        browser.close()
    second = flow.refresh(first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"]
    assert mcp_list(up, "payments", rotated["access_token"]).status_code != 401

    replay = flow.refresh(first["refresh_token"])  # the spent one again: someone copied it
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    refused = mcp_list(up, "payments", rotated["access_token"])
    assert refused.status_code == 401 and refused.json()["error"] == "session_revoked"
    after = flow.refresh(rotated["refresh_token"])  # the family is gone too
    assert after.status_code == 400 and after.json()["error"] == "invalid_grant"


def test_a_token_for_one_server_is_refused_at_another(up: Up) -> None:
    flow = Flow(up)
    flow.register()
    browser = ConsentBrowser(up, BOB)
    try:
        tokens = flow.exchange(flow.code(browser, server="payments")).json()
    finally:
        browser.close()
    assert mcp_list(up, "payments", tokens["access_token"]).status_code != 401
    elsewhere = mcp_list(up, "ledger", tokens["access_token"])
    assert elsewhere.status_code == 401 and elsewhere.json()["error"] == "wrong_audience"
    assert f'resource_metadata="{up.url}/.well-known/oauth-protected-resource/ledger/mcp"' in \
        elsewhere.headers["www-authenticate"]


def test_revocation_endpoint_ends_the_authorization(up: Up) -> None:
    flow = Flow(up)
    flow.register()
    browser = ConsentBrowser(up, BOB)
    try:
        tokens = flow.exchange(flow.code(browser)).json()
    finally:
        browser.close()
    answer = httpx.post(f"{flow.oauth}/revoke", timeout=30, data={
        "token": tokens["refresh_token"], "token_type_hint": "refresh_token",
        "client_id": flow.client_id, "client_secret": flow.client_secret})
    assert answer.status_code == 200
    assert mcp_list(up, "payments", tokens["access_token"]).status_code == 401
    assert flow.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_deny_sends_access_denied_back_and_creates_nothing(up: Up) -> None:
    flow = Flow(up)
    flow.register()
    before = len(up.api(ALICE, "GET", f"/runtime/sessions?namespace={ACME_NS}")["items"])
    browser = ConsentBrowser(up, BOB)
    try:
        location = browser.answer(browser.consent_page(flow.authorization_url()), decision="deny")
    finally:
        browser.close()
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(CALLBACK) and query["error"] == ["access_denied"] and query["state"] == ["st-1"]
    assert len(up.api(ALICE, "GET", f"/runtime/sessions?namespace={ACME_NS}")["items"]) == before


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_sign_in_and_consent_in_chromium(up: Up, chromium: Any) -> None:
    """A person in a real browser: the client's authorization URL -> sign in -> the consent page -> Allow ->
    back at the client's loopback redirect with a code that the client exchanges for a working token."""
    ARTIFACTS.mkdir(exist_ok=True)
    flow = Flow(up)
    assert flow.register(client_name="Cursor Test").status_code == 201
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    arrived: list[str] = []

    def at_client(route: Any) -> None:  # the MCP client's loopback listener
        arrived.append(route.request.url)
        route.fulfill(status=200, content_type="text/plain", body="You can close this window.")

    page.route(f"{CALLBACK}**", at_client)
    try:
        page.goto(flow.authorization_url())
        assert "/login?next=" in page.url
        page.fill("#email", BOB[0])
        page.fill("#password", BOB[1])
        page.click("button[type=submit]")
        page.wait_for_url("**/oauth/authorize?request=*")
        heading = page.inner_text("[data-testid=consent] h1")
        assert "Cursor Test" in heading and "payments" in heading
        tools = page.inner_text("[data-testid=consent-tools]")
        assert "echo" in tools and "from trust low" in tools and "reverse" in tools
        assert page.input_value("#agent_id") == "cursor-test"
        assert page.eval_on_selector_all("#trust option", "els => els.map(e => e.value)") == ["low", "medium"]
        page.screenshot(path=str(ARTIFACTS / "oauth-consent.png"))
        page.click("button[value=allow]")
        page.wait_for_url(f"{CALLBACK}**")
    finally:
        page.close()
    assert len(arrived) == 1
    query = parse_qs(urlsplit(arrived[0]).query)
    assert query["state"] == ["st-1"] and query["iss"] == [f"{up.url}/api/v1/oauth"]
    tokens = flow.exchange(query["code"][0])
    assert tokens.status_code == 200, tokens.text
    assert mcp_list(up, "payments", tokens.json()["access_token"]).status_code != 401


def test_clients_and_refresh_tokens_survive_a_restart(tmp_path: Path) -> None:
    with run_up(tmp_path) as first:
        build_world(first)
        flow = Flow(first)
        assert flow.register().status_code == 201
        browser = ConsentBrowser(first, BOB)
        try:
            tokens = flow.exchange(flow.code(browser)).json()
        finally:
            browser.close()
    with run_up(tmp_path) as again:  # the same data directory: `mcp-runtime up` after Ctrl-C
        flow.up = again
        wait_ready(again, "payments")
        refreshed = flow.refresh(tokens["refresh_token"])
        assert refreshed.status_code == 200, refreshed.text
        assert mcp_list(again, "payments", refreshed.json()["access_token"]).status_code != 401


NODE22_DIR = REPO / ".ci" / "node22"
INSPECTOR = NODE22_DIR / "node_modules" / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" \
    / "index.js"


def _node22() -> Path:
    """The Node 22 binary from .ci/setup-node22.sh (installed on first use; CI runs the script up front)."""
    known = os.environ.get("MCP_RUNTIME_NODE22")
    if known and Path(known).exists() and INSPECTOR.exists():
        return Path(known)
    done = subprocess.run([str(REPO / ".ci" / "setup-node22.sh")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"Node 22 + Inspector install failed:\n{done.stderr}"
    return Path(done.stdout.strip().splitlines()[-1])


def test_mcp_inspector_cli_with_a_token_from_the_flow(up: Up, tmp_path: Path) -> None:
    """The Inspector CLI cannot run a browser flow; given the bearer token this flow issued, it lists and
    calls tools through the gateway under bob's grants, and is refused once the authorization is revoked."""
    node = _node22()
    flow = Flow(up)
    flow.register(client_name="MCP Inspector")
    browser = ConsentBrowser(up, BOB)
    try:
        tokens = flow.exchange(flow.code(browser)).json()
    finally:
        browser.close()
    env = {**os.environ, "PATH": f"{node.parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MCP_CATALOG_PATH": str(tmp_path / "catalog.json"), "HOME": str(tmp_path)}

    def inspector(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(node), str(INSPECTOR), "--cli", f"{up.url}/payments/mcp", "--transport", "http",
                               "--header", f"Authorization: Bearer {tokens['access_token']}", *args],
                              capture_output=True, text=True, env=env, timeout=90)

    listed = inspector("--method", "tools/list")
    assert listed.returncode == 0, listed.stderr
    assert sorted(tool["name"] for tool in json.loads(listed.stdout)["tools"]) == ["add", "echo"]
    called = inspector("--method", "tools/call", "--tool-name", "add", "--tool-arg", "a=40", "b=2")
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout)["content"][0]["text"] == "42"
    httpx.post(f"{flow.oauth}/revoke", timeout=30, data={"token": tokens["access_token"],
                                                         "client_id": flow.client_id,
                                                         "client_secret": flow.client_secret})
    refused = inspector("--method", "tools/list")
    # the Inspector got the 401 and would now start its own OAuth flow, which needs a person at a terminal
    assert refused.returncode != 0 and '"auth_required"' in refused.stdout + refused.stderr, refused.stdout


def test_mcp_inspector_cli_runs_the_whole_oauth_flow(up: Up, tmp_path: Path) -> None:
    """The Inspector CLI does the flow itself given only the URL: it discovers, registers, prints the
    authorization URL for a browser (MCP_AUTO_OPEN_ENABLED: no TTY here), and listens on loopback for the
    redirect. This test is the browser: it signs bob in and allows, then follows the redirect to the CLI."""
    node = _node22()
    env = {**os.environ, "PATH": f"{node.parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MCP_CATALOG_PATH": str(tmp_path / "catalog.json"), "HOME": str(tmp_path),
           "MCP_AUTO_OPEN_ENABLED": "true", "BROWSER": "true", "DISPLAY": ""}
    process = subprocess.Popen([str(node), str(INSPECTOR), "--cli", f"{up.url}/payments/mcp", "--transport", "http",
                                "--method", "tools/list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    browser = ConsentBrowser(up, BOB)
    seen: list[str] = []
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        url = ""
        while not url and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            seen.append(line)
            if "navigate to:" in line:
                url = line.split("navigate to:", 1)[1].strip()
        assert url, "".join(seen)
        location = browser.authorize(url)
        assert urlsplit(location).hostname in ("127.0.0.1", "localhost"), location
        httpx.get(location, timeout=30)  # the browser arrives at the CLI's callback listener
        out, err = process.communicate(timeout=90)
    finally:
        browser.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, "".join(seen) + err
    assert sorted(tool["name"] for tool in json.loads(out)["tools"]) == ["add", "echo"]
    sessions = up.api(ALICE, "GET", f"/runtime/sessions?namespace={ACME_NS}")["items"]
    assert any(s["metadata"]["labels"].get("mcpruntime.org/issued-by") == "oauth"
               and s["spec"]["subject"]["agentID"].startswith("mcp-inspector") for s in sessions)
