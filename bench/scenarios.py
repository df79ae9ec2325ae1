"""What the gateway benchmark measures: upstreams, and the scenarios that put something in front of them.

An **upstream** is an MCP server started for the run (the fast responder or the Python SDK example,
answering with JSON or with SSE). A **scenario** starts something in front of a running upstream and
yields a `Target`: the URL to load, the headers a client sends, the tool name as seen there, and the
process whose CPU counts as that scenario's cost. The runner measures every scenario against the
upstream itself (the direct baseline), in the same run and with the same load.

Adding a row (stdio bridge, virtual-server hop, OAuth-token validation, pinning checks, approvals that
do not trigger, limits and conditions) is one function and one entry in `SCENARIOS`:

    @contextlib.contextmanager
    def pinned(up: RunningUpstream, ctx: Context) -> Iterator[Target]:
        with governed_gateway(up, ctx, server_spec={"tools": [... with pinned hashes ...]}) as target:
            yield target

    SCENARIOS["pinning"] = Scenario("pinning", "gateway with tool pinning checks", pinned)

`governed_gateway` takes the extra pieces such a scenario usually needs (fields merged into the
server / grant / session specs the policy is compiled from, extra `gateway run` arguments, another
token); a scenario that needs something else entirely (a stdio child, a second gateway hop) starts its
own processes with `harness.process` and yields their Target. Peers (`bench/peers/`) are scenarios too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from harness import ACCEPT, REPO, free_port, mcp_handshake, process, repo_env

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


UPSTREAMS: dict[str, Upstream] = {
    "fast-json": Upstream("fast-json", "bench/fast_upstream.py, one JSON body",
                          [sys.executable, str(REPO / "bench" / "fast_upstream.py")], {}, "json"),
    "fast-sse": Upstream("fast-sse", "bench/fast_upstream.py, one SSE event then end of stream",
                         [sys.executable, str(REPO / "bench" / "fast_upstream.py")], {"FAST_SSE": "1"}, "sse"),
    "sdk-json": Upstream("sdk-json", "examples/data-utility-mcp (Python SDK), json_response=True",
                         [sys.executable, "app.py"],
                         {"HOST": "127.0.0.1", "LOG_LEVEL": "WARNING", "MCP_JSON_RESPONSE": "1"}, "json",
                         REPO / "examples" / "data-utility-mcp"),
    "go-json": Upstream("go-json", "examples/workspace-assistant-mcp (official Go SDK), JSON answers",
                        [str(GO_BINARY)], {"HOST": "127.0.0.1", "MCP_PATH": "/mcp"}, "json", GO_BINARY.parent.parent),
    "sdk-sse": Upstream("sdk-sse", "examples/data-utility-mcp (Python SDK), SSE answers (its default)",
                        [sys.executable, "app.py"], {"HOST": "127.0.0.1", "LOG_LEVEL": "WARNING"}, "sse",
                        REPO / "examples" / "data-utility-mcp"),
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
                 grant_spec: Mapping[str, Any] | None = None,
                 session_spec: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """A compiled policy granting the bench agent `echo` on `server`, and the JWKS to verify tokens with."""
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
        "metadata": {"name": SESSION, "namespace": NAMESPACE},
        "spec": _merge({"serverRef": {"name": server},
                        "subject": {"agentID": AGENT, "teamID": TEAM, "humanID": "bench"},
                        "consentedTrust": "high",
                        "expiresAt": (datetime.now(UTC) + timedelta(hours=2)).isoformat()}, session_spec),
    })
    policy = ctx.workdir / f"{server}.policy.json"
    policy.write_bytes(compile_policy(srv, [grant], [session]).to_json())
    jwks = ctx.workdir / "jwks.json"
    jwks.write_text(json.dumps(ctx.keyring.jwks()))
    return policy, jwks


def session_token(ctx: Context, server: str) -> str:
    now = datetime.now(UTC)
    return issue_session_token(ctx.keyring, SessionClaims(
        session_id=SESSION, namespace=NAMESPACE, server=server, human_id="bench", agent_id=AGENT,
        team_id=TEAM, trust="high", expires_at=now + timedelta(hours=2), issued_at=now))


@contextlib.contextmanager
def governed_gateway(up: RunningUpstream, ctx: Context, *, server_spec: Mapping[str, Any] | None = None,
                     grant_spec: Mapping[str, Any] | None = None, session_spec: Mapping[str, Any] | None = None,
                     extra_args: list[str] | None = None, token: str | None = None) -> Iterator[Target]:
    """`mcp-runtime gateway run` in front of `up`, started as the sidecar is (its own process, files watched)."""
    server = up.upstream.name
    policy, jwks = policy_files(ctx, server, server_spec=server_spec, grant_spec=grant_spec,
                                session_spec=session_spec)
    port = free_port()
    argv = [sys.executable, "-m", "mcp_runtime", "gateway", "run", "--upstream", up.url,
            "--policy-file", str(policy), "--jwks-file", str(jwks), "--listen", f"127.0.0.1:{port}",
            "--log-level", "warning", *(extra_args or [])]
    with process(argv, f"http://127.0.0.1:{port}/readyz", ready_status=200,
                 log=ctx.workdir / f"gateway-{server}.log") as proc:
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


SCENARIOS: dict[str, Scenario] = {
    "gateway": Scenario("gateway", "mcp-runtime gateway: session token verified, policy decides each call",
                        governed_gateway),
    "limits": Scenario("limits", "gateway + an argument condition and three rate limits on each call",
                       limited_gateway),
    "pinned": Scenario("pinned", "gateway + every tool pinned (definitions checked, mode enforce)",
                       pinned_gateway),
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
