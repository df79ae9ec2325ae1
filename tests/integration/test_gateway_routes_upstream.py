"""One gateway routing many servers by path prefix, and the upstream connection handling."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from fixtures.gateway import NAMESPACE, EchoUpstream, PolicyKit, serve_app, standard_kit
from fixtures.servers import free_port
from mcp_runtime.gateway import Gateway, GatewayRoute, InProcessPolicySource
from mcp_runtime.gateway.server import uvicorn_config
from mcp_runtime.gateway.upstream import UpstreamError, UpstreamPool
from mcp_runtime.policy import compile_policy
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer

JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def call(tool: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}}


def other_server_policy(kit: PolicyKit) -> Any:
    """A second server, `payments`, where cursor may call only `charge`."""
    server = MCPServer.model_validate({
        "metadata": {"name": "payments", "namespace": NAMESPACE},
        "spec": {"image": "acme/payments", "tools": [{"name": "charge", "sideEffect": "write"},
                                                     {"name": "echo", "sideEffect": "read"}]},
    })
    grant = MCPAccessGrant.model_validate({
        "metadata": {"name": "g", "namespace": NAMESPACE},
        "spec": {"serverRef": {"name": "payments"}, "subject": {"agentID": "cursor"}, "maxTrust": "high",
                 "toolRules": [{"name": "charge"}]},
    })
    session = MCPAgentSession.model_validate({
        "metadata": {"name": "s-pay", "namespace": NAMESPACE},
        "spec": {"serverRef": {"name": "payments"}, "subject": {"agentID": "cursor"}, "consentedTrust": "high"},
    })
    return compile_policy(server, [grant], [session])


def test_one_gateway_routes_many_servers_by_prefix() -> None:
    kit = standard_kit()
    first, second = EchoUpstream(), EchoUpstream()
    with serve_app(first) as first_url, serve_app(second) as second_url:
        gateway = Gateway([
            GatewayRoute(upstream=first_url + "/mcp", policy=InProcessPolicySource(kit.document()),
                         keys=kit.keyring.public_keys(), server="data-utility"),
            GatewayRoute(upstream=second_url + "/mcp", policy=InProcessPolicySource(other_server_policy(kit)),
                         keys=kit.keyring.public_keys(), server="payments"),
        ])
        with serve_app(gateway) as base, httpx.Client(timeout=5) as client:
            data_token = kit.token("s-cursor", "cursor")
            pay_token = kit.token("s-pay", "cursor", server="payments")

            def post(path: str, token: str, tool: str) -> httpx.Response:
                return client.post(base + path, headers={**JSON, "Authorization": f"Bearer {token}"},
                                   json=call(tool))

            assert "result" in post("/data-utility/mcp", data_token, "echo").json()
            assert "result" in post("/payments/mcp", pay_token, "charge").json()
            assert post("/payments/mcp", pay_token, "echo").json()["error"]["data"]["reason"] == "tool_not_granted"
            # a token is bound to its server: the other route refuses it
            assert post("/payments/mcp", data_token, "charge").json()["error"] == "wrong_audience"
            assert len(first.requests) == 1 and len(second.requests) == 1

            status = client.get(base + "/config/status").json()
            assert {r["path"] for r in status["routes"]} == {"/data-utility/mcp", "/payments/mcp"}
            assert client.get(base + "/readyz").status_code == 200


@pytest.fixture
def raw_server() -> Iterator[tuple[int, list[bytes]]]:
    """A raw TCP server whose answers the test scripts: one answer per accepted connection."""
    answers: list[bytes] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                if answers:
                    conn.sendall(answers.pop(0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1], answers
    stop.set()
    thread.join()
    sock.close()


def test_upstream_client_reads_chunked_and_close_delimited_bodies(raw_server: tuple[int, list[bytes]]) -> None:
    port, answers = raw_server
    answers += [
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{\"a\": 1}",
        b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
    ]

    async def scenario() -> list[Any]:
        pool = UpstreamPool(f"http://127.0.0.1:{port}/mcp")
        out: list[Any] = []
        try:
            response = await pool.request(b"POST", b"/mcp", [], b"{}")
            out.append([chunk async for chunk in response.chunks()])
            response = await pool.request(b"POST", b"/mcp", [], b"{}")
            out.append(json.loads(await response.read()))
            response = await pool.request(b"POST", b"/mcp", [], b"{}")
            with pytest.raises(UpstreamError):
                await response.read()
        finally:
            await pool.aclose()
        return out

    chunks, body = asyncio.run(scenario())
    assert b"".join(chunks) == b"hello world"
    assert body == {"a": 1}


def test_upstream_down_is_a_clear_502() -> None:
    kit = standard_kit()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]  # bound, never listening: connections are refused
        gateway = Gateway([GatewayRoute(upstream=f"http://127.0.0.1:{dead}/mcp",
                                        policy=InProcessPolicySource(kit.document()),
                                        keys=kit.keyring.public_keys(), path="/mcp")])
        with serve_app(gateway) as base:
            response = httpx.post(base + "/mcp", json=call("echo"),
                                  headers={**JSON, "Authorization": f"Bearer {kit.token('s-cursor', 'cursor')}"})
    assert response.status_code == 502
    answer = response.json()  # a JSON-RPC error for the request, with its id, that every MCP client reads
    assert answer["id"] == 1 and answer["error"]["code"] == -32002
    assert answer["error"]["data"]["reason"] == "upstream_unavailable"
    assert "cannot connect" in answer["error"]["message"]


def test_upstream_that_never_answers_times_out() -> None:
    with socket.socket() as silent:  # listens, never accepts: the request sits in the kernel's queue
        silent.bind(("127.0.0.1", 0))
        silent.listen()

        async def scenario() -> str:
            pool = UpstreamPool(f"http://127.0.0.1:{silent.getsockname()[1]}/mcp", head_timeout=0.2)
            try:
                with pytest.raises(UpstreamError) as exc:
                    await pool.request(b"POST", b"/mcp", [], b"{}")
                return str(exc.value)
            finally:
                await pool.aclose()

        assert "no answer within 0.2 s" in asyncio.run(scenario())


def test_routes_mount_and_unmount_while_running() -> None:
    """The process runtime's pattern: one running gateway, servers (re)deployed with the same source."""
    kit = standard_kit()
    echo = EchoUpstream()
    source = InProcessPolicySource(kit.document())

    async def scenario(upstream: str) -> list[int]:
        gateway = Gateway()
        server = uvicorn.Server(uvicorn_config(gateway, "127.0.0.1", free_port()))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        base = f"http://127.0.0.1:{server.config.port}"
        headers = {**JSON, "Authorization": f"Bearer {kit.token('s-cursor', 'cursor')}"}
        codes = []
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                for _ in range(2):  # deploy, undeploy, deploy again
                    await gateway.add_route(GatewayRoute(upstream=upstream, policy=source,
                                                         keys=kit.keyring.public_keys(), server="data-utility"))
                    codes.append((await client.post(base + "/data-utility/mcp", headers=headers,
                                                     json=call("echo"))).status_code)
                    await gateway.remove_route("/data-utility/mcp")
                    codes.append((await client.post(base + "/data-utility/mcp", headers=headers,
                                                     json=call("echo"))).status_code)
        finally:
            server.should_exit = True
            await serving
        return codes

    with serve_app(echo) as upstream_base:
        assert asyncio.run(scenario(upstream_base + "/mcp")) == [200, 404, 200, 404]
    assert len(source._listeners) == 0  # unmounted routes leave nothing behind on a reused source
