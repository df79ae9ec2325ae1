"""Tool-definition pinning through a virtual server: a member's tool that drifted is judged by that
member's own pins, whether the call comes to the member's route or through `/v/<name>/mcp`.

The member is the drifting server (tests/fixtures/drifting_server.py) governed by the gateway; the virtual
server has it as its only member, prefixed `d_`. The official SDK client, on both endpoints, sees the
same thing: the changed tool gone from `tools/list`, its call a JSON-RPC error with the same reason and
message (plus `virtualServer` on the virtual one), and an approval (a new pin pushed) restoring it on both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from test_gateway_pinning import PinnedKit, call, drifting_server, listed, reviewed_pins, wait_for
from test_pinning_stdio import stdio_bridge

from fixtures.gateway import NAMESPACE, SERVER, serve_app, virtual_session
from mcp_runtime.gateway import Gateway, GatewayRoute, InProcessPolicySource
from mcp_runtime.gateway.pinning import DriftReport
from mcp_runtime.gateway.virtual.endpoint import VirtualRoute
from mcp_runtime.policy import PolicyDocument, compile_policy
from mcp_runtime.policy.pinning import PinState
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPVirtualServer
from mcp_runtime.resources.pinning import ToolPin

VIRTUAL = "toolbox"


class VirtualPinnedKit(PinnedKit):
    """The member's pinned metadata, with the virtual server's session compiled into its document (as the
    platform compiles it into every member's)."""

    def document(self) -> PolicyDocument:
        return compile_policy(self.server(), [MCPAccessGrant.model_validate(g) for g in self.grants],
                              [MCPAgentSession.model_validate(s) for s in self.sessions],
                              [virtual_session(virtual=VIRTUAL)])


@dataclass
class World:
    member_url: str
    virtual_url: str
    kit: VirtualPinnedKit
    source: InProcessPolicySource
    gateway: Gateway
    reports: list[DriftReport] = field(default_factory=list)

    @property
    def virtual_token(self) -> str:
        return self.kit.token("vs-cursor", "cursor", server=VIRTUAL)

    def virtual_list(self) -> list[str]:
        return listed(self.virtual_url, self.kit, self.virtual_token)

    def virtual_call(self, tool: str, arguments: dict[str, Any]) -> Any:
        return call(self.virtual_url, self.kit, tool, arguments, self.virtual_token)

    def approve(self, tool: str) -> None:
        """`server tools approve --tool T`: pin the definition the gateway saw, push the policy."""
        seen = next(r for r in reversed(self.reports) if tool in r.tools).tools[tool]["definition"]
        self.kit.pins[tool] = ToolPin.of(seen).to_wire()
        self.source.push(self.kit.document())


@contextlib.contextmanager
def virtual_world(member_url: str, pins: dict[str, dict[str, Any]]) -> Iterator[World]:
    """A gateway with the member's route (`/data-utility/mcp`) and the virtual server over it (`/v/toolbox/mcp`)."""
    kit = VirtualPinnedKit(pins)
    source = InProcessPolicySource()
    keys = kit.keyring.public_keys()
    gateway = Gateway([GatewayRoute(upstream=member_url, policy=source, keys=keys, server=SERVER,
                                    namespace=NAMESPACE)])
    spec = MCPVirtualServer.model_validate({"metadata": {"name": VIRTUAL, "namespace": NAMESPACE},
                                            "spec": {"members": [{"serverRef": {"name": SERVER}, "prefix": "d_"}]}})
    anyio.run(gateway.add_virtual, VirtualRoute(spec, keys))
    with serve_app(gateway) as base:
        world = World(f"{base}/{SERVER}/mcp", f"{base}/v/{VIRTUAL}/mcp", kit, source, gateway)
        gateway.drift_listener = world.reports.append
        yield world


@pytest.fixture(scope="module")
def pins() -> dict[str, dict[str, Any]]:
    return reviewed_pins()


def test_reviewed_member_tools_are_offered_through_the_virtual_server(pins: dict[str, dict[str, Any]]) -> None:
    with drifting_server("reviewed") as member, virtual_world(member.url, pins) as world:
        world.source.push(world.kit.document())
        assert world.virtual_list() == ["d_greet", "d_lookup"]
        assert world.virtual_call("d_lookup", {"customer_id": "c1"}) == "customer c1"


@pytest.mark.parametrize("variant", ["poisoned", "schema"])
def test_a_member_tool_that_changed_is_gone_and_denied_through_the_virtual_server_as_on_its_own_route(
        pins: dict[str, dict[str, Any]], variant: str) -> None:
    with drifting_server(variant) as member, virtual_world(member.url, pins) as world:
        world.source.push(world.kit.document())
        assert world.virtual_list() == ["d_greet"]
        through_virtual = world.virtual_call("d_lookup", {"customer_id": "c1"})
        direct = call(world.member_url, world.kit, "lookup", {"customer_id": "c1"})
        assert (through_virtual.code, through_virtual.data["reason"]) == (-32001, "tool_definition_changed")
        assert (direct.code, direct.data["reason"]) == (-32001, "tool_definition_changed")
        assert through_virtual.message == direct.message  # the member's own words: what changed, how to approve
        assert through_virtual.data == {**direct.data, "virtualServer": VIRTUAL}
        assert world.virtual_call("d_greet", {"name": "ann"}) == "hello ann"  # the unchanged tool is untouched
        wait_for(lambda: any(r.drift for r in world.reports))
        assert [(d.name, d.state) for d in world.reports[-1].drift] == [("lookup", PinState.changed)]

        world.approve("lookup")
        assert world.virtual_call("d_lookup", {"customer_id": "c2"}) == "customer c2"
        assert world.virtual_list() == ["d_greet", "d_lookup"]
        assert call(world.member_url, world.kit, "lookup", {"customer_id": "c3"}) == "customer c3"


def test_a_new_member_tool_is_hidden_and_denied_through_the_virtual_server_until_pinned(
        pins: dict[str, dict[str, Any]]) -> None:
    with drifting_server("reviewed", extra_tool=True) as member, virtual_world(member.url, pins) as world:
        world.source.push(world.kit.document())
        assert world.virtual_list() == ["d_greet", "d_lookup"]
        denied = world.virtual_call("d_export_all", {})  # called by the name the prefix would give it
        assert (denied.code, denied.data["reason"], denied.data["virtualServer"]) == \
            (-32001, "tool_not_pinned", VIRTUAL)
        wait_for(lambda: any(r.drift for r in world.reports))
        world.approve("export_all")
        assert world.virtual_list() == ["d_export_all", "d_greet", "d_lookup"]
        assert world.virtual_call("d_export_all", {}) == "everything"


def test_drift_seen_first_through_the_virtual_server_is_reported_at_once(
        pins: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    """A stdio member (a new process per session) changes after the gateway's own listing found it as
    reviewed; the first to see the change is a client of the virtual server: the drift is reported then
    (ToolsPinned, analytics), not only at the gateway's next listing."""
    variant = tmp_path / "variant"
    variant.write_text("reviewed")
    with stdio_bridge(variant) as member, virtual_world(member.url, pins) as world:
        world.gateway.probe_interval = 3600.0  # no second listing of the gateway's own during the test
        world.source.push(world.kit.document())
        wait_for(lambda: bool(world.reports) and "lookup" in world.reports[-1].tools, timeout=20)
        assert world.reports[-1].drift == []
        variant.write_text("poisoned")
        assert world.virtual_list() == ["d_greet"]
        wait_for(lambda: bool(world.reports[-1].drift), timeout=2)
        assert [(d.name, d.state) for d in world.reports[-1].drift] == [("lookup", PinState.changed)]
        assert "id_rsa" in world.reports[-1].tools["lookup"]["definition"]["description"]
        assert world.virtual_call("d_lookup", {"customer_id": "c1"}).data["reason"] == "tool_definition_changed"
        world.approve("lookup")
        assert world.virtual_call("d_lookup", {"customer_id": "c1"}) == "customer c1"

