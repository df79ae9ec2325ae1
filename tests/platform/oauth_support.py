"""MCP authorization against `mcp-runtime up`: the world (teams, servers, grants), a browser-like consent
driver over HTTP, the official SDK's OAuth client run against a server URL, and a hand-driven OAuth flow for
the bad-input tests. Shared by the process runtime's tests (test_oauth.py, test_oauth_errors.py) and the
podman one (test_oauth_podman.py): everything but `run_up`/`build_world` needs only the platform's URL.

The world: Acme owns `payments` (echo: read, add: read at medium trust, reverse: write) and `ledger`;
Globex's bob holds a grant on `payments` for echo and add up to medium trust, and one on `ledger`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import uvicorn
from dashboard_support import csrf_of
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from mcp.shared.exceptions import MCPError
from platform_support import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORDS, free_port, grant_doc, platform_settings
from pydantic import AnyUrl

from fixtures.servers import DATA_UTILITY_DIR
from mcp_runtime.compose.embedded import EmbeddedPlatform
from mcp_runtime.store.sql import sqlite_url

ACME_NS = "mcp-team-acme"
TOOLS = [{"name": "echo", "sideEffect": "read"}, {"name": "add", "sideEffect": "read", "requiredTrust": "medium"},
         {"name": "reverse", "sideEffect": "write"}]
BOB = ("bob@globex.com", PASSWORDS["bob@globex.com"])
ALICE = ("alice@acme.com", PASSWORDS["alice@acme.com"])
CALLBACK = "http://127.0.0.1:33418/callback"


class Reachable(Protocol):
    """A running platform as a client sees it: its public URL (`up` in process, or `up --runtime podman`)."""

    url: str


@dataclass
class Up:
    url: str
    embedded: EmbeddedPlatform
    teams: dict[str, Any] = field(default_factory=dict)

    def api(self, who: tuple[str, str] | None, method: str, path: str, body: Any = None,
            expect: int | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.login(*who)}"} if who else {}
        answer = httpx.request(method, f"{self.url}/api/v1{path}", json=body, headers=headers, timeout=30)
        if expect is None:
            assert answer.is_success, f"{method} {path}: {answer.status_code} {answer.text}"
        else:
            assert answer.status_code == expect, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    def login(self, email: str, password: str) -> str:
        answer = httpx.post(f"{self.url}/api/v1/auth/login", json={"email": email, "password": password}, timeout=30)
        assert answer.is_success, answer.text
        return str(answer.json()["accessToken"])


@contextmanager
def run_up(data_dir: Path, **settings: Any) -> Iterator[Up]:
    """`mcp-runtime up` in a thread on a free port (the public URL the issuer and resource URIs start with)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    embedded = EmbeddedPlatform(platform_settings(data_dir, sqlite_url(data_dir), **settings), public_url=url)
    server = uvicorn.Server(uvicorn.Config(embedded.asgi, host="127.0.0.1", port=port, lifespan="on",
                                           interface="asgi3", log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"up-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "up did not start"
            time.sleep(0.02)
        yield Up(url, embedded)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def build_world(up: Up) -> None:
    admin = (ADMIN_EMAIL, ADMIN_PASSWORD)
    for slug, name in (("acme", "Acme Corp"), ("globex", "Globex Corp")):
        up.teams[slug] = up.api(admin, "POST", "/teams", {"slug": slug, "name": name})
    for team, (email, password), role in (("acme", ALICE, "owner"), ("globex", BOB, "member")):
        up.api(admin, "POST", f"/teams/{team}/users", {"username": email, "password": password, "role": role})
    globex = up.teams["globex"]["id"]
    for server in ("payments", "ledger"):
        up.api(ALICE, "POST", "/runtime/servers", {"metadata": {
            "name": server, "tools": TOOLS, "run": {"command": "python app.py", "workingDir": str(DATA_UTILITY_DIR)}}})
        up.api(ALICE, "POST", "/runtime/grants", grant_doc(
            f"{server}-to-globex", ACME_NS, server, {"teamID": globex},
            toolRules=[{"name": "echo"}, {"name": "add"}], maxTrust="medium"))
    for server in ("payments", "ledger"):
        wait_ready(up, server)


def wait_ready(up: Up, server: str) -> None:
    deadline = time.monotonic() + 60
    while up.api(ALICE, "GET", f"/runtime/servers/{ACME_NS}/{server}").get("status", {}).get("phase") != "Ready":
        assert time.monotonic() < deadline, f"{server} did not become Ready"
        time.sleep(0.1)


# --- the browser, over HTTP ------------------------------------------------------------------------------------
class ConsentBrowser:
    """Signs in to the dashboard like a person would (login form, cookies) and answers consent pages."""

    def __init__(self, up: Reachable, who: tuple[str, str]) -> None:
        self.http = httpx.Client(base_url=up.url, timeout=30, follow_redirects=False)
        page = self.http.get("/login")
        answer = self.http.post("/login", data={"email": who[0], "password": who[1], "csrf": csrf_of(page.text),
                                                "next": "/analytics"})
        assert answer.status_code == 303, answer.text
        self.last_page = ""

    def consent_page(self, authorization_url: str) -> httpx.Response:
        """Follow the client's authorization URL to the dashboard's consent page."""
        answer = self.http.get(authorization_url)
        assert answer.status_code == 302, answer.text
        page = self.http.get(answer.headers["location"])
        self.last_page = page.text
        return page

    def answer(self, page: httpx.Response, decision: str = "allow", **fields: str) -> str:
        """Submit the consent form; the redirect back to the client (its Location)."""
        request_id = parse_qs(urlsplit(str(page.url)).query)["request"][0]
        form = {"csrf": csrf_of(page.text), "request": request_id, "decision": decision,
                "agent_id": _value_of(page.text, "agent_id"), "trust": "medium", **fields}
        answer = self.http.post("/oauth/authorize", data=form)
        assert answer.status_code == 303, answer.text
        return str(answer.headers["location"])

    def authorize(self, authorization_url: str, **fields: str) -> str:
        return self.answer(self.consent_page(authorization_url), **fields)

    def close(self) -> None:
        self.http.close()


def _value_of(html: str, name: str) -> str:
    marker = f'name="{name}" value="'
    return html.split(marker, 1)[1].split('"', 1)[0] if marker in html else ""


class MemoryStorage:
    """The SDK client's token storage, in memory."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


# --- a hand-driven flow (for what an honest client never sends) -------------------------------------------------
def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


@dataclass
class Flow:
    up: Reachable
    client_id: str = ""
    client_secret: str = ""
    verifier: str = ""
    challenge: str = ""

    @property
    def oauth(self) -> str:
        return f"{self.up.url}/api/v1/oauth"

    def register(self, **metadata: Any) -> httpx.Response:
        body = {"client_name": "Flow Client", "redirect_uris": [CALLBACK],
                "grant_types": ["authorization_code", "refresh_token"], **metadata}
        answer = httpx.post(f"{self.oauth}/register", json=body, timeout=30)
        if answer.status_code == 201:
            self.client_id, self.client_secret = answer.json()["client_id"], answer.json()["client_secret"]
        return answer

    def authorization_url(self, server: str = "payments", **params: str) -> str:
        self.verifier, self.challenge = pkce()
        query = {"response_type": "code", "client_id": self.client_id, "redirect_uri": CALLBACK,
                 "code_challenge": self.challenge, "code_challenge_method": "S256", "state": "st-1",
                 "resource": f"{self.up.url}/{server}/mcp", **params}
        return str(httpx.URL(f"{self.oauth}/authorize", params={k: v for k, v in query.items() if v != ""}))

    def code(self, browser: ConsentBrowser, server: str = "payments") -> str:
        location = browser.authorize(self.authorization_url(server))
        query = parse_qs(urlsplit(location).query)
        assert location.startswith(CALLBACK) and query["state"] == ["st-1"], location
        return query["code"][0]

    def token(self, **form: str) -> httpx.Response:
        body = {"client_id": self.client_id, "client_secret": self.client_secret, **form}
        return httpx.post(f"{self.oauth}/token", data=body, timeout=30)

    def exchange(self, code: str, **form: str) -> httpx.Response:
        return self.token(grant_type="authorization_code", code=code, redirect_uri=CALLBACK,
                          code_verifier=self.verifier, **form)

    def refresh(self, refresh_token: str) -> httpx.Response:
        return self.token(grant_type="refresh_token", refresh_token=refresh_token)


def mcp_list(up: Reachable, server: str, token: str, **headers: str) -> httpx.Response:
    """A raw `tools/list` through the gateway with a bearer token (no MCP session needed for the answer code)."""
    return httpx.post(f"{up.url}/{server}/mcp", timeout=30,
                      json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}},
                      headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
                               **headers})


# --- the official SDK's OAuth client ------------------------------------------------------------------------
async def sdk_flow(server_url: str, browser: ConsentBrowser, storage: MemoryStorage,
                   seen: list[tuple[str, str, int]] | None = None) -> dict[str, Any]:
    """The SDK's OAuth client given only `server_url`: list the tools, call echo and add (granted) and reverse
    (not granted). `seen` collects (method, URL, status) of every request the client sent, discovery included."""
    redirect: dict[str, str] = {}

    async def open_browser(url: str) -> None:  # the SDK hands the authorization URL to "the browser"
        redirect["location"] = await anyio.to_thread.run_sync(browser.authorize, url)

    async def callback() -> AuthorizationCodeResult:
        query = parse_qs(urlsplit(redirect["location"]).query)
        return AuthorizationCodeResult(code=query["code"][0], state=query["state"][0], iss=query["iss"][0])

    async def record(response: Any) -> None:
        if seen is not None:
            seen.append((response.request.method, str(response.request.url), response.status_code))

    provider = OAuthClientProvider(
        server_url=server_url,
        client_metadata=OAuthClientMetadata(client_name="Claude Test Agent", redirect_uris=[AnyUrl(CALLBACK)],
                                            grant_types=["authorization_code", "refresh_token"]),
        storage=storage, redirect_handler=open_browser, callback_handler=callback)
    async with create_mcp_http_client(auth=provider) as http:
        http.event_hooks = {"response": [record]}
        async with streamable_http_client(server_url, http_client=http) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            tools = sorted(t.name for t in (await session.list_tools()).tools)
            echo = await session.call_tool("echo", {"text": "hi"})
            add = await session.call_tool("add", {"a": 1, "b": 2})
            denial: dict[str, Any] = {}
            try:
                reverse = await session.call_tool("reverse", {"text": "hi"})
                if reverse.is_error:
                    denial = {"message": " ".join(getattr(part, "text", "") for part in reverse.content)}
            except MCPError as exc:  # the gateway's JSON-RPC error (-32001) with the reason in its data
                data = exc.data if isinstance(exc.data, dict) else {}
                denial = {"code": exc.code, "message": exc.message, "reason": data.get("reason")}
    return {"tools": tools, "echo": not echo.is_error, "add": not add.is_error, "reverse_denied": bool(denial),
            "denial": denial, "location": redirect.get("location", "")}
