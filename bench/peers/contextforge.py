"""ContextForge (IBM's MCP gateway, PyPI `mcp-contextforge-gateway`) as a peer in the gateway benchmark.

    .venv/bin/python bench/peers/contextforge.py install     # once; prints where it went
    .venv/bin/python bench/gateway_overhead.py --scenarios gateway contextforge contextforge-stateful

Installed from PyPI into its own virtualenv outside the repository (`~/.cache/mcp-runtime-bench/peers/
contextforge-<version>`, or under $BENCH_PEERS_CACHE), on a Python 3.12 interpreter (1.1.0 needs one;
see `python312`). Nothing of it is committed. For each upstream the scenario starts one ContextForge
process (uvicorn, one worker, its own SQLite database in the run's scratch directory) and sets it up
through its REST API the way an operator would, so that every call passes its checks:

- the platform admin (from env, random strong password) logs in, creates a private team, registers
  the upstream as a Streamable HTTP gateway owned by that team (`visibility: team`) and a virtual
  server exposing its `echo` tool, which ContextForge prefixes (`<gateway>-echo`);
- a non-admin user is created, added to the team and given the team-scoped `developer` role
  (the role that carries `tools.execute`; a plain member gets `viewer` and is refused);
- that user creates a team-scoped API token, and the load calls `tools/call <gateway>-echo` at
  `/v1/virtual-servers/<id>/mcp` with it: token check, team scoping and the RBAC role check on every call.

Settings left at ContextForge's defaults except: loopback upstreams allowed (SSRF_ALLOW_LOCALHOST,
else it refuses to register 127.0.0.1), the admin UI off, and the per-user rate limit for MCP calls
(100/min by default) raised so the load is measured rather than refused. `contextforge` runs its
default stateless mode (a fresh upstream MCP session per call); `contextforge-stateful` sets
USE_STATEFUL_SESSIONS=true.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import free_port, process
from scenarios import Context, RunningUpstream, Scenario, Target

PACKAGE = "mcp-contextforge-gateway"
VERSION = os.environ.get("CONTEXTFORGE_VERSION", "1.1.0")
CACHE = Path(os.environ.get("BENCH_PEERS_CACHE", Path.home() / ".cache" / "mcp-runtime-bench" / "peers"))


def python312() -> str:
    """A Python 3.12 interpreter: $BENCH_PYTHON312, `python3.12` on PATH, or a pyenv-installed 3.12.

    Debian 12 ships 3.11 only, and `pyenv install` / `uv python install` download from hosts this
    machine cannot reach; a 3.12 that is already on the machine (pyenv's versions directory) is used.
    """
    candidates = [os.environ.get("BENCH_PYTHON312", ""), shutil.which("python3.12") or ""]
    candidates += sorted(glob.glob(str(Path.home() / ".pyenv" / "versions" / "3.12*" / "bin" / "python3.12")),
                         reverse=True)
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys, ssl, sqlite3; print(sys.version_info[:2])"],
                               capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 12)":
            return candidate
    raise SystemExit(f"ContextForge {VERSION} needs Python 3.12 and none was found: set BENCH_PYTHON312 to a "
                     "python3.12 (with ssl and sqlite3), or install one with pyenv.")


def install() -> Path:
    """The virtualenv holding ContextForge `VERSION`, created and filled on first use."""
    venv = CACHE / f"contextforge-{VERSION}"
    if (venv / "bin" / "mcpgateway").exists():
        return venv
    interpreter = python312()
    print(f"installing {PACKAGE}=={VERSION} into {venv} (Python {interpreter}) ...", flush=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([interpreter, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"{PACKAGE}=={VERSION}"], check=True)
    return venv


def _password() -> str:
    """Strong enough for ContextForge's checks (length, classes, not derived from the user name)."""
    return f"Cf-{secrets.token_urlsafe(18)}-9z!"


def _ok(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code >= 300:
        raise RuntimeError(f"ContextForge {what}: {response.status_code} {response.text[:500]}")
    return response


def _configure(base: str, admin_email: str, admin_password: str, up: RunningUpstream) -> tuple[str, str, str]:
    """Team, gateway, virtual server, non-admin developer and their API token; returns (url, token, tool)."""
    gateway_name = f"bench-{up.upstream.name}"
    agent_email, agent_password = "agent@bench.example.com", _password()
    with httpx.Client(base_url=base, timeout=120) as client:
        login = _ok(client.post("/auth/email/login", json={"email": admin_email, "password": admin_password}),
                    "admin login").json()
        admin = {"Authorization": f"Bearer {login['access_token']}"}
        team = _ok(client.post("/teams/", headers=admin, json={"name": "bench-team", "visibility": "private"}),
                   "create team").json()["id"]
        _ok(client.post("/auth/email/admin/users", headers=admin, json={
            "email": agent_email, "password": agent_password, "full_name": "Bench Agent", "is_admin": False}),
            "create user")
        _ok(client.post(f"/teams/{team}/members", headers=admin, json={"email": agent_email, "role": "member"}),
            "add team member")
        roles = _ok(client.get("/rbac/roles", headers=admin), "list roles").json()
        developer = next(r["id"] for r in roles if r["name"] == "developer" and r["scope"] == "team")
        _ok(client.post(f"/rbac/users/{agent_email}/roles", headers=admin,
                        json={"role_id": developer, "scope": "team", "scope_id": team}), "assign developer role")
        gateway = _ok(client.post("/gateways", headers=admin, json={
            "name": gateway_name, "url": up.url, "transport": "STREAMABLEHTTP", "visibility": "team",
            "team_id": team}), "register gateway").json()["id"]
        tools = _ok(client.get("/tools", headers=admin), "list tools").json()
        tool = next(t for t in tools if t.get("gatewayId") == gateway and t.get("originalName") == "echo")
        server = _ok(client.post("/servers", headers=admin, json={
            "server": {"name": f"bench-vs-{up.upstream.name}", "associated_tools": [tool["id"]]},
            "team_id": team, "visibility": "team"}), "create virtual server").json()["id"]
        agent_login = _ok(client.post("/auth/email/login", json={"email": agent_email, "password": agent_password}),
                          "agent login").json()
        token = _ok(client.post("/tokens", headers={"Authorization": f"Bearer {agent_login['access_token']}"},
                                json={"name": "bench-agent", "team_id": team, "expires_in_days": 1}),
                    "create agent token").json()["access_token"]
    return f"{base}/v1/virtual-servers/{server}/mcp", token, tool["name"]


@contextlib.contextmanager
def _contextforge(up: RunningUpstream, ctx: Context, *, stateful: bool) -> Iterator[Target]:
    venv = install()
    port = free_port()
    data = ctx.workdir / f"contextforge-{up.upstream.name}-{'stateful' if stateful else 'default'}"
    shutil.rmtree(data, ignore_errors=True)  # a fresh database each time (a kept --keep dir is reused)
    data.mkdir(parents=True)
    admin_email, admin_password = "admin@bench.example.com", _password()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(data),
        "HOST": "127.0.0.1", "PORT": str(port), "DATABASE_URL": f"sqlite:///{data}/contextforge.db",
        "JWT_SECRET_KEY": secrets.token_urlsafe(48), "AUTH_ENCRYPTION_SECRET": secrets.token_urlsafe(48),
        "PLATFORM_ADMIN_EMAIL": admin_email, "PLATFORM_ADMIN_PASSWORD": admin_password,
        "DEFAULT_USER_PASSWORD": _password(), "BASIC_AUTH_PASSWORD": _password(),
        "MCPGATEWAY_UI_ENABLED": "false", "SSRF_ALLOW_LOCALHOST": "true",
        "RATE_LIMIT_MEDIUM_RPM": "10000000", "RATE_LIMIT_MEDIUM_BURST": "100000",
        "USE_STATEFUL_SESSIONS": "true" if stateful else "false",
    }
    argv = [str(venv / "bin" / "mcpgateway"), "--host", "127.0.0.1", "--port", str(port)]
    with process(argv, f"http://127.0.0.1:{port}/health", env=env, cwd=data, ready_status=200, timeout=600,
                 log=data / "contextforge.log") as proc:
        url, token, tool = _configure(f"http://127.0.0.1:{port}", admin_email, admin_password, up)
        yield Target(url=url, headers={"Authorization": f"Bearer {token}"}, pid=proc.pid, tool=tool)


@contextlib.contextmanager
def contextforge(up: RunningUpstream, ctx: Context) -> Iterator[Target]:
    with _contextforge(up, ctx, stateful=False) as target:
        yield target


@contextlib.contextmanager
def contextforge_stateful(up: RunningUpstream, ctx: Context) -> Iterator[Target]:
    with _contextforge(up, ctx, stateful=True) as target:
        yield target


SCENARIOS = {
    "contextforge": Scenario("contextforge", f"ContextForge {VERSION}, defaults (stateless), team member with "
                             "the developer role, team-scoped API token", contextforge, min_duration=10),
    "contextforge-stateful": Scenario("contextforge-stateful", f"ContextForge {VERSION} with "
                                      "USE_STATEFUL_SESSIONS=true, same user and token", contextforge_stateful,
                                      min_duration=10),
}


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        raise SystemExit(__doc__)
    print(install())
