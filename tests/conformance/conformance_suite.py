"""Running the official MCP conformance suite against the reference server, directly and through the gateway.

Shared by `test_conformance.py` and `regenerate_expected.py`. The pieces:

- `reference_server()`: `reference_server.py` as a subprocess on a free port.
- `governed(upstream_url)`: the real gateway (`mcp-runtime gateway run`, a subprocess) in front of it,
  with a policy compiled from the server's own `tools/list` (every tool declared, one allow-all
  grant, one session), and a bearer-injecting hop in front of the gateway, because the suite's client
  cannot send our session token. Yields the URL the suite is pointed at.
- `run_suite(url, out_dir)`: `conformance server --url URL --suite all`, parsed into `ScenarioResult`s.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx

from mcp_runtime.policy import PolicyDocument, compile_policy
from mcp_runtime.resources import MCPAccessGrant, MCPAgentSession, MCPServer
from mcp_runtime.security import KeyRing, SessionClaims, issue_session_token

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO_ROOT = TESTS.parent
if str(TESTS) not in sys.path:  # when run as a script (regenerate_expected.py), not under pytest
    sys.path.insert(0, str(TESTS))

from fixtures.gateway import serve_app  # noqa: E402
from fixtures.servers import free_port, run_server_process, stop_process  # noqa: E402

CONFORMANCE_VERSION = "0.1.16"
EXPECTED_FILE = HERE / "expected.json"
NODE22_DIR = REPO_ROOT / ".ci" / "node22"
SETUP_SCRIPT = REPO_ROOT / ".ci" / "setup-node22.sh"
SUITE_TIMEOUT = 150.0

SERVER, NAMESPACE, TEAM = "conformance-reference", "team-conformance", "team-conformance-uuid"
AGENT, HUMAN, CALLER_TEAM, SESSION = "conformance-suite", "suite@example.com", "callers-uuid", "s-conformance"

_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


# --- Node 22 and the suite ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Suite:
    node: Path
    entry: Path

    def command(self, url: str, out_dir: Path) -> list[str]:
        return [str(self.node), str(self.entry), "server", "--url", url, "--suite", "all", "-o", str(out_dir)]


def find_suite(*, install: bool = True) -> Suite:
    """Node 22 and the pinned conformance package from .ci/node22 (installed by .ci/setup-node22.sh)."""
    node = Path(os.environ.get("MCP_RUNTIME_NODE22") or NODE22_DIR / "node_modules/node/bin/node")
    package = NODE22_DIR / "node_modules/@modelcontextprotocol/conformance"

    def usable() -> bool:
        manifest = package / "package.json"
        return (node.is_file() and manifest.is_file()
                and json.loads(manifest.read_text()).get("version") == CONFORMANCE_VERSION)

    if not usable() and install:
        done = subprocess.run([str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{SETUP_SCRIPT} failed:\n{done.stderr}")
        node = Path(done.stdout.strip().splitlines()[-1])
    if not usable():
        raise RuntimeError(f"Node 22 and @modelcontextprotocol/conformance@{CONFORMANCE_VERSION} are not in "
                           f"{NODE22_DIR}: run {SETUP_SCRIPT}")
    return Suite(node=node, entry=package / "dist/index.js")


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario's checks. INFO checks are a transcript; SUCCESS, WARNING and FAILURE are verdicts."""

    scenario: str
    checks: tuple[tuple[str, str, str], ...]  # (check id, status, error message)

    @property
    def passed(self) -> bool:
        return not any(status == "FAILURE" for _, status, _ in self.checks)

    @property
    def verdicts(self) -> Counter[tuple[str, str]]:
        """(check id, status) of every non-INFO check: what must match between direct and gateway."""
        return Counter((check, status) for check, status, _ in self.checks if status != "INFO")

    def count(self, status: str) -> int:
        return sum(1 for _, s, _ in self.checks if s == status)

    def failures(self) -> list[str]:
        return [f"{check}: {message}" for check, status, message in self.checks if status == "FAILURE"]

    def warnings(self) -> list[str]:
        return sorted({check for check, status, _ in self.checks if status == "WARNING"})


@dataclass(frozen=True)
class SuiteRun:
    url: str
    returncode: int
    output: str
    results: dict[str, ScenarioResult]


def parse_results(out_dir: Path) -> dict[str, ScenarioResult]:
    """The suite writes one `server-<scenario>-<timestamp>/checks.json` per scenario."""
    results: dict[str, ScenarioResult] = {}
    for checks_file in sorted(out_dir.glob("*/checks.json")):
        match = _RESULT_DIR.match(checks_file.parent.name)
        if match is None:
            continue
        checks = json.loads(checks_file.read_text())
        results[match["scenario"]] = ScenarioResult(match["scenario"], tuple(
            (c.get("id", "?"), c.get("status", "?"), c.get("errorMessage") or "") for c in checks))
    return results


def start_suite(suite: Suite, url: str, out_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(suite.command(url, out_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True, cwd=out_dir)


def finish_suite(process: subprocess.Popen[str], url: str, out_dir: Path) -> SuiteRun:
    try:
        output, _ = process.communicate(timeout=SUITE_TIMEOUT)
    except subprocess.TimeoutExpired:
        stop_process(process)
        output, _ = process.communicate()
        output += f"\n[conformance suite killed after {SUITE_TIMEOUT:.0f}s]"
    return SuiteRun(url=url, returncode=process.returncode, output=output, results=parse_results(out_dir))


def run_suites(suite: Suite, urls: dict[str, str], work_dir: Path) -> dict[str, SuiteRun]:
    """Run the suite against every URL at once (they are separate servers); {label: run}."""
    started = {}
    for label, url in urls.items():
        out_dir = work_dir / label
        out_dir.mkdir(parents=True, exist_ok=True)
        started[label] = (start_suite(suite, url, out_dir), url, out_dir)
    try:
        return {label: finish_suite(process, url, out_dir) for label, (process, url, out_dir) in started.items()}
    finally:
        for process, _, _ in started.values():
            stop_process(process)


# --- the reference server --------------------------------------------------------------------------------

@contextlib.contextmanager
def reference_server() -> Iterator[str]:
    """reference_server.py on a free 127.0.0.1 port; yields its MCP URL."""
    with run_server_process([sys.executable, str(HERE / "reference_server.py")], cwd=HERE,
                            env={"LOG_LEVEL": "warning"}) as server:
        yield server.url


async def _list_tools(url: str) -> list[dict[str, Any]]:
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(url) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        return [tool.model_dump(by_alias=True, mode="json", exclude_none=True) for tool in listed.tools]


def side_effect_of(tool: dict[str, Any]) -> str:
    """What the server's annotations say; a tool that says nothing is taken to write."""
    hints = tool.get("annotations") or {}
    if hints.get("destructiveHint"):
        return "destructive"
    return "read" if hints.get("readOnlyHint") else "write"


def policy_for(tools: list[dict[str, Any]]) -> PolicyDocument:
    """Every listed tool declared; one grant allowing every side effect at high trust; one live session."""
    server = MCPServer.model_validate({
        "metadata": {"name": SERVER, "namespace": NAMESPACE},
        "spec": {"image": "conformance/reference", "teamID": TEAM,
                 "tools": [{"name": t["name"], "sideEffect": side_effect_of(t)} for t in tools],
                 "policy": {"mode": "allow-list", "defaultDecision": "deny"}, "session": {"required": True}},
    })
    grant = MCPAccessGrant.model_validate({
        "metadata": {"name": "g-conformance-all", "namespace": NAMESPACE},
        "spec": {"serverRef": {"name": SERVER}, "subject": {"agentID": AGENT, "teamID": CALLER_TEAM},
                 "maxTrust": "high", "allowedSideEffects": ["read", "write", "destructive"]},
    })
    session = MCPAgentSession.model_validate({
        "metadata": {"name": SESSION, "namespace": NAMESPACE},
        "spec": {"serverRef": {"name": SERVER},
                 "subject": {"agentID": AGENT, "teamID": CALLER_TEAM, "humanID": HUMAN},
                 "consentedTrust": "high", "expiresAt": (datetime.now(UTC) + timedelta(hours=1)).isoformat()},
    })
    return compile_policy(server, [grant], [session])


def session_token(keyring: KeyRing) -> str:
    now = datetime.now(UTC)
    return issue_session_token(keyring, SessionClaims(
        session_id=SESSION, namespace=NAMESPACE, server=SERVER, human_id=HUMAN, agent_id=AGENT,
        team_id=CALLER_TEAM, trust="high", expires_at=now + timedelta(hours=1), issued_at=now - timedelta(seconds=5)))


@dataclass(frozen=True)
class Governed:
    url: str  # what the suite talks to: the bearer-injecting hop
    gateway_url: str
    policy: PolicyDocument
    tools: list[str]  # what the upstream's tools/list named
    gateway_log: Path


def _cli_env() -> dict[str, str]:
    """This checkout's src first on the path, as tests/conftest.py's run_cli does."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


OAUTH_ISSUER = "https://platform.example.com/api/v1/oauth"


@contextlib.contextmanager
def run_gateway(upstream_url: str, policy: PolicyDocument, keyring: KeyRing, work_dir: Path,
                startup_timeout: float = 30.0) -> Iterator[tuple[str, Path]]:
    """`mcp-runtime gateway run` (the sidecar entrypoint) with policy and JWKS files; yields (URL, log)."""
    policy_file, jwks_file, log_path = work_dir / "policy.json", work_dir / "jwks.json", work_dir / "gateway.log"
    policy_file.write_bytes(policy.to_json())
    jwks_file.write_text(json.dumps(keyring.jwks()))
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mcp_runtime", "gateway", "run", "--upstream", upstream_url,
             "--policy-file", str(policy_file), "--jwks-file", str(jwks_file), "--listen", f"127.0.0.1:{port}",
             # as a sidecar is rendered: an OAuth protected resource (metadata, challenges, its own origin)
             "--resource-url", f"http://127.0.0.1:{port}/mcp", "--authorization-server", OAUTH_ISSUER,
             "--log-level", "warning"],
            env=_cli_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + startup_timeout
        with httpx.Client(timeout=1.0) as client:
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the gateway did not become ready:\n{log_path.read_text()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(base + "/readyz").status_code == 200:
                        break
                time.sleep(0.05)
        yield base + "/mcp", log_path
    finally:
        stop_process(process)


class BearerInjector:
    """A transparent reverse proxy that adds `Authorization: Bearer <token>` and changes nothing else.

    It stands in for what an agent's MCP client does with the token the adapter gives it. Host, Origin
    and every other header go through as the suite sent them, so the gateway sees exactly that request.
    """

    _HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade",
            b"proxy-connection", b"content-length", b"authorization"}

    def __init__(self, target: str, token: str) -> None:
        self.target = target.rstrip("/")  # scheme://host:port; the request's path is appended as it came
        self.token = token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in self._HOP]
        headers.append((b"authorization", b"Bearer " + self.token.encode()))
        url = self.target + scope["raw_path"].decode()
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None)) as client:
            request = client.build_request(scope["method"], url, headers=headers, content=body)
            response = await client.send(request, stream=True)
            try:
                await send({"type": "http.response.start", "status": response.status_code,
                            "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in self._HOP]})
                async with anyio.create_task_group() as tasks:
                    async def watch_disconnect() -> None:
                        while (await receive())["type"] != "http.disconnect":
                            pass
                        tasks.cancel_scope.cancel()

                    tasks.start_soon(watch_disconnect)
                    with contextlib.suppress(httpx.TransportError):  # the gateway ended a stream abruptly
                        async for chunk in response.aiter_raw():
                            await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b""})
                    tasks.cancel_scope.cancel()
            finally:
                await response.aclose()


@contextlib.contextmanager
def governed(upstream_url: str) -> Iterator[Governed]:
    """The real gateway in front of `upstream_url`, and the bearer hop in front of the gateway."""
    tools = anyio.run(_list_tools, upstream_url)
    policy = policy_for(tools)
    keyring = KeyRing.generate()
    with tempfile.TemporaryDirectory(prefix="conformance-gateway-") as tmp, \
            run_gateway(upstream_url, policy, keyring, Path(tmp)) as (gateway_url, log), \
            serve_app(BearerInjector(gateway_url.removesuffix("/mcp"), session_token(keyring))) as hop:
        yield Governed(url=hop + "/mcp", gateway_url=gateway_url, policy=policy,
                       tools=[t["name"] for t in tools], gateway_log=log)


# --- expected results and the summary ----------------------------------------------------------------------

def load_expected() -> dict[str, Any]:
    return json.loads(EXPECTED_FILE.read_text())


def expected_document(direct: dict[str, ScenarioResult]) -> dict[str, Any]:
    """What expected.json holds: each scenario's result directly against the reference server."""
    return {
        "suite": f"@modelcontextprotocol/conformance@{CONFORMANCE_VERSION} server --suite all",
        "server": "tests/conformance/reference_server.py",
        "scenarios": {name: "pass" if r.passed else "fail" for name, r in sorted(direct.items())},
        "warnings": {name: r.warnings() for name, r in sorted(direct.items()) if r.warnings()},
    }


def summary_table(direct: dict[str, ScenarioResult], gateway: dict[str, ScenarioResult] | None,
                  expected: dict[str, str]) -> str:
    """scenario | direct | gateway | expected, each cell 'pass'/'FAIL' with check counts (no gateway: no column)."""
    def cell(result: ScenarioResult | None) -> str:
        if result is None:
            return "missing"
        verdict = "pass" if result.passed else "FAIL"
        return f"{verdict} {result.count('SUCCESS')}/{result.count('FAILURE')}/{result.count('WARNING')}"

    names = sorted(set(direct) | set(gateway or {}) | set(expected))
    width = max(len(n) for n in names)
    middle = f"{'gateway':<14}" if gateway is not None else ""
    lines = [f"{'scenario':<{width}}  {'direct':<14}{middle}expected",
             f"{'':<{width}}  (pass|FAIL success/failure/warning checks)"]
    for n in names:
        middle = f"{cell(gateway.get(n)):<14}" if gateway is not None else ""
        lines.append(f"{n:<{width}}  {cell(direct.get(n)):<14}{middle}{expected.get(n, '-')}")

    def tally(results: dict[str, ScenarioResult]) -> str:
        passed = sum(r.passed for r in results.values())
        return f"{passed} pass, {len(results) - passed} fail"

    total = f"direct {tally(direct)}" + (f"; gateway {tally(gateway)}" if gateway is not None else "")
    lines.append(f"{'total':<{width}}  {total}")
    return "\n".join(lines)
