"""`mcp-runtime up` end to end for the observability plane: the tutorial's cross-team calls go through the
embedded gateway, its emitter posts them to the platform's ingest, and they show up in the analytics API
and the dashboard's Tools table by name (step 8 of the multi-team tutorial)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from dashboard_support import LiveSite, login_client
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from platform_support import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORDS, free_port, grant_doc, platform_settings

from fixtures.servers import DATA_UTILITY_DIR
from mcp_runtime.compose.embedded import EmbeddedPlatform
from mcp_runtime.store.sql import sqlite_url

ACME_NS = "mcp-team-acme"
TOOLS = [{"name": "echo", "sideEffect": "read"}, {"name": "add", "sideEffect": "read"},
         {"name": "reverse", "sideEffect": "write"}]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, EmbeddedPlatform]]:
    data_dir: Path = tmp_path_factory.mktemp("up")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    embedded = EmbeddedPlatform(platform_settings(data_dir, sqlite_url(data_dir)), public_url=url)
    server = uvicorn.Server(uvicorn.Config(embedded.asgi, host="127.0.0.1", port=port, lifespan="on",
                                           interface="asgi3", log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"up-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "up did not start"
            time.sleep(0.02)
        yield url, embedded
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _api(url: str, token: str | None, method: str, path: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.request(method, f"{url}/api/v1{path}", json=body, headers=headers, timeout=30)
    assert answer.is_success, f"{method} {path}: {answer.status_code} {answer.text}"
    return answer.json() if answer.content else None


def _login(url: str, email: str, password: str) -> str:
    return str(_api(url, None, "POST", "/auth/login", {"email": email, "password": password})["accessToken"])


async def _calls(url: str, token: str, tools: list[str]) -> list[bool]:
    """Each tool once through the gateway with the official SDK client; True when it was allowed."""
    results = []
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for tool in tools:
            arguments = {"a": 1, "b": 2} if tool == "add" else {"text": "hi"}
            try:
                result = await session.call_tool(tool, arguments)
                results.append(not result.is_error)
            except Exception:
                results.append(False)
    return results


def test_tutorial_calls_through_up_reach_analytics_and_the_dashboard(up: tuple[str, EmbeddedPlatform]) -> None:
    url, embedded = up
    admin = _login(url, ADMIN_EMAIL, ADMIN_PASSWORD)
    teams = {slug: _api(url, admin, "POST", "/teams", {"slug": slug, "name": name})
             for slug, name in (("acme", "Acme Corp"), ("globex", "Globex Corp"), ("initech", "Initech"))}
    for team, email, role in (("acme", "alice@acme.com", "owner"), ("globex", "bob@globex.com", "member"),
                              ("initech", "erin@initech.com", "member")):
        _api(url, admin, "POST", f"/teams/{team}/users",
             {"username": email, "password": PASSWORDS.get(email, "erin-pass"), "role": role})
    alice = _login(url, "alice@acme.com", PASSWORDS["alice@acme.com"])
    _api(url, alice, "POST", "/runtime/servers", {"metadata": {
        "name": "payments", "tools": TOOLS, "run": {"command": "python app.py", "workingDir": str(DATA_UTILITY_DIR)}}})
    _api(url, alice, "POST", "/runtime/grants", grant_doc(
        "payments-to-globex", ACME_NS, "payments", {"teamID": teams["globex"]["id"], "agentID": "cursor"},
        toolRules=[{"name": "echo"}, {"name": "add"}]))
    deadline = time.monotonic() + 30
    while _api(url, alice, "GET", f"/runtime/servers/{ACME_NS}/payments").get("status", {}).get("phase") != "Ready":
        assert time.monotonic() < deadline, "payments did not become Ready"
        time.sleep(0.1)
    bob = _login(url, "bob@globex.com", PASSWORDS["bob@globex.com"])
    issued = _api(url, bob, "POST", "/runtime/adapter/sessions", {"server": "payments", "agent": "cursor",
                                                                   "agentID": "cursor"})
    outcomes = anyio.run(_calls, f"{url}/payments/mcp", issued["token"], ["echo", "add", "echo", "reverse"])
    assert outcomes == [True, True, True, False]

    # the events arrive through the emitter -> ingest path (batched off the request path)
    deadline = time.monotonic() + 20
    tools: list[dict[str, Any]] = []
    while sum(r["calls"] for r in tools) < 4 and time.monotonic() < deadline:
        tools = _api(url, alice, "GET", "/analytics/usage?section=tools&server=payments")["tools"]
        time.sleep(0.1)
    rows = {(r["tool"], r["user"], r["team"], r["agent"], r["calls"], r["denied"]) for r in tools}
    assert rows == {("echo", "bob@globex.com", "globex", "cursor", 2, 0),
                    ("add", "bob@globex.com", "globex", "cursor", 1, 0),
                    ("reverse", "bob@globex.com", "globex", "cursor", 1, 1)}
    # Globex sees its own calls; Initech sees none of them
    assert len(_api(url, bob, "GET", "/analytics/usage?section=tools&server=payments")["tools"]) == 3
    erin = _login(url, "erin@initech.com", "erin-pass")
    assert _api(url, erin, "GET", "/analytics/usage?section=totals")["totals"]["events"] == 0

    site = LiveSite(url=url, platform=embedded.platform)
    with login_client(site, "alice@acme.com", PASSWORDS["alice@acme.com"]) as browser:
        page = browser.get("/analytics").text
        table = page.split('data-testid="tools-table"', 1)[1].split("</table>", 1)[0]
        for text in ("bob@globex.com", ">globex<", "cursor", "payments", "reverse"):
            assert text in table
        servers = browser.get("/servers").text
        assert "Ready" in servers and f"{url}/payments/mcp" in servers
