"""The paths a call can take besides one gateway route: a virtual server's endpoint, and the stdio bridge.

Their processes are started here once, for every benchmark that needs them: `virtual_hop.py` and
`stdio_bridge.py` (each path against its own baseline) and the `virtual`, `stdio` and `bridge`
scenarios of `gateway_overhead.py` (against the direct upstream, beside the other scenarios).

    python bench/hops.py virtual PORT UPSTREAM TOKENS   # the virtual gateway's child process (internal)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import REPO, free_port, process

NAMESPACE = "bench"
MEMBER = "fast"
"""The member server's name: its route is `/fast/mcp`, its tools are `fast_<tool>` at the virtual server."""
VIRTUAL = "toolbox"


@dataclass(frozen=True)
class VirtualGateway:
    """One gateway process serving the member's own route and a virtual server with that one member."""

    base: str
    pid: int
    tokens: dict[str, str]
    """Session tokens by path: `direct` (the member's route) and `virtual` (the virtual server)."""

    @property
    def direct(self) -> tuple[str, str]:
        """URL and tool name of the member's own governed route."""
        return f"{self.base}/{MEMBER}/mcp", "echo"

    @property
    def virtual(self) -> tuple[str, str]:
        """URL and tool name at the virtual server (the member's name prefixed)."""
        return f"{self.base}/v/{VIRTUAL}/mcp", f"{MEMBER}_echo"


@contextlib.contextmanager
def virtual_gateway(upstream: str, workdir: Path) -> Iterator[VirtualGateway]:
    """Start the gateway of `serve_virtual` in front of `upstream` (an MCP URL) until the block ends."""
    port = free_port()
    tokens = workdir / f"virtual-{port}.tokens.json"
    argv = [sys.executable, str(Path(__file__).resolve()), "virtual", str(port), upstream, str(tokens)]
    with process(argv, f"http://127.0.0.1:{port}/healthz", log=workdir / f"virtual-{port}.log") as proc:
        yield VirtualGateway(f"http://127.0.0.1:{port}", proc.pid, json.loads(tokens.read_text()))


def serve_virtual(port: int, upstream: str, tokens: Path) -> None:
    """The gateway as `up` embeds it (policy and keys in process): the member's route and a virtual server
    with that one member. Both are judged by the member's policy document; the tokens go to `tokens`."""
    import uvicorn

    from mcp_runtime.gateway import Gateway, GatewayRoute, InProcessPolicySource
    from mcp_runtime.gateway.server import uvicorn_config
    from mcp_runtime.gateway.virtual.endpoint import VirtualRoute
    from mcp_runtime.policy import compile_policy
    from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer, MCPVirtualServer
    from mcp_runtime.security import KeyRing, SessionClaims, issue_session_token

    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    server = MCPServer.model_validate({"metadata": {"name": MEMBER, "namespace": NAMESPACE}, "spec": {
        "image": f"bench/{MEMBER}", "tools": [{"name": "echo", "sideEffect": "read"}]}})
    grant = MCPAccessGrant.model_validate({"metadata": {"name": "g", "namespace": NAMESPACE}, "spec": {
        "serverRef": {"name": MEMBER}, "subject": {"agentID": "bench"}, "toolRules": [{"name": "echo"}]}})

    def session(name: str, target: str) -> MCPAgentSession:
        return MCPAgentSession.model_validate({"metadata": {"name": name, "namespace": NAMESPACE}, "spec": {
            "serverRef": {"name": target}, "subject": {"agentID": "bench"}, "expiresAt": later}})

    doc = compile_policy(server, [grant], [session("s-direct", MEMBER)], [session("s-virtual", VIRTUAL)])
    keyring = KeyRing.generate()
    keys = keyring.public_keys()
    gateway = Gateway([GatewayRoute(upstream=upstream, policy=InProcessPolicySource(doc), keys=keys, server=MEMBER,
                                    namespace=NAMESPACE)])
    virtual = MCPVirtualServer.model_validate({"metadata": {"name": VIRTUAL, "namespace": NAMESPACE},
                                               "spec": {"members": [{"serverRef": {"name": MEMBER}}]}})
    asyncio.run(gateway.add_virtual(VirtualRoute(virtual, keys)))
    now = datetime.now(UTC)

    def token(sid: str, target: str) -> str:
        return issue_session_token(keyring, SessionClaims(
            session_id=sid, namespace=NAMESPACE, server=target, human_id=None, agent_id="bench", team_id=None,
            trust="low", expires_at=now + timedelta(hours=2), issued_at=now - timedelta(seconds=5)))

    tokens.write_text(json.dumps({"direct": token("s-direct", MEMBER), "virtual": token("s-virtual", VIRTUAL)}))
    uvicorn.Server(uvicorn_config(gateway, "127.0.0.1", port)).run()


@dataclass(frozen=True)
class Bridge:
    url: str
    pid: int


@contextlib.contextmanager
def stdio_bridge(command: Sequence[str], *, cwd: Path | None = None, log: Path | None = None) -> Iterator[Bridge]:
    """`mcp-runtime bridge stdio -- command` (one `command` process per MCP session) until the block ends.

    The bridge starts each server process in a session of its own: `harness.children(bridge.pid)` finds them."""
    port = free_port()
    argv = [sys.executable, "-m", "mcp_runtime", "bridge", "stdio", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", *(["--cwd", str(cwd)] if cwd else []), "--", *command]
    with process(argv, f"http://127.0.0.1:{port}/healthz", ready_status=200, log=log) as proc:
        yield Bridge(f"http://127.0.0.1:{port}/mcp", proc.pid)


FAST_STDIO = [sys.executable, str(REPO / "bench" / "fast_upstream.py"), "--stdio"]
"""The fast responder over stdio: the same answers as over HTTP."""


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "virtual":
        serve_virtual(int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
        return
    raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
