"""A virtual server in the gateway, end to end with the official MCP Python SDK client.

Two real member servers: the data-utility example (team-data) and a second SDK server owned by another
team (team-tools) whose grant shares it with the caller's team. Every member call is judged by that
member's own compiled policy document; the virtual server's session is compiled into both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from fixtures import virtual_member
from fixtures.gateway import CALLER_TEAM, NAMESPACE, PolicyKit, serve_app, standard_kit, virtual_session
from fixtures.servers import run_data_utility_server, serve_asgi
from mcp_runtime.gateway import Gateway, GatewayRoute, InProcessPolicySource
from mcp_runtime.gateway.virtual.endpoint import VirtualRoute
from mcp_runtime.policy import PolicyDocument, compile_policy
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer, MCPVirtualServer

HELPER_NS = "team-tools"
VIRTUAL = "toolbox"


def helper_document(sessions: list[MCPAgentSession], name: str = "helper") -> PolicyDocument:
    """Another team's server, shared with the caller's team by a grant (wipe is denied to everyone)."""
    server = MCPServer.model_validate({
        "metadata": {"name": name, "namespace": HELPER_NS},
        "spec": {"image": "team-tools/helper", "teamID": "tools-uuid", "tools": [
            {"name": "echo", "sideEffect": "read"}, {"name": "greet", "sideEffect": "read"},
            {"name": "slow", "sideEffect": "read"}, {"name": "wipe", "sideEffect": "destructive"},
            {"name": "ask_model", "sideEffect": "read"}, {"name": "change", "sideEffect": "read"}]}})
    grant = MCPAccessGrant.model_validate({
        "metadata": {"name": "share-with-globex", "namespace": HELPER_NS},
        "spec": {"serverRef": {"name": name}, "subject": {"teamID": CALLER_TEAM}, "maxTrust": "high",
                 "toolRules": [{"name": "echo"}, {"name": "greet"}, {"name": "slow"}, {"name": "ask_model"},
                               {"name": "change"},
                               {"name": "wipe", "decision": "deny"}]}})
    return compile_policy(server, [grant], [], sessions)


def data_document(kit: PolicyKit, sessions: list[MCPAgentSession]) -> PolicyDocument:
    return compile_policy(kit.server(), [MCPAccessGrant.model_validate(g) for g in kit.grants], [], sessions)


@dataclass
class World:
    url: str
    kit: PolicyKit
    gateway: Gateway
    data_source: InProcessPolicySource
    helper_source: InProcessPolicySource

    def token(self, session: str = "vs-cursor") -> str:
        return self.kit.token(session, "cursor", server=VIRTUAL, namespace=NAMESPACE)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    kit = standard_kit()
    sessions = [virtual_session(), virtual_session("vs-revoked", revoked=True)]
    data_source = InProcessPolicySource(data_document(kit, sessions))
    helper_source = InProcessPolicySource(helper_document(sessions))
    spec = MCPVirtualServer.model_validate({
        "metadata": {"name": VIRTUAL, "namespace": NAMESPACE},
        "spec": {"members": [
            {"serverRef": {"name": "data-utility"}, "tools": {"exclude": ["upper"]}},
            {"serverRef": {"name": "helper", "namespace": HELPER_NS}, "prefix": "h_"}]}})
    with run_data_utility_server() as data, serve_asgi(virtual_member.build_member()) as helper_base:
        keys = kit.keyring.public_keys()
        gateway = Gateway([
            GatewayRoute(upstream=data.url, policy=data_source, keys=keys, server="data-utility", namespace=NAMESPACE),
            GatewayRoute(upstream=helper_base + "/mcp", policy=helper_source, keys=keys, server="helper",
                         namespace=HELPER_NS)])

        async def mount() -> None:
            await gateway.add_virtual(VirtualRoute(spec, keys))

        anyio.run(mount)
        with serve_app(gateway) as base:
            yield World(f"{base}/v/{VIRTUAL}/mcp", kit, gateway, data_source, helper_source)


async def _session(url: str, token: str, body: Any, **callbacks: Any) -> Any:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write, **callbacks) as session:
        await session.initialize()
        return await body(session)


def run(world: World, body: Any, token: str | None = None, **callbacks: Any) -> Any:
    return anyio.run(lambda: _session(world.url, token or world.token(), body, **callbacks))


async def names(session: ClientSession) -> list[str]:
    return sorted(t.name for t in (await session.list_tools()).tools)


def test_tools_list_is_the_prefixed_filtered_union_of_what_each_member_allows(world: World) -> None:
    assert run(world, names) == ["data-utility_add", "data-utility_echo", "data-utility_multiply",
                                 "data-utility_ping", "h_ask_model", "h_change", "h_echo", "h_greet", "h_slow"]


def test_calls_are_routed_to_their_member_with_the_name_mapped_back(world: World) -> None:
    async def body(session: ClientSession) -> list[str]:
        add = await session.call_tool("data-utility_add", {"a": 2, "b": 3})
        echo = await session.call_tool("h_echo", {"text": "x"})
        same = await session.call_tool("data-utility_echo", {"text": "x"})
        return [c.content[0].text for c in (add, echo, same)]  # type: ignore[union-attr]

    assert run(world, body) == ["5", "helper:x", "x"]


def test_a_tool_the_member_denies_is_neither_listed_nor_callable(world: World) -> None:
    async def body(session: ClientSession) -> list[Any]:
        errors = []
        for name, args in (("h_wipe", {}), ("data-utility_reverse", {"text": "a"}), ("data-utility_upper",
                                                                                     {"text": "a"})):
            with pytest.raises(MCPError) as denied:
                await session.call_tool(name, args)
            errors.append(denied.value.error)
        return errors

    wipe, reverse, upper = run(world, body)
    assert (wipe.code, wipe.data["reason"], wipe.data["server"]) == (-32001, "tool_denied", "helper")
    assert (reverse.code, reverse.data["reason"]) == (-32001, "tool_not_granted")
    assert upper.code == -32602 and "Unknown tool" in upper.message  # excluded by the virtual server


def test_a_revoked_virtual_session_is_refused_by_every_member(world: World) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    headers = {"Accept": "application/json, text/event-stream"}
    revoked = httpx.post(world.url, json=initialize, headers={**headers,
                         "Authorization": f"Bearer {world.token('vs-revoked')}"})
    assert revoked.status_code == 401 and revoked.json()["error"] == "session_revoked"
    assert "invalid_token" in revoked.headers["www-authenticate"]
    anonymous = httpx.post(world.url, json=initialize, headers=headers)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "missing_identity"
    other = world.kit.token("vs-cursor", "cursor", server="data-utility", namespace=NAMESPACE)
    wrong_audience = httpx.post(world.url, json=initialize, headers={**headers, "Authorization": f"Bearer {other}"})
    assert wrong_audience.status_code == 401


def test_progress_of_a_member_reaches_the_client(world: World) -> None:
    seen: list[float] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(value)

    async def body(session: ClientSession) -> str:
        result = await session.call_tool("data-utility_ping", {"count": 3}, progress_callback=progress)
        return result.content[0].text  # type: ignore[union-attr]

    assert run(world, body) == "pong"
    assert seen == [1, 2, 3]


def test_elicitation_from_a_member_reaches_the_client_and_the_answer_goes_back(world: World) -> None:
    asked: list[str] = []

    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"name": "ada"})

    async def body(session: ClientSession) -> str:
        result = await session.call_tool("h_greet", {})
        return result.content[0].text  # type: ignore[union-attr]

    assert run(world, body, elicitation_callback=elicit) == "hello ada"
    assert asked == ["What is your name?"]


def test_cancelling_a_slow_call_cancels_it_on_the_member_and_the_session_goes_on(world: World) -> None:
    async def body(session: ClientSession) -> str:
        with pytest.raises(Exception):  # noqa: B017 - the SDK's timeout error
            await session.call_tool("h_slow", {"label": "c1", "seconds": 2.5}, read_timeout_seconds=0.5)
        after = await session.call_tool("data-utility_add", {"a": 1, "b": 1})
        return after.content[0].text  # type: ignore[union-attr]

    assert run(world, body) == "2"
    assert "c1" in virtual_member.STARTED
    time.sleep(2.6)
    assert "c1" not in virtual_member.FINISHED


def test_concurrent_calls_to_two_members_with_the_same_client_ids_do_not_collide(world: World) -> None:
    async def body(session: ClientSession) -> list[str]:
        results: dict[int, str] = {}

        async def call(index: int, name: str, args: dict[str, Any]) -> None:
            answer = await session.call_tool(name, args)
            results[index] = answer.content[0].text  # type: ignore[union-attr]

        async with anyio.create_task_group() as group:
            for index in range(10):
                name = "h_echo" if index % 2 else "data-utility_echo"
                group.start_soon(call, index, name, {"text": str(index)})
        return [results[i] for i in range(10)]

    assert run(world, body) == [f"helper:{i}" if i % 2 else str(i) for i in range(10)]


def test_resources_and_prompts_are_aggregated_with_a_reversible_mapping(world: World) -> None:
    async def body(session: ClientSession) -> dict[str, Any]:
        resources = (await session.list_resources()).resources
        helper = next(r for r in resources if "team-tools/helper" in str(r.uri))
        read = await session.read_resource(helper.uri)
        prompts = sorted(p.name for p in (await session.list_prompts()).prompts)
        got = await session.get_prompt("h_review", {"topic": "the diff"})
        with pytest.raises(MCPError) as unknown:
            await session.read_resource("note://readme")
        return {"uri": str(helper.uri), "read": read.contents[0], "prompts": prompts,
                "got": got.messages[0].content.text, "unknown": unknown.value.error.code}  # type: ignore[union-attr]

    seen = run(world, body)
    assert seen["uri"] == "mcp-virtual://team-tools/helper/note%3A%2F%2Freadme"
    assert seen["read"].text == "helper readme" and str(seen["read"].uri) == seen["uri"]
    assert "h_review" in seen["prompts"] and seen["got"] == "Review the diff carefully."
    assert seen["unknown"] == -32602


def test_a_client_that_goes_away_mid_call_cancels_the_call_on_the_member(world: World) -> None:
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {world.token()}"}
    init = httpx.post(world.url, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    session = {**headers, "mcp-session-id": init.headers["mcp-session-id"]}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "h_slow", "arguments": {"label": "gone", "seconds": 2.0}}}
    with httpx.Client(timeout=10) as client, client.stream("POST", world.url, json=call, headers=session) as answer:
        assert answer.status_code == 200
        deadline = time.monotonic() + 5
        while "gone" not in virtual_member.STARTED and time.monotonic() < deadline:
            time.sleep(0.02)
    assert "gone" in virtual_member.STARTED
    time.sleep(2.3)
    assert "gone" not in virtual_member.FINISHED


def test_sampling_from_a_member_and_its_list_changed_reach_the_client(world: World) -> None:
    questions: list[str] = []
    changes: list[str] = []

    async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        questions.append(params.messages[0].content.text)  # type: ignore[union-attr]
        return types.CreateMessageResult(role="assistant", model="test-model",
                                         content=types.TextContent(type="text", text="forty-two"))

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changes.append("tools")

    async def body(session: ClientSession) -> str:
        answer = await session.call_tool("h_ask_model", {"question": "meaning?"})
        await session.call_tool("h_change", {})
        with anyio.fail_after(5):
            while not changes:
                await anyio.sleep(0.05)
        return answer.content[0].text  # type: ignore[union-attr]

    assert run(world, body, sampling_callback=sample, message_handler=on_message) == "model said: forty-two"
    assert questions == ["meaning?"] and changes


def test_bad_requests_are_refused_with_the_cause_and_counted(world: World) -> None:
    auth = {"Authorization": f"Bearer {world.token()}", "Accept": "application/json, text/event-stream"}
    not_json = httpx.post(world.url, content=b"hello", headers={**auth, "Content-Type": "text/plain"})
    assert not_json.status_code == 415 and not_json.json()["error"] == "unsupported_media_type"
    unknown = httpx.post(world.url, headers={**auth, "mcp-session-id": "nope"},
                         json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert unknown.status_code == 404 and unknown.json()["error"] == "session_not_found"
    batch = httpx.post(world.url, headers=auth, json=[{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
    assert batch.status_code == 400
    metrics = httpx.get(world.url.split("/v/")[0] + "/metrics").text
    assert f'server="v/{VIRTUAL}"' in metrics and 'status="415"' in metrics
