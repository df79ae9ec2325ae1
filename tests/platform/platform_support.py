"""Test support for the store and platform API: the two databases, and a live API server.

Databases: a SQLite file, and a fresh PostgreSQL schema per use (dropped afterwards).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import uvicorn
from sqlalchemy import text

from fixtures.cli import free_port
from mcp_runtime.platform import Platform, PlatformSettings, create_app
from mcp_runtime.resources import MCPServer
from mcp_runtime.store.sql import make_engine, sqlite_url

POSTGRES_URL = os.environ.get(
    "MCP_RUNTIME_TEST_POSTGRES_URL", "postgresql+psycopg://mcp_runtime:mcp_runtime@127.0.0.1:5432/mcp_runtime_test"
)
BACKENDS = ["sqlite", "postgres"]


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL whose connections see only a new, empty schema; dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = make_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def database_url(backend: str, data_dir: Path) -> Iterator[str]:
    if backend == "sqlite":
        data_dir.mkdir(parents=True, exist_ok=True)
        yield sqlite_url(data_dir)
    else:
        with postgres_schema() as url:
            yield url


# --- a live platform API: the real app under uvicorn on a free port, in a thread --------------------
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-1"


@dataclass
class LivePlatform:
    url: str
    platform: Platform
    settings: PlatformSettings
    http: httpx.Client  # one pooled client: building an httpx.Client costs ~40 ms (TLS context)

    def call(self, method: str, path: str, *, token: str | None = None, json: Any = None,
             **kwargs: Any) -> httpx.Response:
        """`path` is relative to /api/v1."""
        headers = dict(kwargs.pop("headers", None) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, f"/api/v1{path}", json=json, headers=headers, **kwargs)

    def login(self, email: str, password: str) -> dict[str, Any]:
        answer = self.call("POST", "/auth/login", json={"email": email, "password": password})
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]


def platform_settings(data_dir: Path, db_url: str, **overrides: Any) -> PlatformSettings:
    return PlatformSettings(data_dir=data_dir, database_url=db_url, admin_email=ADMIN_EMAIL,
                            admin_password=ADMIN_PASSWORD, **overrides)


@contextmanager
def serve_platform(settings: PlatformSettings, port: int | None = None) -> Iterator[LivePlatform]:
    """Start the platform API on 127.0.0.1:<port or a free one>; stop it (and close its store) on exit."""
    app = create_app(settings)
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"platform-{port}", daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            time.sleep(0.01)
        assert server.started, "the platform API did not start"
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=30) as http:
            yield LivePlatform(url=url, platform=app.state.platform, settings=settings, http=http)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


# --- a small world: Acme (alice owner, carol member) and Globex (bob, dave members) -------------------
TOOLS = [
    {"name": "echo", "sideEffect": "read"},
    {"name": "add", "sideEffect": "read"},
    {"name": "create_task", "sideEffect": "write", "requiredTrust": "medium"},
]
PASSWORDS = {"alice@acme.com": "alice123", "carol@acme.com": "carol123", "bob@globex.com": "bob456",
             "dave@globex.com": "dave789"}


def grant_doc(name: str, namespace: str, server: str, subject: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAccessGrant",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"serverRef": {"name": server, "namespace": namespace}, "subject": subject, **spec}}


def session_doc(name: str, namespace: str, server: str, subject: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAgentSession",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"serverRef": {"name": server, "namespace": namespace}, "subject": subject, **spec}}


def deploy_body(name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name, "tools": TOOLS}, **extra}
    if namespace:
        body["namespace"] = namespace
    return body


@dataclass
class World:
    live: LivePlatform
    tokens: dict[str, str]  # role -> bearer (access token or API key)
    teams: dict[str, dict[str, Any]]  # slug -> team JSON

    def call(self, role: str, method: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        return self.live.call(method, path, token=self.tokens.get(role), json=body, **kwargs)

    def ok(self, role: str, method: str, path: str, body: Any = None) -> Any:
        answer = self.call(role, method, path, body)
        assert answer.is_success, f"{method} {path} as {role}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None


def build_world(live: LivePlatform) -> World:
    """Teams acme and globex with their users; alice deploys payments and ledger; grants:
    payments-to-globex (globex team, agent cursor, echo+add) and acme-cursor (acme team, agent cursor)."""
    admin = live.login(ADMIN_EMAIL, ADMIN_PASSWORD)["accessToken"]
    world = World(live=live, tokens={"admin": admin}, teams={})
    for slug, name in (("acme", "Acme Corp"), ("globex", "Globex Corp")):
        world.teams[slug] = world.ok("admin", "POST", "/teams", {"slug": slug, "name": name})
    for team, email, role in (("acme", "alice@acme.com", "owner"), ("acme", "carol@acme.com", "member"),
                              ("globex", "bob@globex.com", "member"), ("globex", "dave@globex.com", "member")):
        world.ok("admin", "POST", f"/teams/{team}/users",
                 {"username": email, "password": PASSWORDS[email], "role": role})
    for role, email in (("owner", "alice@acme.com"), ("member", "carol@acme.com"), ("other", "bob@globex.com"),
                        ("dave", "dave@globex.com")):
        world.tokens[role] = live.login(email, PASSWORDS[email])["accessToken"]
    world.tokens["apikey"] = world.ok("member", "POST", "/user/api-keys", {"name": "ci"})["key"]
    world.ok("owner", "POST", "/runtime/servers", deploy_body("payments"))
    world.ok("owner", "POST", "/runtime/servers", deploy_body("ledger"))
    acme, globex = world.teams["acme"]["id"], world.teams["globex"]["id"]
    world.ok("owner", "POST", "/runtime/grants", grant_doc(
        "payments-to-globex", "mcp-team-acme", "payments", {"teamID": globex, "agentID": "cursor"},
        toolRules=[{"name": "echo"}, {"name": "add"}]))
    world.ok("owner", "POST", "/runtime/grants", grant_doc(
        "acme-cursor", "mcp-team-acme", "payments", {"teamID": acme, "agentID": "cursor"}, maxTrust="medium"))
    return world


# --- a test double of the runtime interface -------------------------------------------------------
class RecordingRuntime:
    """A test double of the runtime interface (`RuntimeHooks` plus the optional `check`, `logs`,
    `follow_logs` and `runtime_name`). It runs nothing: it records what the platform tells it, refuses
    servers without a run command as the process runtime does, and serves the log lines a test sets."""

    runtime_name = "recording"

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.lines: dict[tuple[str, str], list[str]] = {}
        self.followed: dict[tuple[str, str], list[str]] = {}

    def server_created(self, server: MCPServer) -> None:
        self.events.append(("created", server.metadata.namespace or "", server.metadata.name))

    def server_updated(self, server: MCPServer) -> None:
        self.events.append(("updated", server.metadata.namespace or "", server.metadata.name))

    def server_deleted(self, server: MCPServer) -> None:
        self.events.append(("deleted", server.metadata.namespace or "", server.metadata.name))

    def check(self, server: MCPServer) -> str | None:
        if server.spec.run is None:
            return (f"server {server.metadata.name} has no run command: the process runtime starts servers from "
                    'run.command; redeploy with --run "python app.py" or use a container runtime')
        return None

    def logs(self, namespace: str, name: str, tail: int) -> list[str]:
        return self.lines.get((namespace, name), [])[-tail:]

    async def follow_logs(self, namespace: str, name: str) -> AsyncIterator[str]:
        for line in self.followed.get((namespace, name), []):
            yield line
