"""MCP authorization end to end against a pod's `mcp-gateway` sidecar under `up --runtime podman`.

The servers run as podman pods; `up` only passes their public route and their protected resource metadata
through to each pod's sidecar (runtime/sidecar_proxy.py), so everything a client meets after the URL is the
sidecar's: the 401 and its `WWW-Authenticate` challenge, the RFC 9728 metadata, the token and audience
checks, the policy (grants, revocations) pushed to it as a file, and the Origin check. The authorization
server, login and consent are the platform's (as in test_oauth.py, whose helpers this reuses).

The world is test_oauth.py's: Acme (alice, owner) deploys `payments` and `ledger` (the Python example's
image: echo, add at medium trust, reverse: write); Globex's bob holds grants for echo and add on both.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from oauth_support import ACME_NS, BOB, TOOLS, ConsentBrowser, Flow, MemoryStorage, mcp_list, sdk_flow
from platform_support import grant_doc
from podman_support import Served, call_tool, describe, ensure_images, make_people, ok, run_cli, timed, wait_for

from fixtures.kube_images import build_example_image

pytestmark = [pytest.mark.slow]

SERVERS = ("payments", "ledger")
PRM = "/.well-known/oauth-protected-resource"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    ensure_images()
    with Served(tmp_path_factory.mktemp("oauth-podman")) as served:
        yield served


@pytest.fixture(scope="module")
def world(up: Served) -> dict[str, Any]:
    """The people, and `payments` and `ledger` Ready in their pods with bob's grants; their published URLs."""
    people = make_people(up)
    started = time.monotonic()
    image, tag = build_example_image().rsplit(":", 1)  # cached in podman's storage by the examples' digest
    timed("example image", started)
    alice, globex = people["tokens"]["alice"], people["teams"]["globex"]["id"]
    started = time.monotonic()
    for server in SERVERS:
        ok(up, "POST", "/runtime/servers", alice, {"name": server, "scope": "tenant", "metadata": {
            "name": server, "image": image, "imageTag": tag, "tools": TOOLS}})
        ok(up, "POST", "/runtime/grants", alice, grant_doc(
            f"{server}-to-globex", ACME_NS, server, {"teamID": globex},
            toolRules=[{"name": "echo"}, {"name": "add"}], maxTrust="medium"))
    urls = {}
    for server in SERVERS:
        status = wait_for(lambda s=server: ok(up, "GET", f"/runtime/servers/{ACME_NS}/{s}", alice)["status"],
                          lambda s: s.get("phase") in ("Ready", "Error"), timeout=180)
        assert status["phase"] == "Ready", f"{status}\n{up.runtime.logs(ACME_NS, server, 30, 'mcp-gateway')}"
        urls[server] = status["url"]
    timed("two pods deploy to ready", started)
    return {**people, "urls": urls}


def _sidecar(up: Served, server: str) -> str:
    """The sidecar's own address (its published host port), bypassing `up`."""
    url = up.runtime.upstream_url(ACME_NS, server)
    assert url is not None
    return url


def _origin(url: str) -> str:
    parts = httpx.URL(url)
    return f"{parts.scheme}://{parts.host}:{parts.port}"


def test_discovery_is_served_by_the_sidecar(up: Served, world: dict[str, Any]) -> None:
    """What the SDK client will meet, by hand: the 401 names the metadata, at the published URL and at the
    sidecar itself, and the sidecar answers every RFC 9728 form of it."""
    url = world["urls"]["payments"]
    assert url == f"{up.url}/payments/mcp"
    metadata = f"{up.url}{PRM}/payments/mcp"
    sidecar = _sidecar(up, "payments")
    for target in (url, sidecar):
        anonymous = httpx.post(target, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30)
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.headers["www-authenticate"] == f'Bearer realm="mcp-runtime", resource_metadata="{metadata}"'
    side = _origin(sidecar)
    forms = [metadata, f"{metadata}/", f"{up.url}{PRM}/payments",  # through up, as a client discovers it
             f"{side}{PRM}/payments/mcp", f"{side}{PRM}/payments", f"{side}{PRM}"]  # the sidecar itself
    for form in forms:
        answer = httpx.get(form, timeout=30)
        assert answer.status_code == 200, form
        assert answer.json()["resource"] == url, form
        assert answer.json()["authorization_servers"] == [f"{up.url}/api/v1/oauth"], form
    # the sidecar of ledger names ledger: one sidecar per server, each its own resource
    assert httpx.get(f"{up.url}{PRM}/ledger/mcp", timeout=30).json()["resource"] == world["urls"]["ledger"]
    # and the sidecar is the only way in: its port alone is published, on loopback (not the app's 8088)
    for server in SERVERS:
        bindings = json.loads(subprocess.run(
            ["podman", "pod", "inspect", up.runtime.pod_name(ACME_NS, server) or "", "--format",
             "{{json .InfraConfig.PortBindings}}"], capture_output=True, text=True, check=True).stdout)
        host = [(b["HostIp"], int(b["HostPort"])) for bound in bindings.values() for b in bound]
        assert host == [("127.0.0.1", httpx.URL(_sidecar(up, server)).port)], bindings


def test_sdk_oauth_client_through_a_podman_sidecar(up: Served, world: dict[str, Any]) -> None:
    url = world["urls"]["payments"]
    browser = ConsentBrowser(up, BOB)
    storage = MemoryStorage()
    seen: list[tuple[str, str, int]] = []
    started = time.monotonic()
    try:
        outcome = anyio.run(sdk_flow, url, browser, storage, seen)
    except Exception as exc:  # say what the client saw
        raise AssertionError(f"{describe(exc)}\nrequests: {seen}") from exc
    finally:
        browser.close()
    timed("SDK OAuth flow (discovery, registration, consent, token, 4 MCP calls)", started)
    # the client found everything from the URL alone: 401 at the sidecar -> its metadata -> the platform's
    # authorization server metadata -> registration -> token -> the same URL, now authorized
    steps = [(method, str(httpx.URL(u).copy_with(query=None)), status) for method, u, status in seen]
    expected = [("POST", url, 401), ("GET", f"{up.url}{PRM}/payments/mcp", 200),
                ("GET", f"{up.url}/.well-known/oauth-authorization-server/api/v1/oauth", 200),
                ("POST", f"{up.url}/api/v1/oauth/register", 201), ("POST", f"{up.url}/api/v1/oauth/token", 200),
                ("POST", url, 200)]
    assert _in_order(expected, steps), steps
    # one authorization: the first call with the new token was not refused (the sidecar's policy caught up)
    assert [step[1] for step in steps].count(f"{up.url}/api/v1/oauth/token") == 1, steps
    assert [step for step in steps if step[0] == "POST" and step[1] == url and step[2] == 401] == [expected[0]]
    assert "Claude Test Agent" in browser.last_page and "payments" in browser.last_page
    assert outcome["tools"] == ["add", "echo"]  # tools/list filtered by bob's grant, at the sidecar
    assert outcome["echo"] and outcome["add"]
    assert outcome["denial"]["code"] == -32001 and outcome["denial"]["reason"] == "tool_not_granted", outcome["denial"]
    assert storage.tokens is not None
    # the sidecar decided those calls for bob's OAuth session (its analytics name the OAuth client)
    assert storage.client is not None
    client_id = storage.client.client_id
    alice = world["tokens"]["alice"]
    events = wait_for(lambda: ok(up, "GET", "/analytics/events?server=payments&limit=200", alice)["items"],
                      lambda items: {("echo", "allow"), ("reverse", "deny")} <= _decisions(items, client_id),
                      timeout=20)
    assert {("echo", "allow"), ("add", "allow"), ("reverse", "deny")} <= _decisions(events, client_id), events


def _decisions(items: list[dict[str, Any]], client_id: str | None) -> set[tuple[str, str]]:
    return {(e["tool"], e["decision"]) for e in items if e.get("client") == client_id and e["user"] == BOB[0]}


def _in_order(expected: list[tuple[str, str, int]], steps: list[tuple[str, str, int]]) -> bool:
    """Whether `expected` occurs in `steps` in this order (other requests in between allowed)."""
    remaining = iter(steps)
    return all(any(step == want for step in remaining) for want in expected)


def _token(up: Served, server: str) -> tuple[Flow, dict[str, Any]]:
    """Bob's tokens for `server` by the hand-driven flow (register, consent, code exchange)."""
    flow = Flow(up)
    assert flow.register().status_code == 201
    browser = ConsentBrowser(up, BOB)
    try:
        answer = flow.exchange(flow.code(browser, server=server))
    finally:
        browser.close()
    assert answer.status_code == 200, answer.text
    return flow, answer.json()


def _works(url: str, token: str) -> bool:
    """An MCP session with the token calls echo (the first call: no waiting for the sidecar's policy)."""
    return call_tool(url, token, "echo", {"text": "hi"}) == (True, "hi")


def test_a_token_for_another_server_is_refused_by_the_sidecar(up: Served, world: dict[str, Any]) -> None:
    _, tokens = _token(up, "ledger")
    assert _works(world["urls"]["ledger"], tokens["access_token"])
    for target in (world["urls"]["payments"], _sidecar(up, "payments")):
        refused = httpx.post(target, timeout=30, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                             headers={"Authorization": f"Bearer {tokens['access_token']}",
                                      "Accept": "application/json, text/event-stream"})
        assert refused.status_code == 401 and refused.json()["error"] == "wrong_audience", refused.text
        assert f'resource_metadata="{up.url}{PRM}/payments/mcp"' in refused.headers["www-authenticate"]


def test_owner_revokes_the_oauth_session_and_the_sidecar_refuses_it(up: Served, world: dict[str, Any]) -> None:
    flow, tokens = _token(up, "payments")
    token = tokens["access_token"]
    assert _works(world["urls"]["payments"], token)
    alice = world["tokens"]["alice"]
    sessions = ok(up, "GET", f"/runtime/sessions?namespace={ACME_NS}", alice)["items"]
    ours = [s for s in sessions if s["metadata"]["labels"].get("mcpruntime.org/oauth-client") == flow.client_id]
    assert len(ours) == 1, sessions
    name = ours[0]["metadata"]["name"]

    # a client keeps calling (every 10 ms) while the owner revokes from the CLI
    refused: list[tuple[float, float, httpx.Response]] = []
    poller = threading.Thread(target=_until_refused, args=(up, token, refused), daemon=True)
    poller.start()
    started, started_wall = time.monotonic(), time.time()
    revoked = run_cli(["access", "session", "revoke", name, "-n", ACME_NS], env=world["env"]["alice"])
    exited = time.monotonic()
    assert revoked.returncode == 0, revoked.stderr
    poller.join(timeout=10)
    assert refused, "the sidecar still accepted the revoked session's token 10 s after the revoke"
    at, wall, answer = refused[0]
    # when the platform rewrote the pod's policy file (the revocation, on its way to the sidecar)
    written = (up.runtime.root / ACME_NS / "payments" / "policy" / "policy.json").stat().st_mtime
    print(f"[podman oauth] `access session revoke` ran {exited - started:.2f}s (CLI process; the platform wrote the "
          f"policy file {written - started_wall:.2f}s in); the sidecar refused the token "
          f"{(wall - written) * 1000:.0f} ms after the platform wrote the policy file, "
          f"{(at - exited) * 1000:+.0f} ms from the CLI's exit")
    assert answer.status_code == 401 and answer.json()["error"] == "session_revoked", answer.text
    assert f'resource_metadata="{up.url}{PRM}/payments/mcp"' in answer.headers["www-authenticate"]
    # the platform rewrites the pod's policy file before it answers the revoke, and the sidecar reloads it
    # ~0.1 s later (inotify); 5 s from the CLI's exit leaves room for a loaded machine, never for a lost update
    assert at - exited < 5.0
    direct = httpx.post(_sidecar(up, "payments"), timeout=30, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                        headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"})
    assert direct.status_code == 401 and direct.json()["error"] == "session_revoked"
    assert flow.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"


def _until_refused(up: Served, token: str, refused: list[tuple[float, float, httpx.Response]]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        answer = mcp_list(up, "payments", token)
        if answer.status_code == 401:
            refused.append((time.monotonic(), time.time(), answer))
            return
        time.sleep(0.01)


def test_a_foreign_origin_is_refused_by_the_sidecar(up: Served, world: dict[str, Any]) -> None:
    _, tokens = _token(up, "payments")
    token = tokens["access_token"]
    assert _works(world["urls"]["payments"], token)
    foreign = mcp_list(up, "payments", token, Origin="https://evil.example")  # through the published URL
    assert foreign.status_code == 403 and foreign.json()["error"] == "origin_not_allowed", foreign.text
    direct = httpx.post(_sidecar(up, "payments"), timeout=30, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                        headers={"Authorization": f"Bearer {token}", "Origin": "https://evil.example",
                                 "Accept": "application/json, text/event-stream"})
    assert direct.status_code == 403 and direct.json()["error"] == "origin_not_allowed"
    # a page at the server's own origin (up's URL: the resource's) is accepted, the MCP session opens
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "page", "version": "1"}}}
    opened = httpx.post(world["urls"]["payments"], timeout=30, json=initialize, headers={
        "Authorization": f"Bearer {token}", "Origin": _origin(up.url), "Accept": "application/json, text/event-stream"})
    assert opened.status_code == 200 and opened.headers.get("mcp-session-id"), opened.text
