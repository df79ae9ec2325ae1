"""Partial availability of a virtual server: a member that goes down drops out of `tools/list` (with a
`list_changed`), calls to it get an error naming it, the other member keeps working; when it comes back
(a new process: its old session is gone) it is initialized again and its tools return. A backend
session the member forgot (404) is re-initialized transparently."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from test_virtual_gateway import HELPER_NS, VIRTUAL, helper_document, virtual_session

from fixtures import virtual_member
from fixtures.gateway import NAMESPACE, serve_app, standard_kit
from fixtures.servers import free_port, serve_asgi
from mcp_runtime.gateway import Gateway, GatewayRoute, InProcessPolicySource
from mcp_runtime.gateway.virtual.endpoint import VirtualRoute
from mcp_runtime.resources import MCPVirtualServer


@contextlib.contextmanager
def serve_on(port: int) -> Iterator[None]:
    """A fresh helper member on a fixed port (so it can stop and come back at the same address)."""
    server = uvicorn.Server(uvicorn.Config(virtual_member.build_member(), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the member did not start"
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_member_down_and_back_and_a_forgotten_session(tmp_path: Any) -> None:
    kit = standard_kit()
    sessions = [virtual_session()]
    port = free_port()
    flappy = serve_on(port)
    flappy.__enter__()
    with serve_asgi(virtual_member.build_member()) as steady_base:
        keys = kit.keyring.public_keys()
        gateway = Gateway([
            GatewayRoute(upstream=f"http://127.0.0.1:{port}/mcp", server="flappy", namespace=HELPER_NS, keys=keys,
                         policy=InProcessPolicySource(helper_document(sessions, "flappy"))),
            GatewayRoute(upstream=steady_base + "/mcp", server="steady", namespace=HELPER_NS, keys=keys,
                         policy=InProcessPolicySource(helper_document(sessions, "steady")))])
        spec = MCPVirtualServer.model_validate({
            "metadata": {"name": VIRTUAL, "namespace": NAMESPACE},
            "spec": {"members": [{"serverRef": {"name": "flappy", "namespace": HELPER_NS},
                                  "tools": {"include": ["echo"]}},
                                 {"serverRef": {"name": "steady", "namespace": HELPER_NS},
                                  "tools": {"include": ["echo"]}}]}})
        anyio.run(lambda: gateway.add_virtual(VirtualRoute(spec, keys)))
        with serve_app(gateway) as base:
            url = f"{base}/v/{VIRTUAL}/mcp"
            token = kit.token("vs-cursor", "cursor", server=VIRTUAL, namespace=NAMESPACE)
            anyio.run(_scenario, url, token, gateway, flappy, port)


async def _scenario(url: str, token: str, gateway: Gateway, flappy: Any, port: int) -> None:
    changed = anyio.Event()
    changes: list[float] = []

    async def on_message(message: Any) -> None:
        nonlocal changed
        if isinstance(message, types.ToolListChangedNotification):
            changes.append(time.monotonic())
            changed.set()

    async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http, \
            streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write, message_handler=on_message) as session:
        await session.initialize()
        names = sorted(t.name for t in (await session.list_tools()).tools)
        assert names == ["flappy_echo", "steady_echo"]

        # a backend session the member forgot (expired, or a restart): re-initialized, the call goes through
        endpoint = gateway.virtual[f"/v/{VIRTUAL}/mcp"]
        (virtual,) = endpoint.sessions.values()
        link = virtual.links[(HELPER_NS, "steady")]
        forgotten = link.session_id
        async with httpx.AsyncClient() as raw:
            await raw.delete(str(link.upstream.url), headers={"mcp-session-id": forgotten.decode()})
        assert (await session.call_tool("steady_echo", {"text": "a"})).content[0].text == "helper:a"
        assert virtual.links[(HELPER_NS, "steady")].session_id != forgotten

        # the member goes down: named error, the other member goes on, its tools leave the list
        await anyio.to_thread.run_sync(flappy.__exit__, None, None, None)
        with pytest.raises(MCPError) as down:
            await session.call_tool("flappy_echo", {"text": "b"})
        assert down.value.error.code == -32002 and down.value.error.data["server"] == "flappy"
        assert "flappy" in down.value.error.message and down.value.error.data["reason"] == "member_unavailable"
        with anyio.fail_after(10):
            await changed.wait()
        assert (await session.call_tool("steady_echo", {"text": "c"})).content[0].text == "helper:c"
        assert sorted(t.name for t in (await session.list_tools()).tools) == ["steady_echo"]
        with pytest.raises(MCPError) as still_down:
            await session.call_tool("flappy_echo", {"text": "d"})
        assert still_down.value.error.data["reason"] == "member_unavailable"

        # it comes back (a new process at the same address): list_changed, its tools return
        changed = anyio.Event()
        back = serve_on(port)
        await anyio.to_thread.run_sync(back.__enter__)
        try:
            with anyio.fail_after(15):
                await changed.wait()
            assert sorted(t.name for t in (await session.list_tools()).tools) == ["flappy_echo", "steady_echo"]
            assert (await session.call_tool("flappy_echo", {"text": "e"})).content[0].text == "helper:e"
        finally:
            await anyio.to_thread.run_sync(back.__exit__, None, None, None)
