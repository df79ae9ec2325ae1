"""What the virtual-server hop adds to a tool call: `/v/<name>/mcp` vs the member's own governed route.

    .venv/bin/python bench/virtual_hop.py [--duration 5] [--concurrency 1 16]

One gateway process serves both paths to the same fast upstream (`bench/fast_upstream.py`): the direct
governed route `/fast/mcp`, and a virtual server `toolbox` with that one member (`/v/toolbox/mcp`,
tool `fast_echo`). Both are judged by the same policy document (the member's), so the difference is the
virtual hop alone: its session table, the name mapping, the member's backend session, the SSE relay.
`wrk` drives `tools/call` (bench/jsonrpc_load.lua); the gateway's CPU per call is read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import (
    REPO,
    IdRange,
    check_call,
    free_port,
    mcp_handshake,
    process,
    run_load,
    session_cpu_seconds,
    settle,
)

NAMESPACE = "bench"


def serve(port: int, upstream: str, tokens: Path) -> None:
    """The gateway under test (a child process): one governed route and one virtual server."""
    import uvicorn

    from mcp_runtime.gateway import Gateway, GatewayRoute, InProcessPolicySource
    from mcp_runtime.gateway.server import uvicorn_config
    from mcp_runtime.gateway.virtual.endpoint import VirtualRoute
    from mcp_runtime.policy import compile_policy
    from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer, MCPVirtualServer
    from mcp_runtime.security import KeyRing, SessionClaims, issue_session_token

    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    server = MCPServer.model_validate({"metadata": {"name": "fast", "namespace": NAMESPACE}, "spec": {
        "image": "bench/fast", "tools": [{"name": "echo", "sideEffect": "read"}]}})
    grant = MCPAccessGrant.model_validate({"metadata": {"name": "g", "namespace": NAMESPACE}, "spec": {
        "serverRef": {"name": "fast"}, "subject": {"agentID": "bench"}, "toolRules": [{"name": "echo"}]}})

    def session(name: str, target: str) -> MCPAgentSession:
        return MCPAgentSession.model_validate({"metadata": {"name": name, "namespace": NAMESPACE}, "spec": {
            "serverRef": {"name": target}, "subject": {"agentID": "bench"}, "expiresAt": later}})

    doc = compile_policy(server, [grant], [session("s-direct", "fast")], [session("s-virtual", "toolbox")])
    keyring = KeyRing.generate()
    keys = keyring.public_keys()
    gateway = Gateway([GatewayRoute(upstream=upstream, policy=InProcessPolicySource(doc), keys=keys, server="fast",
                                    namespace=NAMESPACE)])
    virtual = MCPVirtualServer.model_validate({"metadata": {"name": "toolbox", "namespace": NAMESPACE},
                                               "spec": {"members": [{"serverRef": {"name": "fast"}}]}})
    asyncio.run(gateway.add_virtual(VirtualRoute(virtual, keys)))
    now = datetime.now(UTC)

    def token(sid: str, target: str) -> str:
        return issue_session_token(keyring, SessionClaims(
            session_id=sid, namespace=NAMESPACE, server=target, human_id=None, agent_id="bench", team_id=None,
            trust="low", expires_at=now + timedelta(hours=1), issued_at=now - timedelta(seconds=5)))

    tokens.write_text(json.dumps({"direct": token("s-direct", "fast"), "virtual": token("s-virtual", "toolbox")}))
    uvicorn.Server(uvicorn_config(gateway, "127.0.0.1", port)).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--serve", nargs=3, metavar=("PORT", "UPSTREAM", "TOKENS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], Path(args.serve[2]))
        return
    up_port, gw_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}/mcp"
    with tempfile.TemporaryDirectory() as tmp, \
            process([sys.executable, str(REPO / "bench" / "fast_upstream.py"), str(up_port)], upstream), \
            process([sys.executable, __file__, "--serve", str(gw_port), upstream, f"{tmp}/tokens.json"],
                    f"http://127.0.0.1:{gw_port}/healthz") as gateway:
        tokens = json.loads(Path(tmp, "tokens.json").read_text())
        base = f"http://127.0.0.1:{gw_port}"
        paths = {"direct": (f"{base}/fast/mcp", "echo"), "virtual": (f"{base}/v/toolbox/mcp", "fast_echo")}
        ids = IdRange()
        print(f"{'path':8} {'conc':>4} {'calls/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'gw CPU us/call':>15}")
        results: dict[tuple[str, int], tuple[float, float, float]] = {}
        for concurrency in args.concurrency:
            for name, (url, tool) in paths.items():
                auth = {"Authorization": f"Bearer {tokens[name]}"}
                headers = {**auth, **mcp_handshake(url, auth)}
                check_call(url, headers, tool)
                settle(gateway.pid)
                before = session_cpu_seconds(gateway.pid)
                load = run_load(url, headers, tool, concurrency, args.duration, ids.take())
                cpu = (session_cpu_seconds(gateway.pid) - before) / max(load.ok, 1) * 1e6
                rate = load.ok / load.seconds
                results[(name, concurrency)] = (rate, load.p50_ms, cpu)
                print(f"{name:8} {concurrency:>4} {rate:>9.0f} {load.p50_ms:>7.2f} {load.p99_ms:>7.2f} {cpu:>15.0f}"
                      f"{'' if load.bad == 0 and load.socket_errors == 0 else f'  ({load.bad} bad)'}")
        for concurrency in args.concurrency:
            d, v = results[("direct", concurrency)], results[("virtual", concurrency)]
            print(f"concurrency {concurrency}: virtual/direct throughput {v[0] / d[0]:.2f}, p50 {v[1] / d[1]:.2f}x "
                  f"(+{v[1] - d[1]:.2f} ms), CPU per call {v[2] / d[2]:.2f}x (+{v[2] - d[2]:.0f} us)")


if __name__ == "__main__":
    main()
