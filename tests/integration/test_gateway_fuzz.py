"""The gateway's HTTP and JSON-RPC input fuzzed with hypothesis: no 5xx, no crash, no hang, ids kept.

A real gateway (uvloop + httptools, as in production) in front of the real data-utility MCP server
(the official Python SDK). Hypothesis generates whole requests: the HTTP method, the headers a client
controls (Authorization with a valid, revoked, foreign-audience or garbage token; Content-Type; Accept;
Mcp-Session-Id; forged identity headers) and the body: JSON-RPC messages and batches with ids,
methods, tool names and params of every JSON type, plain JSON values, raw bytes, deeply nested arrays,
truncated documents. Raw-socket cases send broken HTTP framing (a Content-Length that lies, garbage
chunk sizes, oversized headers) that no well-behaved client library would.

What is checked, for every case: the answer arrives within `REQUEST_TIMEOUT`; no 5xx except a 503
while no policy is loaded (never here) and 502/504 when the upstream fails (it is up: none expected);
a JSON-RPC error the gateway answers itself (a denial, a failed upstream) to a single request carries that
request's id (the upstream's own answers are relayed as they are). After the run the gateway is
healthy and has nothing in flight. Bounded in time (`MCP_RUNTIME_GATEWAY_FUZZ_SECONDS`, default 45);
the number of cases is printed. Each defect found is fixed and kept in tests/unit/test_gateway_parsing.py
or below as a named regression case.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.gateway import SERVER, PolicyKit, serve_gateway, standard_kit
from fixtures.servers import run_data_utility_server
from mcp_runtime.wire.jsonrpc import DENIED, UPSTREAM_FAILED

pytestmark = pytest.mark.slow

FUZZ_SECONDS = float(os.environ.get("MCP_RUNTIME_GATEWAY_FUZZ_SECONDS", "45"))
REQUEST_TIMEOUT = 15.0
TOOL_NAMES = ["echo", "add", "multiply", "upper", "lower", "ping", "reverse"]
METHODS = ["tools/call", "tools/list", "initialize", "notifications/initialized", "ping", "resources/list",
           "prompts/list", "notifications/cancelled", "completion/complete", "logging/setLevel"]

json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
ids = (st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=24) | st.none()
       | st.floats(allow_nan=False, allow_infinity=False) | st.booleans() | json_values)
params = st.one_of(
    st.fixed_dictionaries({"name": st.sampled_from(TOOL_NAMES) | json_scalars},
                          optional={"arguments": json_values, "_meta": json_values}),
    json_values)


def mostly(draw: st.DrawFn, likely: st.SearchStrategy[Any], other: st.SearchStrategy[Any], odds: int = 4) -> Any:
    """A value from `likely` `odds` times out of `odds + 1`: most cases are nearly valid, so they get deep."""
    return draw(likely if draw(st.integers(0, odds)) else other)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    message: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        message["jsonrpc"] = mostly(draw, st.just("2.0"), st.sampled_from(["1.0", 2.0]) | json_scalars)
    if draw(st.integers(0, 3)):
        message["id"] = mostly(draw, st.integers(-(2**31), 2**31) | st.text(max_size=24), ids)
    if draw(st.integers(0, 9)):
        message["method"] = mostly(draw, st.sampled_from(METHODS), st.text(max_size=30) | json_scalars)
    if message.get("method") == "tools/call" or draw(st.booleans()):
        message["params"] = draw(params)
    if draw(st.integers(0, 9)) == 0:
        message[draw(st.sampled_from(["result", "error"]))] = draw(json_values)
    return message


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


bodies = st.one_of(
    messages().map(lambda m: json.dumps(m).encode()),
    st.lists(messages(), max_size=6).map(lambda ms: json.dumps(ms).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=400),
    st.integers(min_value=1, max_value=200_000).map(_nested),
    st.tuples(messages(), st.integers(min_value=0, max_value=60)).map(lambda t: json.dumps(t[0]).encode()[: t[1]]),
    st.just(b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":NaN}}}'),
    st.text(max_size=100).map(lambda t: t.encode("utf-16")),
)


@dataclass
class Tally:
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def fail(self, text: str) -> None:
        if len(self.failures) < 20:
            self.failures.append(text[:800])


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[str, PolicyKit]]:
    kit = standard_kit()
    with run_data_utility_server() as upstream, serve_gateway(upstream.url, kit) as (url, _gateway):
        yield url, kit


def _mcp_session(url: str, token: str) -> str:
    """A real MCP session through the gateway, so fuzzed calls that carry it reach the tools."""
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "Authorization": f"Bearer {token}"}
    init = httpx.post(url, headers=headers, timeout=30, json={
        "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}})
    init.raise_for_status()
    session = init.headers["mcp-session-id"]
    httpx.post(url, headers={**headers, "Mcp-Session-Id": session}, timeout=30,
               json={"jsonrpc": "2.0", "method": "notifications/initialized"}).raise_for_status()
    return session


def _tokens(kit: PolicyKit) -> dict[str, str | None]:
    return {"valid": kit.token("s-cursor", "cursor"), "low": kit.token("s-claude", "claude", trust="low"),
            "revoked": kit.token("s-revoked", "cursor"), "other-server": kit.token("s-cursor", "cursor",
                                                                                   server="elsewhere"),
            "garbage": "not.a.token", "empty": "", "none": None}


@st.composite
def requests_(draw: st.DrawFn, tokens: dict[str, str | None], session: str) -> tuple[str, dict[str, str], bytes]:
    method = draw(st.sampled_from(["POST"] * 6 + ["GET", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]))
    headers: dict[str, str] = {}
    token = tokens[mostly(draw, st.just("valid"), st.sampled_from(list(tokens)), odds=1)]
    if token is not None:
        where = draw(st.sampled_from(["Authorization", "Authorization", "X-MCP-Agent-Session"]))
        headers[where] = (f"Bearer {token}" if token else "Bearer") if where == "Authorization" else token
    content_type = mostly(draw, st.just("application/json"), st.sampled_from(
        ["text/plain", None, "application/json; charset=latin-1", "multipart/form-data"]), odds=3)
    if content_type:
        headers["Content-Type"] = content_type
    accept = draw(st.sampled_from(["application/json, text/event-stream", "text/event-stream", "*/*", None,
                                   "application/json"]))
    if accept:
        headers["Accept"] = accept
    which = draw(st.sampled_from([0, 1, 1, 2]))
    if which == 1 and method != "DELETE":  # a DELETE would end the session the other cases use
        headers["Mcp-Session-Id"] = session
    elif which == 2:
        headers["Mcp-Session-Id"] = draw(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126),
                                                 max_size=40))
    if draw(st.integers(0, 4)) == 0:
        headers["X-MCP-Human-ID"] = "admin@acme.com"
    return method, headers, draw(bodies)


def _check(method: str, body: bytes, response: httpx.Response, tally: Tally) -> None:
    tally.statuses[response.status_code] = tally.statuses.get(response.status_code, 0) + 1
    if response.status_code >= 500:
        tally.fail(f"{response.status_code} {response.text[:300]!r} <- {method} {body[:200]!r}")
        return
    if method != "POST" or "json" not in response.headers.get("content-type", ""):
        return
    try:  # strict JSON (no NaN): what the gateway must accept as a request
        request, answer = json.loads(body, parse_constant=_not_json), response.json()
    except (ValueError, UnicodeDecodeError, RecursionError):
        return
    single_request = (isinstance(request, dict) and request.get("jsonrpc") == "2.0"
                      and isinstance(request.get("method"), str) and isinstance(request.get("id"), int | str)
                      and not isinstance(request.get("id"), bool))
    # the gateway's own errors (a denial, a failed upstream); an upstream's answer is relayed as it is
    is_error = (isinstance(answer, dict) and isinstance(answer.get("error"), dict)
                and answer["error"].get("code") in (DENIED, UPSTREAM_FAILED))
    if single_request and is_error and answer.get("id") != request["id"]:
        tally.fail(f"error answer id {answer.get('id')!r} != request id {request['id']!r} <- {body[:200]!r}")


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def test_the_gateway_survives_fuzzed_http_and_json_rpc(gateway: tuple[str, PolicyKit]) -> None:
    url, kit = gateway
    tally = Tally()
    tokens = _tokens(kit)
    strategy = requests_(tokens, _mcp_session(url, str(tokens["valid"])))

    with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
        @settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(request=strategy)
        def run(request: tuple[str, dict[str, str], bytes]) -> None:
            method, headers, body = request
            tally.cases += 1
            try:
                # a GET may open the server's event stream, which stays open by design: the head is the answer
                with client.stream(method, url, headers=headers, content=body) as response:
                    if not response.headers.get("content-type", "").startswith("text/event-stream"):
                        response.read()
            except httpx.HTTPError as exc:
                tally.fail(f"{type(exc).__name__}: {exc} <- {method} {headers} {body[:200]!r}")
                return
            _check(method, body, response, tally)

        started = time.monotonic()
        while time.monotonic() - started < FUZZ_SECONDS * 0.8:
            run()
        raw_cases = _raw_framing_cases(url, tally, deadline=started + FUZZ_SECONDS)
        elapsed = time.monotonic() - started

        health = client.get(url.rsplit("/", 1)[0] + "/healthz")
        assert health.status_code == 200
        # a request whose client went away ends when the gateway sees the disconnect: give it that moment
        inflight_now = None
        for _ in range(50):
            metrics = client.get(url.rsplit("/", 1)[0] + "/metrics").text
            inflight = re.search(rf'mcp_gateway_inflight_requests\{{server="{SERVER}"\}} ([0-9.]+)', metrics)
            assert inflight is not None, "no in-flight gauge"
            inflight_now = float(inflight.group(1))
            if inflight_now == 0.0:
                break
            time.sleep(0.1)
        assert inflight_now == 0.0, f"{inflight_now} request(s) left in flight 5 s after the last one ended"
    print(f"\ngateway fuzz: {tally.cases} HTTP cases + {raw_cases} raw-socket cases in {elapsed:.0f}s; "
          f"statuses {dict(sorted(tally.statuses.items()))}")
    assert tally.cases > 0
    assert not tally.failures, "\n".join(tally.failures)


def _raw_framing_cases(url: str, tally: Tally, deadline: float) -> int:
    """Broken HTTP framing over a raw socket: each must get an answer or a clean close, never a hang."""
    parsed = httpx.URL(url)
    host, port, path = parsed.host, parsed.port or 80, parsed.path
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
    cases = [
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n%s" % (path.encode(), body),  # lies, then EOF
        b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n%s\r\n0\r\n\r\n" % (
            path.encode(), body),
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n" % path.encode(),
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n" % path.encode(),
        b"POST %s HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n" % (path.encode(), b"a" * 200_000),
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nContent-Length: 20\r\n\r\n0123456789" % (
            path.encode()),
        b"GARBAGE\r\n\r\n",
        b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (path.encode(), 50_000_000),
    ]
    done = 0
    for raw in cases:
        if time.monotonic() > deadline + 30:
            break
        done += 1
        with socket.create_connection((host, port), timeout=REQUEST_TIMEOUT) as sock:
            try:
                sock.sendall(raw)
                sock.shutdown(socket.SHUT_WR)
                answer = sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                continue  # a clean refusal
            except TimeoutError:
                tally.fail(f"no answer within {REQUEST_TIMEOUT}s to raw request {raw[:120]!r}")
                continue
        status = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
        if status and int(status.group(1)) >= 500:
            tally.fail(f"raw request {raw[:120]!r} got {answer[:200]!r}")
    return done
