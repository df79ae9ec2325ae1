"""`mcp-runtime up` killed hard (SIGKILL, as the OOM killer does) and started again on the same data dir.

The server runs behind a shell wrapper, so the process that listens is a grandchild of `up`. After the
kill, every server process must be gone within a bound, by the runtime's lifeline alone (nothing else
cleans up here). After the restart: the server is Ready again; the grant, the adapter session and the
session token issued before the crash still work; every analytics event recorded before the crash is
counted exactly once (the emitter's spool may replay a batch; the ingest deduplicates on event_id).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from fixtures.platform_up import AGENT, NAMESPACE, SERVER, PlatformWorld, running_platform
from mcp_runtime.runtime.lifeline import alive, processes_with
from mcp_runtime.runtime.ownership import OWNER_ENV, owner_id

pytestmark = pytest.mark.slow

WRAPPED = f"sh -c '{sys.executable} app.py & wait'"
GONE_WITHIN = 15.0


async def _calls(url: str, token: str, tools: list[str]) -> list[str]:
    """Each tool once in one SDK session; "ok" or the denial reason."""
    outcomes = []
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for tool in tools:
            arguments = {"a": 2, "b": 3} if tool == "add" else {"text": "hi"}
            try:
                result = await session.call_tool(tool, arguments)
                outcomes.append("error" if result.is_error else "ok")
            except MCPError as exc:
                data = exc.error.data if isinstance(exc.error.data, dict) else {}
                outcomes.append(str(data.get("reason")))
    return outcomes


def _wait(condition: Callable[[], Any], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.1)
    return time.monotonic() - started


def _event_ids(world: PlatformWorld) -> list[str]:
    """Every stored event of the server, paging through /analytics/events as the admin."""
    ids: list[str] = []
    after = None
    while True:
        page = world.api("GET", "analytics/events?server=" + SERVER + "&limit=1000" +
                         (f"&after={after}" if after else "")).json()
        ids += [e["eventID"] for e in page["items"]]
        after = page.get("next")
        if not after or not page["items"]:
            return ids


def _total(world: PlatformWorld) -> int:
    return int(world.api("GET", f"analytics/usage?section=totals&server={SERVER}").json()["totals"]["events"])


def test_sigkill_of_up_stops_its_servers_and_a_restart_resumes_everything(tmp_path: Path) -> None:
    with running_platform(tmp_path, run_command=WRAPPED) as world:
        alice = json.loads((world.config_dir / "config.json").read_text())["profiles"]["alice"]["accessToken"]
        issued = world.http.post(f"{world.url}/api/v1/runtime/adapter/sessions", json={
            "server": SERVER, "agent": AGENT, "agentID": AGENT}, headers={"Authorization": f"Bearer {alice}"})
        assert issued.status_code == 200, issued.text
        token = issued.json()["token"]
        before = anyio.run(_calls, world.runtime_url, token, ["add", "echo", "add", "upper"])
        assert before == ["ok", "ok", "ok", "tool_not_granted"]
        # every call is audited (plus the session's initialize and tools/list traffic the gateway records)
        _wait(lambda: _total(world) >= 4, 30, "the calls' events to be recorded")
        time.sleep(1.0)  # let any trailing batch land, so "recorded before the crash" is a settled number
        recorded = _event_ids(world)
        assert len(recorded) == len(set(recorded)) == _total(world)

        owner = owner_id(world.data_dir)
        servers = processes_with(OWNER_ENV, owner)
        assert len(servers) == 2, servers  # the shell wrapper and the real server under it
        world.kill_hard()
        took = _wait(lambda: not any(alive(pid) for pid in servers), GONE_WITHIN,
                     "the server processes to die with up")
        print(f"server processes gone {took:.2f}s after SIGKILL of up")

        world.restart()
        world.wait_ready()
        assert not set(processes_with(OWNER_ENV, owner)) & set(servers)
        grant = world.api("GET", f"runtime/grants/{NAMESPACE}/{SERVER}-{AGENT}").json()
        assert grant["status"]["phase"] == "Active", grant
        sessions = world.api("GET", "runtime/sessions").json()["items"]
        assert [s["status"]["phase"] for s in sessions] == ["Active"], sessions

        # the token issued before the crash is still valid, and the decisions are the same
        after = anyio.run(_calls, world.runtime_url, token, ["add", "upper"])
        assert after == ["ok", "tool_not_granted"]

        # nothing recorded before the crash was lost or doubled
        def settled() -> bool:
            ids = _event_ids(world)
            return set(recorded) <= set(ids) and len(ids) >= len(recorded) + 2
        _wait(settled, 30, "the new calls' events")
        time.sleep(1.0)
        ids = _event_ids(world)
        assert len(ids) == len(set(ids)) == _total(world)
        assert set(recorded) <= set(ids)
        new = [i for i in ids if i not in set(recorded)]
        assert all(i > max(recorded) for i in new), "events after the restart are newer (UUIDv7 order)"
