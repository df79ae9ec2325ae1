"""What the gateway benchmark measures: upstreams, and the scenarios that put something in front of them.

An **upstream** is an MCP server started for the run (the fast responder or the Python SDK example,
answering with JSON or with SSE). A **scenario** starts something in front of a running upstream and
yields a `Target`: the URL to load, the headers a client sends, the tool name as seen there, and the
process whose CPU counts as that scenario's cost. The runner measures every scenario against the
upstream itself (the direct baseline), in the same run and with the same load.

Adding a row (as `oauth`, `approvals`, `pinned`, `limits`, `virtual`, `stdio` and `bridge` were) is one
function and one entry in `SCENARIOS`:

    @contextlib.contextmanager
    def pinned(up: RunningUpstream, ctx: Context) -> Iterator[Target]:
        with governed_gateway(up, ctx, server_spec={"tools": [... with pinned hashes ...]}) as target:
            yield target

    SCENARIOS["pinning"] = Scenario("pinning", "gateway with tool pinning checks", pinned)

`governed_gateway` takes the extra pieces such a scenario usually needs (fields merged into the
server / grant / session specs the policy is compiled from, extra `gateway run` arguments, another
token); a scenario that needs something else entirely (the stdio bridge, a virtual server) starts its
own processes (`hops.py`) and yields their Target. Peers (`bench/peers/`) are scenarios too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from harness import ACCEPT, REPO, children, free_port, mcp_handshake, process, repo_env
from hops import FAST_STDIO, stdio_bridge, virtual_gateway

sys.path.insert(0, str(REPO / "src"))

from mcp_runtime.policy import compile_policy
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer
from mcp_runtime.resources.pinning import ToolPin
from mcp_runtime.security import KeyRing, SessionClaims, issue_session_token

NAMESPACE = "bench"
AGENT = "bench-agent"
TEAM = "bench-team"
SESSION = "s-bench"
GO_BINARY = REPO / "examples" / "workspace-assistant-mcp" / "dist" / "workspace-assistant-mcp"


@dataclass(frozen=True)
class Upstream:
    """An MCP server to start for the run; `answers` is how it answers a tools/call (json or sse)."""

    name: str
    description: str
    argv: list[str]
    env: Mapping[str, str]
    answers: str
    cwd: Path | None = None
    stdio: list[str] | None = None
    """The same server over stdio (run in `cwd`), for the stdio bridge scenarios; None: it has no stdio form."""


SDK_STDIO = [sys.executable, "-c", "import app; app.build_server().run('stdio')"]
UPSTREAMS: dict[str, Upstream] = {
    "fast-json": Upstream("fast-json", "bench/fast_upstream.py, one JSON body",
                          [sys.executable, str(REPO / "bench" / "fast_upstream.py")], {}, "json", stdio=FAST_STDIO),
    "fast-sse": Upstream("fast-sse", "bench/fast_upstream.py, one SSE event then end of stream",
                         [sys.executable, str(REPO / "bench" / "fast_upstream.py")], {"FAST_SSE": "1"}, "sse",
                         stdio=FAST_STDIO),
    "sdk-json": Upstream("sdk-json", "examples/data-utility-mcp (Python SDK), json_response=True",
                         [sys.executable, "app.py"],
                         {"HOST": "127.0.0.1", "LOG_LEVEL": "WARNING", "MCP_JSON_RESPONSE": "1"}, "json",
                         REPO / "examples" / "data-utility-mcp", SDK_STDIO),
    "go-json": Upstream("go-json", "examples/workspace-assistant-mcp (official Go SDK), JSON answers",
                        [str(GO_BINARY)], {"HOST": "127.0.0.1", "MCP_PATH": "/mcp"}, "json", GO_BINARY.parent.parent),
    "sdk-sse": Upstream("sdk-sse", "examples/data-utility-mcp (Python SDK), SSE answers (its default)",
                        [sys.executable, "app.py"], {"HOST": "127.0.0.1", "LOG_LEVEL": "WARNING"}, "sse",
                        REPO / "examples" / "data-utility-mcp", SDK_STDIO),
}


@dataclass(frozen=True)
class Target:
    """Where the load goes and whose CPU it costs."""

    url: str
    headers: Mapping[str, str]
    pid: int
    """Session leader whose session's CPU (it and its workers) is this target's cost."""
    tool: str = "echo"
    handshake: bool = True
    """Send `initialize` through the target first (its answer may open an MCP session)."""
    also: tuple[int, ...] = ()
    """More session leaders whose CPU is this target's cost too (a bridge behind the gateway)."""
    servers: Callable[[], list[int]] | None = None
    """Sessions of the server this target calls instead of the run's upstream (the stdio processes a bridge
    started), looked up when measured; None: the run's upstream."""

    @property
    def sessions(self) -> tuple[int, ...]:
        return (self.pid, *self.also)

    def server_sessions(self, up: RunningUpstream) -> list[int]:
        return self.servers() if self.servers is not None else [up.pid]


@dataclass(frozen=True)
class RunningUpstream:
    upstream: Upstream
    url: str
    port: int
    pid: int


@dataclass
class Context:
    """Shared by the scenarios of one run: a scratch directory and the platform's signing keys."""

    workdir: Path
    keyring: KeyRing = field(default_factory=KeyRing.generate)


ScenarioFn = Callable[[RunningUpstream, Context], contextlib.AbstractContextManager[Target]]


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    start: ScenarioFn
    min_duration: float = 0
    """Seconds per point at least (runs are stretched further for a slow target, see `plan`)."""
    timeout_s: int = 10
    """wrk's per-request timeout at least."""


@contextlib.contextmanager
def start_upstream(upstream: Upstream, workdir: Path) -> Iterator[RunningUpstream]:
    if upstream.argv[0] == str(GO_BINARY):
        build_go_example()
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    env = {**repo_env(), **upstream.env, "PORT": str(port)}
    with process(upstream.argv, url, env=env, cwd=upstream.cwd, log=workdir / f"{upstream.name}.log") as proc:
        yield RunningUpstream(upstream, url, port, proc.pid)


def build_go_example() -> None:
    """`go build` the Go example as its README does (Go's caches make a rebuild take a second)."""
    go = shutil.which("go", path=f"/usr/local/go/bin{os.pathsep}{os.environ.get('PATH', '')}")
    if go is None:
        raise SystemExit("the go-json upstream needs Go: install it (https://go.dev/dl) or leave go-json out")
    subprocess.run([go, "build", "-ldflags=-s -w", "-o", str(GO_BINARY), "."], cwd=GO_BINARY.parent.parent,
                   check=True)


def direct(up: RunningUpstream) -> Target:
    return Target(url=up.url, headers={}, pid=up.pid)


def _merge(base: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**base, **(extra or {})}


def policy_files(ctx: Context, server: str, *, server_spec: Mapping[str, Any] | None = None,
                 grant_spec: Mapping[str, Any] | None = None, session_spec: Mapping[str, Any] | None = None,
                 session_meta: Mapping[str, Any] | None = None, stem: str | None = None) -> tuple[Path, Path]:
    """A compiled policy granting the bench agent `echo` on `server`, and the JWKS to verify tokens with.

    The policy goes to `<stem>.policy.json`: each gateway of a run needs a file of its own, since a
    gateway reloads its file when it changes (one shared file would give every gateway the last one's)."""
    srv = MCPServer.model_validate({
        "metadata": {"name": server, "namespace": NAMESPACE},
        "spec": _merge({"image": f"bench/{server}", "teamID": TEAM,
                        "tools": [{"name": "echo", "sideEffect": "read"},
                                  {"name": "reverse", "sideEffect": "write"}]}, server_spec),
    })
    grant = MCPAccessGrant.model_validate({
        "metadata": {"name": "g-bench", "namespace": NAMESPACE},
        "spec": _merge({"serverRef": {"name": server}, "subject": {"agentID": AGENT, "teamID": TEAM},
                        "maxTrust": "high", "toolRules": [{"name": "echo"}]}, grant_spec),
    })
    session = MCPAgentSession.model_validate({
        "metadata": _merge({"name": SESSION, "namespace": NAMESPACE}, session_meta),
        "spec": _merge({"serverRef": {"name": server},
                        "subject": {"agentID": AGENT, "teamID": TEAM, "humanID": "bench"},
                        "consentedTrust": "high",
                        "expiresAt": (datetime.now(UTC) + timedelta(hours=2)).isoformat()}, session_spec),
    })
    policy = ctx.workdir / f"{stem or server}.policy.json"
    policy.write_bytes(compile_policy(srv, [grant], [session]).to_json())
    jwks = ctx.workdir / "jwks.json"
    jwks.write_text(json.dumps(ctx.keyring.jwks()))
    return policy, jwks


def session_token(ctx: Context, server: str, *, session: str = SESSION, client_id: str | None = None) -> str:
    """The token the platform issues for the bench session (with `client_id`: an OAuth access token)."""
    now = datetime.now(UTC)
    return issue_session_token(ctx.keyring, SessionClaims(
        session_id=session, namespace=NAMESPACE, server=server, human_id="bench", agent_id=AGENT,
        team_id=TEAM, trust="high", expires_at=now + timedelta(hours=2), issued_at=now, client_id=client_id))


@contextlib.contextmanager
def governed_gateway(up: RunningUpstream, ctx: Context, *, server_spec: Mapping[str, Any] | None = None,
                     grant_spec: Mapping[str, Any] | None = None, session_spec: Mapping[str, Any] | None = None,
                     session_meta: Mapping[str, Any] | None = None, extra_args: list[str] | None = None,
                     token: str | None = None) -> Iterator[Target]:
    """`mcp-runtime gateway run` in front of `up`, started as the sidecar is (its own process, files watched)."""
    server = up.upstream.name
    port = free_port()
    policy, jwks = policy_files(ctx, server, server_spec=server_spec, grant_spec=grant_spec,
                                session_spec=session_spec, session_meta=session_meta, stem=f"{server}-{port}")
    argv = [sys.executable, "-m", "mcp_runtime", "gateway", "run", "--upstream", up.url,
            "--policy-file", str(policy), "--jwks-file", str(jwks), "--listen", f"127.0.0.1:{port}",
            "--log-level", "warning", *(extra_args or [])]
    with process(argv, f"http://127.0.0.1:{port}/readyz", ready_status=200,
                 log=ctx.workdir / f"gateway-{server}-{port}.log") as proc:
        bearer = token if token is not None else session_token(ctx, server)
        yield Target(url=f"http://127.0.0.1:{port}/mcp", headers={"Authorization": f"Bearer {bearer}"},
                     pid=proc.pid)


@contextlib.contextmanager
def limited_gateway(up: RunningUpstream, ctx: Context) -> Iterator[Target]:
    """The gateway with an argument condition on `echo` and three rate limits (server, grant, tool rule)
    that never refuse at bench rates: what judging a condition and counting the buckets costs."""
    never = {"requestsPerSecond": 100_000, "burst": 1_000_000}
    with governed_gateway(
        up, ctx,
        server_spec={"policy": {"rateLimit": {"callsPerDay": 1_000_000_000, "per": ["server"]}}},
        grant_spec={"rateLimit": never,
                    "toolRules": [{"name": "echo", "condition": "size(args.text) <= 100 && caller.agentID != ''",
                                   "rateLimit": {**never, "per": ["tool", "human"]}}]},
    ) as target:
        yield target


@contextlib.contextmanager
def otlp_sink() -> Iterator[str]:
    """An OTLP/HTTP endpoint that accepts every export and keeps nothing: what the gateway pays to trace,
    not what a collector pays to store. Yields its base URL."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def traced_gateway(up: RunningUpstream, ctx: Context) -> Iterator[Target]:
    """The gateway exporting a span per request over OTLP/HTTP (`--otlp-endpoint`, batched off the request
    path): what tracing costs next to the `gateway` row, which has it off."""
    with otlp_sink() as endpoint, governed_gateway(up, ctx, extra_args=["--otlp-endpoint", endpoint]) as target:
        yield target


def upstream_tools(up: RunningUpstream) -> list[dict[str, Any]]:
    """The upstream's `tools/list` answer (JSON or SSE), as `server init --from-server` reads it to pin."""
    session = mcp_handshake(up.url, {})
    answer = httpx.post(up.url, headers={**ACCEPT, **session}, timeout=30,
                        json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    text = answer.text
    if answer.headers.get("content-type", "").startswith("text/event-stream"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
    tools: list[dict[str, Any]] = json.loads(text)["result"]["tools"]
    return tools


@contextlib.contextmanager
def pinned_gateway(up: RunningUpstream, ctx: Context) -> Iterator[Target]:
    """The gateway with every tool pinned (mode enforce): what checking pins costs per call. The gateway
    lists the upstream's tools itself when the policy loads, so the calls go to checked tools."""
    tools = [{"name": t["name"], "sideEffect": "read", "pin": ToolPin.of(t).model_dump(by_alias=True)}
             for t in upstream_tools(up)]
    with governed_gateway(up, ctx, server_spec={"tools": tools, "pinning": {"mode": "enforce"}}) as target:
        yield target


OAUTH_CLIENT = "bench-oauth-client"
OAUTH_SESSION = "bench-agent-oauth-0123456789"
"""Named as the platform names an OAuth authorization's session (`<agent>-oauth-<id>`, docs/authorization.md)."""


@contextlib.contextmanager
def oauth_gateway(up: RunningUpstream, ctx: Context) -> Iterator[Target]:
    """The gateway as an OAuth protected resource (`--resource-url`, `--authorization-server`), called with an
    access token as the platform's OAuth provider issues one: the token of an OAuth session (labelled as the
    platform labels it) with a `client_id` claim, signed by the key the gateway's JWKS holds. The issuer is
    only named (in the metadata and in 401 challenges), never contacted: no call is refused here."""
    name = up.upstream.name
    token = session_token(ctx, name, session=OAUTH_SESSION, client_id=OAUTH_CLIENT)
    labels = {"mcpruntime.org/issued-by": "oauth", "mcpruntime.org/oauth-client": OAUTH_CLIENT}
    with governed_gateway(up, ctx, session_meta={"name": OAUTH_SESSION, "labels": labels}, token=token,
                          extra_args=["--resource-url", f"http://127.0.0.1:8080/{name}/mcp",
                                      "--authorization-server", "http://127.0.0.1:8080/api/v1/oauth"]) as target:
        yield target


@contextlib.contextmanager
def approvals_gateway(up: RunningUpstream, ctx: Context) -> Iterator[Target]:
    """The gateway where other tools need a person's approval (`reverse`: `requiresApproval` with the owners
    as approver and a grant rule asking the caller too; `purge`: destructive, so it waits by default), so the
    evaluator judges approval on every call; `echo`, the measured tool, needs none and never waits."""
    tools = [{"name": "echo", "sideEffect": "read"},
             {"name": "reverse", "sideEffect": "write", "requiresApproval": True, "approver": "owners"},
             {"name": "purge", "sideEffect": "destructive"}]
    rules = [{"name": "echo"}, {"name": "reverse", "approval": "caller"}, {"name": "purge"}]
    with governed_gateway(up, ctx, server_spec={"tools": tools, "policy": {"approvalTimeout": "30s"}},
                          grant_spec={"toolRules": rules}) as target:
        yield target


@contextlib.contextmanager
def virtual_hop(up: RunningUpstream, ctx: Context) -> Iterator[Target]:
    """`echo` as `fast_echo` at a virtual server's endpoint (`/v/toolbox/mcp`) whose one member is `up`: the
    gateway as `up` embeds it (bench/hops.py, shared with virtual_hop.py), the member's policy deciding."""
    with virtual_gateway(up.url, ctx.workdir) as gateway:
        url, tool = gateway.virtual
        yield Target(url=url, headers={"Authorization": f"Bearer {gateway.tokens['virtual']}"}, pid=gateway.pid,
                     tool=tool)


@contextlib.contextmanager
def bridge_for(up: RunningUpstream, ctx: Context) -> Iterator[RunningUpstream]:
    """`mcp-runtime bridge stdio` running `up`'s server over stdio, as an upstream (its pid: the bridge's)."""
    if up.upstream.stdio is None:
        raise RuntimeError(f"{up.upstream.name} has no stdio form to put behind the bridge")
    port = free_port()
    with stdio_bridge(up.upstream.stdio, cwd=up.upstream.cwd, log=ctx.workdir / f"bridge-{port}.log") as bridge:
        stdio = replace(up.upstream, name=f"{up.upstream.name}-stdio", answers="sse")
        yield RunningUpstream(stdio, bridge.url, port, bridge.pid)


@contextlib.contextmanager
def bare_bridge(up: RunningUpstream, ctx: Context) -> Iterator[Target]:
    """The stdio bridge alone, no gateway: its CPU/call is the bridge's, the server's (over stdio) is in
    the upstream column."""
    with bridge_for(up, ctx) as bridge:
        yield Target(url=bridge.url, headers={}, pid=bridge.pid, servers=lambda: children(bridge.pid))


@contextlib.contextmanager
def governed_stdio(up: RunningUpstream, ctx: Context) -> Iterator[Target]:
    """A stdio server as every runtime deploys it: the gateway (as in `gateway`) in front of the bridge in
    front of the server over stdio. CPU/call counts the gateway and the bridge; the server's is in the
    upstream column."""
    with bridge_for(up, ctx) as bridge, governed_gateway(bridge, ctx) as target:
        yield replace(target, also=(bridge.pid,), servers=lambda: children(bridge.pid))


SCENARIOS: dict[str, Scenario] = {
    "gateway": Scenario("gateway", "mcp-runtime gateway: session token verified, policy decides each call",
                        governed_gateway),
    "limits": Scenario("limits", "gateway + an argument condition and three rate limits on each call",
                       limited_gateway),
    "tracing": Scenario("tracing", "gateway exporting an OpenTelemetry span per request (OTLP/HTTP)",
                        traced_gateway),
    "pinned": Scenario("pinned", "gateway + every tool pinned (definitions checked, mode enforce)",
                       pinned_gateway),
    "oauth": Scenario("oauth", "gateway as an OAuth protected resource, called with an OAuth access token",
                      oauth_gateway),
    "approvals": Scenario("approvals", "gateway where other tools need approval; the measured call does not",
                          approvals_gateway),
    "virtual": Scenario("virtual", "virtual server endpoint /v/toolbox/mcp, the upstream its one member",
                        virtual_hop),
    "stdio": Scenario("stdio", "gateway -> bridge stdio -> the same server over stdio (baseline: it over HTTP)",
                      governed_stdio),
    "bridge": Scenario("bridge", "bridge stdio alone -> the same server over stdio (baseline: it over HTTP)",
                       bare_bridge),
}

PEERS: dict[str, str] = {
    "contextforge": "peers.contextforge",
    "contextforge-stateful": "peers.contextforge",
    "toolhive": "peers.toolhive",
}
"""Peer gateways: scenario name -> module in bench/peers/ whose SCENARIOS holds it; imported when asked for."""


def scenario(name: str) -> Scenario:
    """A scenario by name; peers are imported on demand (they install into a cache outside the repo)."""
    if name in SCENARIOS:
        return SCENARIOS[name]
    if name in PEERS:
        import importlib

        module = importlib.import_module(PEERS[name])
        found: Scenario = module.SCENARIOS[name]
        return found
    raise SystemExit(f"unknown scenario {name!r}: choose from {', '.join([*SCENARIOS, *PEERS])}")
