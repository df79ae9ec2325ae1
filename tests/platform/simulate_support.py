"""Recorded traffic for `access simulate`, made the way production makes it.

`mcp-runtime up` runs in process (`EmbeddedPlatform`: the API, the gateway, the process runtime running the
real data-utility MCP server from its run command, the emitter posting to the ingest, the SQLite event
store). The one thing replaced is the gateway's clock: a `FastForwardClock` that the test sets before each
call, so a week of traffic is recorded in seconds, with real session tokens, real grants and sessions
changed through the API in the middle of it.

    with running_up(tmp_path) as up:
        up.clock.set(datetime(...))
        outcome = up.call(caller, "echo")        # Outcome(allowed, reason, status)
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from platform_support import ADMIN_EMAIL, ADMIN_PASSWORD, free_port, platform_settings

from fixtures.servers import DATA_UTILITY_DIR
from mcp_runtime.compose.embedded import EmbeddedPlatform
from mcp_runtime.sentinel.store import UsageFilter
from mcp_runtime.store.sql import sqlite_url

# The data-utility tools as its metadata declares them: multiply needs medium trust, reverse is a write.
TOOLS = [
    {"name": "echo", "sideEffect": "read"},
    {"name": "add", "sideEffect": "read"},
    {"name": "multiply", "sideEffect": "read", "requiredTrust": "medium"},
    {"name": "upper", "sideEffect": "read"},
    {"name": "lower", "sideEffect": "read"},
    {"name": "reverse", "sideEffect": "write"},
]
ARGUMENTS = {"add": {"a": 2, "b": 3}, "multiply": {"a": 2, "b": 3}}
JSON_RPC = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


class FastForwardClock:
    """The gateway's clock: whatever time the test last set (thread-safe; read by the gateway's loop)."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when

    def __call__(self) -> datetime:
        with self._lock:
            return self._now


@dataclass(frozen=True)
class Caller:
    """Who calls: the identity of a session token (None for an anonymous caller)."""

    key: str
    human: str | None
    agent: str | None
    team_id: str | None
    session: str | None
    token: str | None


@dataclass(frozen=True)
class Outcome:
    """What the gateway decided, read from its answer: forwarded (allowed), a -32001 denial, or a 401."""

    allowed: bool
    reason: str
    status: int


@dataclass
class Up:
    url: str
    embedded: EmbeddedPlatform
    clock: FastForwardClock
    http: httpx.Client
    admin: str = ""
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _mcp_sessions: dict[tuple[str, str | None], str] = field(default_factory=dict)

    # the API ---------------------------------------------------------------------------------------
    def api(self, token: str | None, method: str, path: str, body: Any = None, *, ok: bool = True) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = self.http.request(method, f"{self.url}/api/v1{path}", json=body, headers=headers)
        if ok:
            assert answer.is_success, f"{method} {path}: {answer.status_code} {answer.text}"
            return answer.json() if answer.content else None
        return answer

    def login(self, email: str, password: str) -> str:
        return str(self.api(None, "POST", "/auth/login", {"email": email, "password": password})["accessToken"])

    def wait_ready(self, namespace: str, server: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.api(self.admin, "GET", f"/runtime/servers/{namespace}/{server}").get(
                "status", {}).get("phase") != "Ready":
            assert time.monotonic() < deadline, f"{server} did not become Ready"
            time.sleep(0.1)

    def session(self, key: str, namespace: str, server: str, *, human: str | None, agent: str,
                team_id: str, trust: str, expires_at: datetime) -> Caller:
        """An admin-applied MCPAgentSession and its token (bound to that session)."""
        answer = self.api(self.admin, "POST", "/runtime/sessions", {
            "apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAgentSession",
            "metadata": {"name": key, "namespace": namespace},
            "spec": {"serverRef": {"name": server, "namespace": namespace},
                     "subject": {k: v for k, v in (("humanID", human), ("agentID", agent), ("teamID", team_id)) if v},
                     "consentedTrust": trust, "expiresAt": expires_at.isoformat()}})
        return Caller(key=key, human=human, agent=agent, team_id=team_id, session=key, token=answer["token"])

    # the gateway -----------------------------------------------------------------------------------
    def call(self, path: str, caller: Caller, tool: str, at: datetime) -> Outcome:
        """One `tools/call` through the gateway at `at` (the gateway's clock is set there first)."""
        self.clock.set(at)
        headers = dict(JSON_RPC)
        if caller.token:
            headers["Authorization"] = f"Bearer {caller.token}"
            mcp_session = self._mcp_session(path, caller)
            if mcp_session:
                headers["Mcp-Session-Id"] = mcp_session
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": "tools/call",
                "params": {"name": tool, "arguments": ARGUMENTS.get(tool, {"text": "hello"})}}
        answer = self.http.post(self.url + path, json=body, headers=headers)
        if answer.status_code == 401:
            return Outcome(False, answer.json()["error"], 401)
        if answer.headers.get("content-type", "").startswith("application/json"):
            payload = answer.json()
            error = payload.get("error") if isinstance(payload, dict) else None
            if error and error.get("code") == -32001:
                return Outcome(False, error["data"]["reason"], answer.status_code)
        return Outcome(True, "forwarded", answer.status_code)

    def _mcp_session(self, path: str, caller: Caller) -> str | None:
        """The upstream MCP session of a caller (initialize once, through the gateway, when it lets us)."""
        key = (path, caller.token)
        if key not in self._mcp_sessions:
            answer = self.http.post(self.url + path, headers={**JSON_RPC, "Authorization": f"Bearer {caller.token}"},
                                    json={"jsonrpc": "2.0", "id": next(self._ids), "method": "initialize",
                                          "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                                     "clientInfo": {"name": "simulate-test", "version": "1"}}})
            session = answer.headers.get("mcp-session-id")
            if answer.status_code != 200 or not session:
                return None
            self.http.post(self.url + path, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                           headers={**JSON_RPC, "Authorization": f"Bearer {caller.token}", "Mcp-Session-Id": session})
            self._mcp_sessions[key] = session
        return self._mcp_sessions[key]

    def wait_for_events(self, flt: UsageFilter, count: int, timeout: float = 30) -> None:
        """Until the store holds `count` events matching `flt` (they travel emitter -> ingest -> store)."""
        deadline = time.monotonic() + timeout
        while (stored := self.embedded.platform.events.totals(flt).events) < count:
            assert time.monotonic() < deadline, f"only {stored} of {count} events reached the store"
            time.sleep(0.05)
        assert stored == count, f"{stored} events stored, expected {count}"


def deploy_body(name: str) -> dict[str, Any]:
    """The real data-utility server, run by the process runtime from its run command."""
    return {"metadata": {"name": name, "tools": TOOLS,
                         "run": {"command": "python app.py", "workingDir": str(DATA_UTILITY_DIR)},
                         "envVars": [{"name": "MCP_JSON_RESPONSE", "value": "1"},
                                     {"name": "LOG_LEVEL", "value": "WARNING"}]}}


@contextmanager
def running_up(data_dir: Path, start: datetime) -> Iterator[Up]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    clock = FastForwardClock(start)
    embedded = EmbeddedPlatform(platform_settings(data_dir, sqlite_url(data_dir)), public_url=url,
                                gateway_clock=clock)
    server = uvicorn.Server(uvicorn.Config(embedded.asgi, host="127.0.0.1", port=port, lifespan="on",
                                           interface="asgi3", log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"up-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "up did not start"
            time.sleep(0.02)
        with httpx.Client(timeout=30) as http:
            up = Up(url=url, embedded=embedded, clock=clock, http=http)
            up.admin = up.login(ADMIN_EMAIL, ADMIN_PASSWORD)
            yield up
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def now() -> datetime:
    return datetime.now(UTC)
