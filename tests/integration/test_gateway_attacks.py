"""Bad input and attacks against the gateway, with httpx, in front of a real upstream that records
what reaches it: nothing a client forges, and never the client's bearer, gets through."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from fixtures.gateway import EchoUpstream, PolicyKit, serve_app, serve_gateway, standard_kit
from mcp_runtime.gateway import Gateway, GatewayRoute, InProcessPolicySource
from mcp_runtime.security import KeyRing

JSON = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
FORGED = {"X-MCP-Human-ID": "admin@acme.com", "X-MCP-Agent-ID": "root-agent", "X-MCP-Team-ID": "acme",
          "X-MCP-Agent-Session": "s-admin"}


def call(tool: str, msg_id: Any = 1, **arguments: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[EchoUpstream, str]]:
    upstream = EchoUpstream()
    with serve_app(upstream) as base:
        yield upstream, base + "/mcp"


@pytest.fixture(scope="module")
def kit() -> PolicyKit:
    return standard_kit()


@pytest.fixture(scope="module")
def gateway(echo: tuple[EchoUpstream, str], kit: PolicyKit) -> Iterator[str]:
    with serve_gateway(echo[1], kit) as (url, _gw):
        yield url


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {**JSON, "Authorization": f"Bearer {token}"}


def assert_unauthorized(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["error"] == reason
    assert body["message"]


def test_no_token_is_401_and_never_reaches_the_upstream(gateway: str, echo: Any, client: httpx.Client) -> None:
    upstream, _ = echo
    before = len(upstream.requests)
    assert_unauthorized(client.post(gateway, headers=JSON, json=call("echo", text="x")), "missing_identity")
    # X-MCP-Agent-Session is the alias for a token: a bare session name in it is not one.
    assert_unauthorized(client.post(gateway, headers={**JSON, **FORGED}, json=call("echo", text="x")),
                        "invalid_token")
    no_alias = {k: v for k, v in FORGED.items() if k != "X-MCP-Agent-Session"}
    assert_unauthorized(client.post(gateway, headers={**JSON, **no_alias}, json=call("echo", text="x")),
                        "missing_identity")
    assert len(upstream.requests) == before


def test_forged_identity_headers_are_replaced_and_bearer_not_forwarded(
        gateway: str, echo: Any, kit: PolicyKit, client: httpx.Client) -> None:
    upstream, _ = echo
    token = kit.token("s-cursor", "cursor")
    mcp_headers = {"Mcp-Session-Id": "sess-1", "Mcp-Protocol-Version": "2025-06-18"}
    response = client.post(gateway, headers={**bearer(token), **FORGED, **mcp_headers}, json=call("echo", text="hi"))
    assert response.status_code == 200
    assert response.json()["result"]["content"][0]["text"] == "called echo"
    seen = upstream.last_headers()
    assert seen["x-mcp-human-id"] == ["bob@globex.com"]
    assert seen["x-mcp-agent-id"] == ["cursor"]
    assert seen["x-mcp-team-id"] == ["globex-uuid"]
    assert seen["x-mcp-agent-session"] == ["s-cursor"]
    assert seen["mcp-session-id"] == ["sess-1"] and seen["mcp-protocol-version"] == ["2025-06-18"]
    assert response.headers["mcp-session-id"] == "echo-session"
    assert "authorization" not in seen
    assert token not in json.dumps(seen)
    assert seen["host"] == [httpx.URL(echo[1]).netloc.decode()]


def test_alias_header_authenticates_and_is_not_forwarded(gateway: str, echo: Any, kit: PolicyKit,
                                                         client: httpx.Client) -> None:
    upstream, _ = echo
    token = kit.token("s-cursor", "cursor")
    response = client.post(gateway, headers={**JSON, "X-MCP-Agent-Session": token}, json=call("add", a=1, b=2))
    assert response.status_code == 200
    assert upstream.last_headers()["x-mcp-agent-session"] == ["s-cursor"]


@pytest.mark.parametrize("case", ["other_key", "expired", "other_server", "garbage"])
def test_bad_tokens_are_401(case: str, gateway: str, kit: PolicyKit, client: httpx.Client) -> None:
    token, reason = {
        "other_key": (kit.token("s-cursor", "cursor", keyring=KeyRing.generate()), "unknown_key"),
        "expired": (kit.token("s-cursor", "cursor", ttl=timedelta(seconds=-1)), "token_expired"),
        "other_server": (kit.token("s-cursor", "cursor", server="payments"), "wrong_audience"),
        "garbage": ("not.a.token", "invalid_token"),
    }[case]
    assert_unauthorized(client.post(gateway, headers=bearer(token), json=call("echo", text="x")), reason)


def test_revoked_session_is_401(gateway: str, kit: PolicyKit, client: httpx.Client) -> None:
    response = client.post(gateway, headers=bearer(kit.token("s-revoked", "cursor")), json=call("echo", text="x"))
    assert_unauthorized(response, "session_revoked")
    assert "unrevoke" in response.json()["message"]


def test_malformed_json_and_non_json_rpc_are_400(gateway: str, kit: PolicyKit, client: httpx.Client) -> None:
    headers = bearer(kit.token("s-cursor", "cursor"))
    response = client.post(gateway, headers=headers, content=b'{"jsonrpc": "2.0", "id": 1, "method": ')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700
    for body in (b"[]", b'{"id": 1, "method": "tools/list"}', b"42", b'{"jsonrpc": "2.0", "id": 1}'):
        response = client.post(gateway, headers=headers, content=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == -32600


def test_wrong_content_type_is_415(gateway: str, kit: PolicyKit, client: httpx.Client) -> None:
    headers = {**bearer(kit.token("s-cursor", "cursor")), "Content-Type": "text/plain"}
    response = client.post(gateway, headers=headers, content=json.dumps(call("echo", text="x")))
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


def test_bodies_over_1_mib_are_413(gateway: str, kit: PolicyKit, echo: Any, client: httpx.Client) -> None:
    upstream, _ = echo
    before = len(upstream.requests)
    big = json.dumps(call("echo", text="x" * (2 * 1024 * 1024))).encode()
    headers = bearer(kit.token("s-cursor", "cursor"))
    response = client.post(gateway, headers=headers, content=big)
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    response = client.post(gateway, headers=headers, content=chunked())
    assert response.status_code == 413
    assert len(upstream.requests) == before


def test_batch_forwards_allowed_elements_and_merges_denials(gateway: str, kit: PolicyKit, echo: Any,
                                                            client: httpx.Client) -> None:
    upstream, _ = echo
    batch = [call("echo", 1, text="a"), call("reverse", 2, text="b"), call("add", "three", a=1, b=2),
             call("no_such_tool", 4), {"jsonrpc": "2.0", "method": "notifications/initialized"}]
    response = client.post(gateway, headers=bearer(kit.token("s-cursor", "cursor")), json=batch)
    assert response.status_code == 200
    forwarded = json.loads(upstream.requests[-1]["body"])
    assert [m.get("id") for m in forwarded] == [1, "three", None]
    answers = {a["id"]: a for a in response.json()}
    assert set(answers) == {1, 2, "three", 4}
    assert answers[1]["result"]["content"][0]["text"] == "called echo"
    assert answers["three"]["result"]["content"][0]["text"] == "called add"
    assert answers[2]["error"]["code"] == -32001
    assert answers[2]["error"]["data"]["reason"] == "tool_not_granted"
    assert answers[4]["error"]["data"]["reason"] == "tool_side_effect_unknown"


def test_batch_with_only_denied_elements_never_reaches_upstream(gateway: str, kit: PolicyKit, echo: Any,
                                                                client: httpx.Client) -> None:
    upstream, _ = echo
    before = len(upstream.requests)
    response = client.post(gateway, headers=bearer(kit.token("s-cursor", "cursor")),
                           json=[call("reverse", 1, text="b"), call("lower", 2, text="B")])
    assert response.status_code == 200
    assert [a["error"]["data"]["reason"] for a in response.json()] == ["tool_not_granted", "tool_not_granted"]
    assert len(upstream.requests) == before


def test_unknown_tool_is_a_json_rpc_error(gateway: str, kit: PolicyKit, client: httpx.Client) -> None:
    response = client.post(gateway, headers=bearer(kit.token("s-cursor", "cursor")), json=call("rm_rf", 9))
    assert response.status_code == 200
    error = response.json()["error"]
    assert response.json()["id"] == 9
    assert error["code"] == -32001
    assert error["data"]["reason"] == "tool_side_effect_unknown"
    assert error["data"]["tool"] == "rm_rf"
    assert "rm_rf" in error["message"]


def test_tools_list_json_is_filtered(gateway: str, kit: PolicyKit, client: httpx.Client) -> None:
    response = client.post(gateway, headers=bearer(kit.token("s-claude", "claude", trust="low")),
                           json={"jsonrpc": "2.0", "id": "l", "method": "tools/list"})
    assert [t["name"] for t in response.json()["result"]["tools"]] == ["echo"]
    assert response.headers["mcp-session-id"] == "echo-session"


def test_upstream_credential_replaces_the_client_bearer(echo: Any, kit: PolicyKit, client: httpx.Client) -> None:
    upstream, url = echo
    route = GatewayRoute(upstream=url, policy=InProcessPolicySource(kit.document()),
                         keys=kit.keyring.public_keys(), path="/mcp", upstream_token="upstream-secret")
    with serve_app(Gateway([route])) as base:
        token = kit.token("s-cursor", "cursor")
        assert client.post(base + "/mcp", headers=bearer(token), json=call("echo", text="x")).status_code == 200
    assert upstream.last_headers()["authorization"] == ["Bearer upstream-secret"]


def test_no_policy_yet_fails_closed(echo: Any, kit: PolicyKit, client: httpx.Client) -> None:
    upstream, url = echo
    before = len(upstream.requests)
    source = InProcessPolicySource()
    with serve_gateway(url, kit, source=source) as (gw_url, _gw):
        base = gw_url.removesuffix("/mcp")
        response = client.post(gw_url, headers=bearer(kit.token("s-cursor", "cursor")), json=call("echo"))
        assert response.status_code == 503
        assert response.json()["error"] == "policy_unavailable"
        assert client.get(base + "/readyz").status_code == 503
        assert client.get(base + "/healthz").status_code == 200
        source.push(kit.document().to_json())
        assert client.get(base + "/readyz").status_code == 200
        response = client.post(gw_url, headers=bearer(kit.token("s-cursor", "cursor")), json=call("echo"))
        assert response.status_code == 200
    assert len(upstream.requests) == before + 1


def test_metrics_count_requests_and_decisions(gateway: str, kit: PolicyKit, client: httpx.Client) -> None:
    client.post(gateway, headers=bearer(kit.token("s-cursor", "cursor")), json=call("reverse", 1))
    text = client.get(gateway.removesuffix("/mcp") + "/metrics").text
    assert 'mcp_gateway_decisions_total{decision="deny",reason="tool_not_granted",server="data-utility"}' in text
    assert 'mcp_gateway_requests_total{method="POST",server="data-utility",status="200"}' in text
    assert "mcp_gateway_request_duration_seconds_bucket" in text
    assert "mcp_gateway_inflight_requests" in text


def test_unknown_path_and_method(gateway: str, kit: PolicyKit, client: httpx.Client) -> None:
    base = gateway.removesuffix("/mcp")
    assert client.post(base + "/other/mcp", headers=JSON, json=call("echo")).status_code == 404
    assert client.put(gateway, headers=bearer(kit.token("s-cursor", "cursor")), json={}).status_code == 405
