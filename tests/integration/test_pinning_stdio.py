"""Tool-definition pinning for a stdio server, hosted as the runtime hosts one: `mcp-runtime bridge stdio`
starts one process of the server per MCP session, and the gateway governs the bridge like any server.

The server (tests/fixtures/drifting_server.py --stdio) reads its tool variant from a file when its process
starts, so a test changes the file and the next session's process (the gateway's own listing, a client's
session) has changed tools: what a stdio server updated in place (a new package version) looks like.
The official SDK client, through the gateway, notices what a user would: the tool is gone, its call is a
JSON-RPC error naming the reason, and approving what the gateway saw brings it back.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_gateway_pinning import DRIFTING, PinnedKit, call, listed, wait_for

from fixtures.gateway import serve_gateway
from fixtures.servers import REPO_ROOT, RunningServer, run_server_process
from mcp_runtime.gateway import InProcessPolicySource
from mcp_runtime.gateway.pinning import DriftReport
from mcp_runtime.policy.pinning import PinState
from mcp_runtime.resources.pinning import ToolPin
from mcp_runtime.runtime.discovery import discover_tools_sync


@contextlib.contextmanager
def stdio_bridge(variant_file: Path) -> Iterator[RunningServer]:
    """The drifting server over stdio behind the bridge, as the process runtime starts a `spec.stdio` server."""
    argv = [sys.executable, "-m", "mcp_runtime", "bridge", "stdio", "--host", "127.0.0.1", "--",
            sys.executable, str(DRIFTING), "--stdio"]
    env = {"PYTHONPATH": str(REPO_ROOT / "src"), "TOOL_VARIANT_FILE": str(variant_file)}
    with run_server_process(argv, cwd=REPO_ROOT, env=env) as server:
        yield server


@pytest.fixture(scope="module")
def bridged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    variant = tmp_path_factory.mktemp("stdio-pinning") / "variant"
    variant.write_text("reviewed")
    with stdio_bridge(variant) as server:
        yield server, variant


@pytest.fixture
def server(bridged: tuple[RunningServer, Path]) -> Iterator[tuple[RunningServer, Path]]:
    """The bridge, its variant file back to the reviewed tools afterwards."""
    yield bridged
    bridged[1].write_text("reviewed")


@pytest.fixture(scope="module")
def pins(bridged: tuple[RunningServer, Path]) -> dict[str, dict[str, Any]]:
    """What `server init --from-server` pins: the tools the reviewed stdio server lists through its bridge."""
    bridged[1].write_text("reviewed")
    return {t.name: ToolPin.of(t.definition).to_wire() for t in discover_tools_sync(bridged[0].url)}


def seen_definition(reports: list[DriftReport], tool: str) -> dict[str, Any]:
    """The definition the gateway saw and reported (what `server tools approve` pins)."""
    wait_for(lambda: any(tool in r.tools and any(d.name == tool for d in r.drift) for r in reports))
    report = next(r for r in reversed(reports) if any(d.name == tool for d in r.drift))
    return report.tools[tool]["definition"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def serve_gateway_for(upstream: RunningServer, kit: PinnedKit
                      ) -> Iterator[tuple[str, InProcessPolicySource, list[DriftReport]]]:
    reports: list[DriftReport] = []
    source = InProcessPolicySource()
    with serve_gateway(upstream.url, kit, source=source) as (url, gateway):
        gateway.drift_listener = reports.append
        source.push(kit.document())  # the policy with pins loads: the gateway lists the tools itself
        yield url, source, reports


@pytest.mark.parametrize("variant", ["poisoned", "schema"])
def test_a_stdio_tool_that_changed_disappears_is_denied_and_comes_back_when_approved(
        server: tuple[RunningServer, Path], pins: dict[str, dict[str, Any]], variant: str) -> None:
    bridge, variant_file = server
    variant_file.write_text(variant)  # the next process of the server has changed (a rug pull)
    kit = PinnedKit(pins)
    with serve_gateway_for(bridge, kit) as (url, source, reports):
        # found by the gateway's own listing (its own process of the server), before any client lists
        seen = seen_definition(reports, "lookup")
        assert [(d.name, d.state) for d in reports[-1].drift] == [("lookup", PinState.changed)]
        denied = call(url, kit, "lookup", {"customer_id": "c1"})
        assert (denied.code, denied.data["reason"]) == (-32001, "tool_definition_changed")
        assert "server tools approve" in denied.message
        assert listed(url, kit) == ["greet"]
        assert call(url, kit, "greet", {"name": "ann"}) == "hello ann"  # the unchanged tool is untouched
        if variant == "poisoned":
            assert "id_rsa" in seen["description"]
        else:
            assert "include_notes" in seen["inputSchema"]["properties"]

        kit.pins["lookup"] = ToolPin.of(seen).to_wire()  # the owner approves what the gateway saw
        started = time.perf_counter()
        source.push(kit.document())
        assert call(url, kit, "lookup", {"customer_id": "c2"}) == "customer c2"
        took = time.perf_counter() - started
        assert listed(url, kit) == ["greet", "lookup"]
        print(f"stdio: approve took effect (push to allowed call, a new stdio process included) in "
              f"{took * 1000:.1f} ms")


def test_a_new_unpinned_stdio_tool_is_hidden_and_denied_until_approved(
        server: tuple[RunningServer, Path], pins: dict[str, dict[str, Any]]) -> None:
    bridge, variant_file = server
    variant_file.write_text("reviewed extra")  # the next process also offers export_all, never reviewed
    kit = PinnedKit(pins)
    with serve_gateway_for(bridge, kit) as (url, source, reports):
        seen = seen_definition(reports, "export_all")
        assert [(d.name, d.state) for d in reports[-1].drift] == [("export_all", PinState.not_pinned)]
        assert listed(url, kit) == ["greet", "lookup"]
        denied = call(url, kit, "export_all", {})
        assert (denied.code, denied.data["reason"]) == (-32001, "tool_not_pinned")

        kit.pins["export_all"] = ToolPin.of(seen).to_wire()  # `server tools approve --tool export_all`
        source.push(kit.document())
        assert listed(url, kit) == ["export_all", "greet", "lookup"]
        assert call(url, kit, "export_all", {}) == "everything"
