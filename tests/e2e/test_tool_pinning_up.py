"""Tool-definition pinning on the whole platform (`mcp-runtime up`), the way a team meets it:

`server init --from-server` pins the tools of the reviewed server; the deployed server later changes a
tool's description (a rug pull). The gateway finds it by itself when the policy loads: the tool disappears
from `tools/list`, its calls are denied with `tool_definition_changed`, the server shows
`ToolsPinned=False` with what changed, an analytics event records it, `server tools diff` shows the old
and new text, and the owner's `server tools approve` brings the tool back at once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import yaml
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from fixtures.platform_up import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    NAMESPACE,
    OWNER_EMAIL,
    OWNER_PASSWORD,
    TEAM,
    PlatformWorld,
    _wait_for,
    launch_up,
    stop_process_group,
)
from fixtures.servers import REPO_ROOT, free_port, run_server_process

pytestmark = pytest.mark.slow

SERVER = "customers"
DRIFTING = REPO_ROOT / "tests" / "fixtures" / "drifting_server.py"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformWorld]:
    base = tmp_path_factory.mktemp("pinning")
    data_dir, config_dir, app_dir = base / "data", base / "config", base / "app"
    app_dir.mkdir()
    shutil.copy(DRIFTING, app_dir / "server.py")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = launch_up(data_dir, config_dir, port, base / "up.log")
    w = PlatformWorld(url=url, runtime_url=f"{url}/{SERVER}/mcp", config_dir=config_dir, data_dir=data_dir,
                      team_id="", process=process, log_path=base / "up.log")
    try:
        _wait_for(lambda: w.http.get(f"{url}/api/v1/healthz").status_code == 200, process, w.log_path)
        w.login(config_dir, ADMIN_EMAIL, ADMIN_PASSWORD, "admin", use=False)
        w.cli(["team", "create", TEAM, "--name", "Acme Corp"], profile="admin")
        w.cli(["team", "user", "create", TEAM, "--username", OWNER_EMAIL, "--password", OWNER_PASSWORD,
               "--role", "owner"], profile="admin")
        w.cli(["team", "user", "create", TEAM, "--username", "mia@acme.com", "--password", "mia-password-1",
               "--role", "member"], profile="admin")
        w.login(config_dir)
        w.login(config_dir, "mia@acme.com", "mia-password-1", "mia", use=False)
        w.admin_token = w.user_token(ADMIN_EMAIL, ADMIN_PASSWORD)
        w.team_id = next(t["id"] for t in w.api("GET", "teams").json()["items"] if t["slug"] == TEAM)

        # the team reviews the server as it is today: init --from-server pins every tool
        with run_server_process([sys.executable, "server.py"], cwd=app_dir, env={"TOOL_VARIANT": "reviewed"}) as s:
            init = subprocess.run([sys.executable, "-m", "mcp_runtime", "server", "init", SERVER, "--from-server",
                                   s.url, "--run", f"{sys.executable} server.py"], cwd=app_dir, env=w.env,
                                  capture_output=True, text=True, timeout=60)
        assert init.returncode == 0, init.stderr
        assert "pinned" in init.stdout
        metadata = yaml.safe_load((app_dir / ".mcp" / "servers.yaml").read_text())["servers"][0]
        assert all(t["pin"]["digest"].startswith("sha256:") for t in metadata["tools"])
        # ... and what runs later is no longer what was reviewed
        metadata["envVars"] = [{"name": "TOOL_VARIANT", "value": "poisoned"}]
        deployed = w.http.post(f"{url}/api/v1/runtime/servers", json={"metadata": metadata},
                               headers={"Authorization": f"Bearer {w.user_token()}"})
        assert deployed.status_code == 201, deployed.text
        grant = {"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAccessGrant",
                 "metadata": {"name": "customers-cursor", "namespace": NAMESPACE},
                 "spec": {"serverRef": {"name": SERVER}, "subject": {"teamID": w.team_id, "agentID": "cursor"}}}
        assert w.api("POST", "runtime/grants", json=grant).status_code == 201
        w.wait_ready(SERVER)
        yield w
    finally:
        w.http.close()
        stop_process_group(w.process)


def token(w: PlatformWorld) -> str:
    alice = json.loads((w.config_dir / "config.json").read_text())["profiles"]["alice"]["accessToken"]
    issued = w.http.post(f"{w.url}/api/v1/runtime/adapter/sessions", json={
        "server": SERVER, "agent": "cursor", "agentID": "cursor"}, headers={"Authorization": f"Bearer {alice}"})
    assert issued.status_code == 200, issued.text
    return str(issued.json()["token"])


async def _in_session(url: str, bearer: str, body: Any) -> Any:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {bearer}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        return await body(session)


async def _list_and_call(session: ClientSession) -> tuple[list[str], Any]:
    names = sorted(t.name for t in (await session.list_tools()).tools)
    try:
        result = await session.call_tool("lookup", {"customer_id": "c1"})
    except MCPError as exc:
        return names, exc.error.data["reason"]
    return names, result.content[0].text


def condition(w: PlatformWorld) -> dict[str, Any]:
    status = w.api("GET", f"runtime/servers/{NAMESPACE}/{SERVER}").json().get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == "ToolsPinned"), {})


def test_a_changed_tool_is_found_hidden_denied_reported_and_approved(world: PlatformWorld) -> None:
    w = world
    # found by the gateway's own listing when the policy loaded, before any client asked
    _wait_for(lambda: condition(w).get("status") == "False", w.process, w.log_path)
    assert condition(w)["message"] == "lookup: definition changed"
    bearer = token(w)
    assert anyio.run(_in_session, w.runtime_url, bearer, _list_and_call) == (["greet"], "tool_definition_changed")

    # the drift is in analytics and in the server's events
    def drift_event() -> bool:
        events = w.api("GET", f"analytics/events?server={SERVER}&tool=lookup&limit=1000").json()["items"]
        return any(e["method"] == "tools/list" and e["reason"] == "tool_definition_changed" for e in events)
    _wait_for(drift_event, w.process, w.log_path)
    events = w.api("GET", f"runtime/servers/{NAMESPACE}/{SERVER}/events").json()["items"]
    assert any(e["action"] == "tools_drift" for e in events)

    # the diff shows the reviewed text against the new one
    diff = w.cli(["server", "tools", "diff", SERVER]).stdout
    assert "CHANGED" in diff
    assert "-description: Look up a customer by id." in diff
    assert "id_rsa" in diff.split("+description:", 1)[1]

    # a member may not approve; the owner may, and the tool is back at once
    denied = w.cli(["server", "tools", "approve", SERVER], profile="mia", check=False)
    assert denied.returncode != 0 and "owners" in denied.stdout + denied.stderr

    owner = w.user_token()

    async def approve_then_call(session: ClientSession) -> tuple[float, float, Any]:
        started = time.perf_counter()
        answer = await anyio.to_thread.run_sync(lambda: w.http.post(
            f"{w.url}/api/v1/runtime/servers/{NAMESPACE}/{SERVER}/tools/approve", json={"tools": ["lookup"]},
            headers={"Authorization": f"Bearer {owner}"}))
        assert answer.status_code == 200, answer.text
        approved = time.perf_counter()
        result = await session.call_tool("lookup", {"customer_id": "c9"})
        return approved - started, time.perf_counter() - started, result.content[0].text

    api_took, took, text = anyio.run(_in_session, w.runtime_url, bearer, approve_then_call)
    assert text == "customer c9"  # the very next call after the approval's answer is allowed
    print(f"approve to first allowed call: {took * 1000:.0f} ms (approve API {api_took * 1000:.0f} ms, "
          f"then the call through the gateway)")
    assert anyio.run(_in_session, w.runtime_url, bearer, _list_and_call) == (["greet", "lookup"], "customer c1")
    _wait_for(lambda: condition(w).get("status") == "True", w.process, w.log_path)
    # the pin is in the resource (desired state) and in the policy the gateway enforces
    spec = w.api("GET", f"runtime/servers/{NAMESPACE}/{SERVER}").json()["spec"]
    lookup = next(t for t in spec["tools"] if t["name"] == "lookup")
    assert "id_rsa" in lookup["pin"]["definition"]["description"]
    again = w.cli(["server", "tools", "approve", SERVER]).stdout
    assert "Nothing to approve" in again


def test_a_server_nobody_reviewed_is_said_so_and_an_owner_pins_it(world: PlatformWorld) -> None:
    w = world
    app_dir = w.data_dir.parent / "app"
    metadata = {"name": "notes", "run": {"command": f"{sys.executable} server.py", "workingDir": str(app_dir)},
                "tools": [{"name": "lookup", "sideEffect": "read"}, {"name": "greet", "sideEffect": "read"}]}
    deployed = w.http.post(f"{w.url}/api/v1/runtime/servers", json={"metadata": metadata},
                           headers={"Authorization": f"Bearer {w.user_token()}"})
    assert deployed.status_code == 201, deployed.text
    w.wait_ready("notes")

    def notes_condition() -> dict[str, Any]:
        status = w.api("GET", f"runtime/servers/{NAMESPACE}/notes").json().get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == "ToolsPinned"), {})

    # not checked yet (nothing reviewed), and it says so
    _wait_for(lambda: notes_condition().get("reason") == "NotReviewed", w.process, w.log_path)
    assert notes_condition()["status"] == "Unknown"
    assert "server tools approve notes" in notes_condition()["message"]
    approved = w.cli(["server", "tools", "approve", "notes"]).stdout
    assert "Approved greet, lookup on notes" in approved
    _wait_for(lambda: notes_condition().get("status") == "True", w.process, w.log_path)
    spec = w.api("GET", f"runtime/servers/{NAMESPACE}/notes").json()["spec"]
    assert all(t["pin"]["definition"]["name"] == t["name"] for t in spec["tools"])
