"""Approvals in `mcp-runtime up` (the embedded platform, in a thread): the data-utility example runs under
the process runtime with `reverse` declared destructive; the official Python SDK client calls it through
the platform's gateway with a session token from `runtime/adapter/sessions`.

With the elicitation capability, the person is asked in their client and accepts; without it, the call
waits as a pending approval that the owner approves through the API, and the platform pushes the
decision to the gateway in process (no polling).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from oauth_support import ACME_NS, ALICE, Up, run_up, wait_ready
from platform_support import ADMIN_EMAIL, ADMIN_PASSWORD, grant_doc

from fixtures.servers import DATA_UTILITY_DIR

TOOLS = [{"name": "echo", "sideEffect": "read"}, {"name": "reverse", "sideEffect": "destructive"}]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    data_dir: Path = tmp_path_factory.mktemp("approvals-up")
    with run_up(data_dir) as running:
        admin = (ADMIN_EMAIL, ADMIN_PASSWORD)
        running.api(admin, "POST", "/teams", {"slug": "acme", "name": "Acme Corp"})
        running.api(admin, "POST", "/teams/acme/users", {"username": ALICE[0], "password": ALICE[1], "role": "owner"})
        run = {"command": "python app.py", "workingDir": str(DATA_UTILITY_DIR)}
        running.api(ALICE, "POST", "/runtime/servers", {"metadata": {"name": "utility", "tools": TOOLS, "run": run}})
        running.api(ALICE, "POST", "/runtime/grants", grant_doc("utility-cursor", ACME_NS, "utility",
                                                                {"agentID": "cursor"}, maxTrust="high"))
        wait_ready(running, "utility")
        yield running


def _token(up: Up) -> str:
    issued = up.api(ALICE, "POST", "/runtime/adapter/sessions", {"server": "utility", "agent": "cursor",
                                                                  "agentID": "cursor"})
    return str(issued["token"])


async def _call(url: str, token: str, text: str, elicit: bool, asked: list[str]) -> Any:
    async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept")

    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write, elicitation_callback=on_elicit if elicit else None) as session:
        await session.initialize()
        try:
            result = await session.call_tool("reverse", {"text": text})
        except MCPError as exc:
            return exc.error.data["reason"]
        return result.content[0].text  # type: ignore[union-attr]


def test_the_caller_accepts_in_their_client(up: Up) -> None:
    asked: list[str] = []
    assert anyio.run(_call, f"{up.url}/utility/mcp", _token(up), "stressed", True, asked) == "desserts"
    assert len(asked) == 1 and "reverse" in asked[0] and "utility" in asked[0]


def test_the_owner_approves_out_of_band_and_the_gateway_hears_at_once(up: Up) -> None:
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(anyio.run, _call, f"{up.url}/utility/mcp", _token(up), "drawer", False, [])
        deadline = time.monotonic() + 30
        while not (rows := up.api(ALICE, "GET", "/runtime/approvals")["items"]):
            assert time.monotonic() < deadline and not call.done(), call.result() if call.done() else "no approval"
            time.sleep(0.05)
        [row] = rows
        assert row["tool"] == "reverse" and row["arguments"] == '{"text":"drawer"}' and row["approver"] == "caller"
        approved = time.monotonic()
        up.api(ALICE, "POST", f"/runtime/approvals/{row['id']}/approve")
        assert call.result(timeout=30) == "reward"
        assert time.monotonic() - approved < 3  # pushed in process, not polled
