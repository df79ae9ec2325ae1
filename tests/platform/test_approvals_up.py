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

import anyio
import pytest
from mcp import types
from oauth_support import ACME_NS, ALICE, Up, run_up, wait_ready
from platform_support import ADMIN_EMAIL, ADMIN_PASSWORD, grant_doc

from fixtures.approvals import sdk_call
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


def test_the_caller_accepts_in_their_client(up: Up) -> None:
    asked: list[types.ElicitRequestParams] = []
    assert anyio.run(sdk_call, f"{up.url}/utility/mcp", _token(up), "reverse", {"text": "stressed"}, "accept",
                     asked) == "desserts"
    assert len(asked) == 1 and "reverse" in asked[0].message and "utility" in asked[0].message


def test_the_owner_approves_out_of_band_and_the_gateway_hears_at_once(up: Up) -> None:
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(anyio.run, sdk_call, f"{up.url}/utility/mcp", _token(up), "reverse", {"text": "drawer"},
                           None, [])
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
