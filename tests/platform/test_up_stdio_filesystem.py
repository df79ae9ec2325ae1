"""The real `@modelcontextprotocol/server-filesystem` from npm as a stdio server in `mcp-runtime up` (process
runtime, `npx` behind the bridge), governed like any server: the official SDK client, with an adapter session
of a user whose grant allows the read tools, sees only those in `tools/list`, lists a directory, and is
refused `write_file` (and no file appears)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from oauth_support import ACME_NS, ALICE, BOB, Up, run_up
from platform_support import ADMIN_EMAIL, ADMIN_PASSWORD, grant_doc

PACKAGE = "npm:@modelcontextprotocol/server-filesystem@2026.8.31"
READ_TOOLS = ["list_allowed_directories", "list_directory", "read_text_file"]
TOOLS = [*({"name": t, "sideEffect": "read"} for t in READ_TOOLS),
         {"name": "write_file", "sideEffect": "write"}, {"name": "create_directory", "sideEffect": "write"}]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Up, Path]]:
    shared = tmp_path_factory.mktemp("shared")
    (shared / "notes.txt").write_text("hello from the filesystem server\n")
    with run_up(tmp_path_factory.mktemp("up-files")) as live:
        admin = (ADMIN_EMAIL, ADMIN_PASSWORD)
        for slug in ("acme", "globex"):
            live.teams[slug] = live.api(admin, "POST", "/teams", {"slug": slug, "name": slug.title()})
        for team, (email, password), role in (("acme", ALICE, "owner"), ("globex", BOB, "member")):
            live.api(admin, "POST", f"/teams/{team}/users", {"username": email, "password": password, "role": role})
        yield live, shared


@asynccontextmanager
async def session(url: str, token: str) -> AsyncIterator[ClientSession]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http, \
            streamable_http_client(url, http_client=http) as (read, write), ClientSession(read, write) as mcp:
        await mcp.initialize()
        yield mcp


async def _use(url: str, token: str, shared: Path) -> dict[str, Any]:
    async with session(url, token) as mcp:
        listed = sorted(t.name for t in (await mcp.list_tools()).tools)
        directory = await mcp.call_tool("list_directory", {"path": str(shared)})
        try:
            written = await mcp.call_tool("write_file", {"path": str(shared / "evil.txt"), "content": "x"})
            refusal = "allowed" if not written.is_error else "tool error"
        except Exception as exc:  # the gateway's JSON-RPC denial (-32001) raised by the SDK
            refusal = str(exc)
    return {"tools": listed, "directory": " ".join(getattr(c, "text", "") for c in directory.content),
            "directory_error": directory.is_error, "write": refusal}


def test_server_filesystem_from_npm_is_governed_in_up(up: tuple[Up, Path]) -> None:
    live, shared = up
    live.api(ALICE, "POST", "/runtime/servers", {"metadata": {
        "name": "files", "tools": TOOLS, "stdio": {"package": PACKAGE, "args": [str(shared)]}}})
    deadline = time.monotonic() + 120  # npx may fetch the package on first use
    while (status := live.api(ALICE, "GET", f"/runtime/servers/{ACME_NS}/files").get("status", {})).get(
            "phase") not in ("Ready", "Error"):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status["phase"] == "Ready", status
    live.api(ALICE, "POST", "/runtime/grants", grant_doc(
        "files-read", ACME_NS, "files", {"teamID": live.teams["globex"]["id"], "agentID": "cursor"},
        toolRules=[{"name": t} for t in READ_TOOLS], allowedSideEffects=["read"]))
    token = live.api(BOB, "POST", "/runtime/adapter/sessions", {"server": "files", "agentID": "cursor"})["token"]

    outcome = anyio.run(_use, f"{live.url}/files/mcp", token, shared)
    assert outcome["tools"] == READ_TOOLS  # filtered by the grant: no write tools listed
    assert not outcome["directory_error"] and "[FILE] notes.txt" in outcome["directory"], outcome
    assert outcome["write"] not in ("allowed", "tool error"), outcome  # refused by the gateway, not the server
    assert not (shared / "evil.txt").exists()
    deadline = time.monotonic() + 20  # the gateway's events reach the store through ingest
    while not (events := live.api(ALICE, "GET", "/analytics/events?server=files&tool=write_file")["items"]) \
            and time.monotonic() < deadline:
        time.sleep(0.2)
    assert any(e["decision"] == "deny" and e["reason"] == "tool_not_granted" for e in events), events
