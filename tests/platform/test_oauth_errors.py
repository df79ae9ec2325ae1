"""The authorization server's answers to bad input: each refused with the right OAuth error, and nothing
issued (no code, no token, no session), on `mcp-runtime up`."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from dashboard_support import csrf_of, serve_site
from oauth_support import ACME_NS, ALICE, BOB, CALLBACK, ConsentBrowser, Flow, Up, build_world, mcp_list, run_up
from platform_support import platform_settings

from mcp_runtime.platform.oauth.service import digest
from mcp_runtime.store.sql import sqlite_url


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    data_dir: Path = tmp_path_factory.mktemp("oauth-errors")
    with run_up(data_dir, oauth_registrations_per_minute=1000) as live:
        build_world(live)
        yield live


@pytest.fixture
def flow(up: Up) -> Flow:
    flow = Flow(up)
    assert flow.register().status_code == 201
    return flow


@pytest.fixture
def browser(up: Up) -> Iterator[ConsentBrowser]:
    browser = ConsentBrowser(up, BOB)
    yield browser
    browser.close()


def _oauth_sessions(up: Up) -> int:
    items = up.api(ALICE, "GET", f"/runtime/sessions?namespace={ACME_NS}")["items"]
    return sum(1 for s in items if s["metadata"].get("labels", {}).get("mcpruntime.org/issued-by") == "oauth")


def _redirect_error(answer: httpx.Response) -> str:
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(CALLBACK), location
    return parse_qs(urlsplit(location).query)["error"][0]


def test_wrong_pkce_verifier_gets_invalid_grant(flow: Flow, browser: ConsentBrowser) -> None:
    code = flow.code(browser)
    answer = flow.token(grant_type="authorization_code", code=code, redirect_uri=CALLBACK,
                        code_verifier="x" * 50)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert "access_token" not in answer.json()


@pytest.mark.parametrize("params", [{"code_challenge": ""}, {"code_challenge_method": "plain"}])
def test_missing_or_plain_pkce_is_refused_at_authorize(up: Up, flow: Flow, browser: ConsentBrowser,
                                                        params: dict[str, str]) -> None:
    before = _oauth_sessions(up)
    answer = browser.http.get(flow.authorization_url(**params))
    assert _redirect_error(answer) == "invalid_request"
    assert _oauth_sessions(up) == before


def test_a_reused_code_revokes_what_its_first_use_issued(up: Up, flow: Flow, browser: ConsentBrowser) -> None:
    code = flow.code(browser)
    first = flow.exchange(code).json()
    assert mcp_list(up, "payments", first["access_token"]).status_code != 401
    again = flow.exchange(code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert mcp_list(up, "payments", first["access_token"]).status_code == 401
    assert flow.refresh(first["refresh_token"]).json()["error"] == "invalid_grant"


def test_unregistered_redirect_uri_is_never_redirected_to(flow: Flow, browser: ConsentBrowser) -> None:
    answer = browser.http.get(flow.authorization_url(redirect_uri="http://127.0.0.1:9/elsewhere"))
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"
    assert "location" not in answer.headers


def test_redirect_uri_must_match_at_the_token_endpoint(flow: Flow, browser: ConsentBrowser) -> None:
    code = flow.code(browser)
    answer = flow.token(grant_type="authorization_code", code=code, redirect_uri="http://127.0.0.1:33418/other",
                        code_verifier=flow.verifier)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"


def test_unknown_client(up: Up, browser: ConsentBrowser) -> None:
    stranger = Flow(up, client_id="no-such-client", client_secret="nope")
    answer = browser.http.get(stranger.authorization_url())
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"
    token = stranger.token(grant_type="authorization_code", code="x", redirect_uri=CALLBACK, code_verifier="y" * 43)
    assert token.status_code == 401 and token.json()["error"] == "invalid_client"


def test_wrong_client_secret(flow: Flow, browser: ConsentBrowser) -> None:
    code = flow.code(browser)
    flow.client_secret = "0" * 64
    answer = flow.exchange(code)
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"


def test_expired_code(up: Up, flow: Flow, browser: ConsentBrowser) -> None:
    code = flow.code(browser)
    store = up.embedded.platform.store
    item = store.get_oauth_item(f"code:{digest(code)}")
    assert item is not None
    store.put_oauth_item(item.key, {**item.data, "expires_at": item.data["expires_at"] - 3600}, item.expires_at)
    answer = flow.exchange(code)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert "expired" in answer.json()["error_description"]


@pytest.mark.parametrize("resource, error", [("", "invalid_request"),
                                              ("http://elsewhere.example/payments/mcp", "invalid_target"),
                                              ("{url}/nosuch/mcp", "invalid_target")])
def test_resource_must_name_a_governed_server(up: Up, flow: Flow, browser: ConsentBrowser, resource: str,
                                              error: str) -> None:
    url = flow.authorization_url(resource=resource.format(url=up.url))
    assert _redirect_error(browser.http.get(url)) == error


@pytest.mark.parametrize("metadata, error", [
    ({"redirect_uris": ["http://attacker.example/cb"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["myapp://callback"]}, "invalid_redirect_uri"),
    ({"redirect_uris": [f"https://ok.example/{i}" for i in range(11)]}, "invalid_redirect_uri"),
    ({"redirect_uris": []}, "invalid_client_metadata"),
    ({"client_name": "n" * 201}, "invalid_client_metadata"),
    ({"grant_types": ["refresh_token"]}, "invalid_client_metadata"),
])
def test_bad_registrations(up: Up, metadata: dict[str, object], error: str) -> None:
    answer = Flow(up).register(**metadata)
    assert answer.status_code == 400 and answer.json()["error"] == error, answer.text


def test_oversized_and_malformed_registrations(up: Up) -> None:
    url = f"{up.url}/api/v1/oauth/register"
    big = httpx.post(url, json={"redirect_uris": [CALLBACK], "client_name": "x", "contacts": ["a" * 20000]},
                     timeout=30)
    assert big.status_code == 413
    broken = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}, timeout=30)
    assert broken.status_code == 400 and broken.json()["error"] == "invalid_client_metadata"


def test_consent_post_without_csrf_token_issues_nothing(up: Up, flow: Flow, browser: ConsentBrowser) -> None:
    before = _oauth_sessions(up)
    page = browser.consent_page(flow.authorization_url())
    request_id = parse_qs(urlsplit(str(page.url)).query)["request"][0]
    forged = browser.http.post("/oauth/authorize", data={"request": request_id, "decision": "allow",
                                                         "agent_id": "evil", "trust": "high"})
    assert forged.status_code == 403 and "location" not in forged.headers
    assert _oauth_sessions(up) == before
    # the real form still works once, and only once
    assert browser.answer(page).startswith(CALLBACK)
    again = browser.http.post("/oauth/authorize", data={"csrf": csrf_of(page.text), "request": request_id,
                                                        "decision": "allow", "agent_id": "a", "trust": "low"})
    assert again.status_code == 404


def test_trust_is_capped_by_the_grants(up: Up, flow: Flow, browser: ConsentBrowser) -> None:
    page = browser.consent_page(flow.authorization_url())
    assert '<option value="high"' not in page.text  # bob's grant allows up to medium
    browser.answer(page, trust="high", agent_id="capped-agent")
    items = up.api(ALICE, "GET", f"/runtime/sessions?namespace={ACME_NS}")["items"]
    capped = [s for s in items if s["spec"]["subject"].get("agentID") == "capped-agent"]
    assert [s["spec"]["consentedTrust"] for s in capped] == ["medium"]


def test_consent_page_cannot_be_framed_and_asks_for_sign_in(up: Up, flow: Flow, browser: ConsentBrowser) -> None:
    page = browser.consent_page(flow.authorization_url())
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    anonymous = httpx.get(str(page.url), timeout=30)
    request_id = parse_qs(urlsplit(str(page.url)).query)["request"][0]
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?" + urlencode({"next": f"/oauth/authorize?request={request_id}"})


def test_registration_is_rate_limited(tmp_path: Path) -> None:
    settings = platform_settings(tmp_path, sqlite_url(tmp_path), public_url="http://127.0.0.1:1",
                                 oauth_registrations_per_minute=3)
    with serve_site(settings) as site:
        site_up = Up(site.url, None)  # type: ignore[arg-type]
        codes = [Flow(site_up).register().status_code for _ in range(4)]
    assert codes[:3] == [201, 201, 201]
    assert codes[3] == 429


def test_origin_of_another_site_is_refused_at_the_gateway(up: Up) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    evil = httpx.post(f"{up.url}/payments/mcp", json=body, headers={"Origin": "http://evil.example"}, timeout=30)
    assert evil.status_code == 403 and evil.json()["error"] == "origin_not_allowed"
    own = httpx.post(f"{up.url}/payments/mcp", json=body, headers={"Origin": up.url}, timeout=30)
    assert own.status_code == 401  # past the origin check, to authentication



def test_concurrent_uses_of_one_code_never_issue_twice(flow: Flow, browser: ConsentBrowser) -> None:
    code = flow.code(browser)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: flow.exchange(code), range(4)))
    assert sum(a.status_code == 200 for a in answers) <= 1
    assert all(a.json()["error"] == "invalid_grant" for a in answers if a.status_code != 200)


def test_a_user_without_a_grant_is_told_so_and_can_only_deny(up: Up, flow: Flow) -> None:
    browser = ConsentBrowser(up, ALICE)  # Acme's owner: the grants on payments are Globex's
    try:
        page = browser.consent_page(flow.authorization_url())
        assert page.status_code == 403
        assert "no active grant on server payments matches you" in page.text
        assert 'value="allow"' not in page.text
        location = browser.answer(page, decision="deny")
    finally:
        browser.close()
    assert parse_qs(urlsplit(location).query)["error"] == ["access_denied"]


def test_a_resource_at_the_servers_url_names_the_server(up: Up) -> None:
    """On Kubernetes the servers are at `https://mcp.<domain>` and the platform at `https://platform.<domain>`
    (`MCP_RUNTIME_SERVERS_URL`): a resource at either names the server; any other origin does not."""
    from mcp_runtime.platform.oauth.service import AuthorizeError, OAuthService

    platform = up.embedded.platform
    oauth = OAuthService(platform.store, platform.access, up.url, platform.settings.access_token_ttl,
                         platform.settings.oauth_authorization_ttl, servers_url="https://mcp.example.com")
    assert oauth.server_of("https://mcp.example.com/payments/mcp") == (ACME_NS, "payments")
    assert oauth.server_of(f"{up.url}/payments/mcp") == (ACME_NS, "payments")
    for other in ("https://elsewhere.example.com/payments/mcp", "http://mcp.example.com:8443/payments/mcp",
                  "https://mcp.example.com/payments/mcp?x=1"):
        with pytest.raises(AuthorizeError):
            oauth.server_of(other)
