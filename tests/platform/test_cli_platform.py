"""The multi-team tutorial's auth, team and access commands, run as a user would against a live API."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from platform_support import ADMIN_EMAIL, ADMIN_PASSWORD, LivePlatform, deploy_body, platform_settings, serve_platform

from mcp_runtime.store.sql import sqlite_url

Cli = Callable[..., Any]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    data = tmp_path_factory.mktemp("cli-platform")
    with serve_platform(platform_settings(data, sqlite_url(data))) as live:
        yield live


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-home")


@pytest.fixture
def run(cli: Cli, home: Path) -> Callable[..., Any]:
    """Run the CLI with its config in a private directory; `profile=` sets MCP_PLATFORM_API_PROFILE."""
    def invoke(*args: str, profile: str | None = None, input: str | None = None, ok: bool = True,
               config_dir: Path | None = None) -> Any:
        env = {"MCP_RUNTIME_CONFIG_DIR": str(config_dir or home / "config"), "MCP_PLATFORM_API_PROFILE": ""}
        if profile:
            env["MCP_PLATFORM_API_PROFILE"] = profile
        result = cli(list(args), env=env, input=input, cwd=home)
        if ok:
            assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
        return result
    return invoke


def _config(home: Path) -> dict[str, Any]:
    return json.loads((home / "config" / "config.json").read_text())  # type: ignore[no-any-return]


def test_tutorial_auth_team_and_access(api: LivePlatform, run: Callable[..., Any], home: Path) -> None:
    url = api.url
    # Step 1: two teams, as admin
    run("auth", "login", "--api-url", url, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD, "--profile", "admin")
    config_file = home / "config" / "config.json"
    assert stat.S_IMODE(os.stat(config_file).st_mode) == 0o600
    run("team", "create", "acme", "--name", "Acme Corp", profile="admin")
    run("team", "user", "create", "acme", "--username", "alice@acme.com", "--password", "alice123", "--role",
        "owner", profile="admin")
    run("team", "create", "globex", "--name", "Globex Corp", profile="admin")
    run("team", "user", "create", "globex", "--username", "bob@globex.com", "--password", "bob456", "--role",
        "member", profile="admin")
    table = run("team", "list", profile="admin").stdout
    teams = {t["slug"]: t for t in json.loads(run("team", "list", "-o", "json", profile="admin").stdout)}
    globex_id = teams["globex"]["id"]
    assert "globex" in table and "Globex Corp" in table and "mcp-team-globex" in table and globex_id in table
    assert "bob@globex.com" in run("team", "user", "list", "globex", profile="admin").stdout

    # Step 2: alice logs in and deploys payments (the server commands are another group: use the API)
    run("auth", "login", "--api-url", url, "--email", "alice@acme.com", "--password", "alice123", "--profile", "alice")
    run("auth", "use", "alice")
    status = run("auth", "status").stdout
    assert "alice@acme.com" in status and "acme" in status
    alice = api.login("alice@acme.com", "alice123")["accessToken"]
    assert api.call("POST", "/runtime/servers", token=alice, json=deploy_body("payments")).status_code == 201

    # Step 4: alice grants Globex's cursor agent echo and add
    grant = {"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAccessGrant",
             "metadata": {"name": "payments-to-globex", "namespace": "mcp-team-acme"},
             "spec": {"serverRef": {"name": "payments", "namespace": "mcp-team-acme"},
                      "subject": {"teamID": globex_id, "agentID": "cursor"},
                      "maxTrust": "low", "toolRules": [{"name": "echo", "decision": "allow"},
                                                      {"name": "add", "decision": "allow"}]}}
    (home / "grant-cross.yaml").write_text(yaml.safe_dump(grant))
    assert "created" in run("access", "grant", "apply", "--file", "grant-cross.yaml").stdout
    assert "updated" in run("access", "grant", "apply", "--file", "grant-cross.yaml").stdout
    listed = run("access", "grant", "list", "--namespace", "mcp-team-acme").stdout
    assert "payments-to-globex" in listed and "Active" in listed and "echo, add" in listed
    grants = json.loads(run("access", "grant", "list", "-o", "json").stdout)
    assert [g["spec"]["subject"]["teamID"] for g in grants] == [globex_id]
    got = yaml.safe_load(run("access", "grant", "get", "payments-to-globex", "-o", "yaml").stdout)
    assert got["metadata"]["namespace"] == "mcp-team-acme"

    # Step 5: admin creates a session for Globex's agent
    run("auth", "use", "admin")
    session = {"apiVersion": "mcpruntime.org/v1alpha1", "kind": "MCPAgentSession",
               "metadata": {"name": "globex-payments-session", "namespace": "mcp-team-acme"},
               "spec": {"serverRef": {"name": "payments", "namespace": "mcp-team-acme"},
                        "subject": {"teamID": globex_id, "agentID": "cursor"}, "consentedTrust": "low",
                        "expiresAt": "2099-01-01T04:00:00Z"}}
    (home / "session-cross.yaml").write_text(yaml.safe_dump(session))
    run("access", "session", "apply", "--file", "session-cross.yaml")
    assert "globex-payments-session" in run("access", "session", "list").stdout
    token = run("access", "session", "token", "globex-payments-session", "--namespace", "mcp-team-acme").stdout
    assert token.strip().count(".") == 2
    sessions = json.loads(run("access", "session", "list", "-o", "json").stdout)
    assert sessions[0]["spec"]["subject"]["teamID"] == globex_id
    run("access", "session", "revoke", "globex-payments-session", "--namespace", "mcp-team-acme")
    assert json.loads(run("access", "session", "get", "globex-payments-session", "-o", "json").stdout)[
        "status"]["phase"] == "Revoked"
    run("access", "session", "unrevoke", "globex-payments-session")

    # Step 6/7: bob sees the grant; explain agrees with the gateway; deleting the grant denies him
    run("auth", "login", "--api-url", url, "--email", "bob@globex.com", "--password", "bob456", "--profile", "bob")
    explain = ["access", "explain", "--server", "payments", "--namespace", "mcp-team-acme", "--tool", "echo",
               "--agent-id", "cursor", "--team-id", globex_id]
    assert run(*explain, profile="bob").stdout.startswith("ALLOW")
    assert "payments-to-globex" in run("access", "grant", "list", profile="bob").stdout
    denied = run("access", "grant", "delete", "payments-to-globex", "--namespace", "mcp-team-acme", profile="bob",
                 ok=False)
    assert denied.returncode == 1 and denied.stderr.count("\n") == 1 and "mcp-team-acme" in denied.stderr
    run("access", "grant", "delete", "payments-to-globex", "--namespace", "mcp-team-acme", profile="alice")
    # bob no longer sees Acme's server at all; alice asks on Globex's behalf
    assert run(*explain, profile="bob", ok=False).returncode == 1
    denied_now = run(*explain, "-o", "json", profile="alice", ok=False)
    verdict = json.loads(denied_now.stdout)
    assert denied_now.returncode == 1 and verdict["allowed"] is False and verdict["reason"] == "no_matching_grant"
    run("access", "grant", "apply", "--file", "grant-cross.yaml", profile="alice")
    assert run(*explain, profile="bob").stdout.startswith("ALLOW")


def test_expired_access_token_is_refreshed_on_its_own(api: LivePlatform, run: Callable[..., Any], home: Path) -> None:
    config_dir = home / "refresh"
    run("auth", "login", "--api-url", api.url, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD,
        config_dir=config_dir)
    path = config_dir / "config.json"
    data = json.loads(path.read_text())
    before = data["profiles"]["default"]["refreshToken"]
    data["profiles"]["default"]["accessExpiresAt"] = 0
    path.write_text(json.dumps(data))
    run("team", "list", config_dir=config_dir)
    after = json.loads(path.read_text())["profiles"]["default"]
    assert after["refreshToken"] != before and after["accessExpiresAt"] > 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    run("auth", "logout", config_dir=config_dir)
    assert json.loads(path.read_text())["profiles"] == {}
    # the refresh token was revoked on the platform too
    assert api.call("POST", "/auth/refresh", json={"refreshToken": after["refreshToken"]}).status_code == 401


def test_api_key_login_from_stdin(api: LivePlatform, run: Callable[..., Any], home: Path) -> None:
    admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD)["accessToken"]
    key = api.call("POST", "/user/api-keys", token=admin, json={"name": "ci"}).json()["key"]
    config_dir = home / "apikey"
    run("auth", "login", "--api-url", api.url, "--token-stdin", input=key + "\n", config_dir=config_dir)
    status = json.loads(run("auth", "status", "-o", "json", config_dir=config_dir).stdout)
    assert status["email"] == ADMIN_EMAIL and status["credential"] == "apiKey" and status["valid"] is True


def test_clear_errors(api: LivePlatform, run: Callable[..., Any], home: Path) -> None:
    empty = home / "nobody"
    missing = run("team", "list", ok=False, config_dir=empty)
    assert missing.returncode == 1 and "not logged in" in missing.stderr
    assert "mcp-runtime auth login --api-url" in missing.stderr and "Traceback" not in missing.stderr
    down = run("auth", "login", "--api-url", "http://127.0.0.1:9", "--email", "a@b.c", "--password", "x",
               ok=False, config_dir=empty)
    assert down.returncode == 1 and "http://127.0.0.1:9" in down.stderr and "Traceback" not in down.stderr
    wrong = run("auth", "login", "--api-url", api.url, "--email", ADMIN_EMAIL, "--password", "nope",
                ok=False, config_dir=empty)
    assert wrong.stderr.strip() == "error: email or password is wrong"
    unknown = run("auth", "use", "ghost", ok=False, config_dir=empty)
    assert "ghost" in unknown.stderr


def test_platform_serve_runs_the_api_on_a_sqlite_file(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    import httpx
    from platform_support import free_port

    port = free_port()
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "MCP_RUNTIME_ADMIN_PASSWORD": "serve-admin-pw"}
    env.pop("MCP_RUNTIME_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_runtime", "platform", "serve", "--data-dir", str(tmp_path / "data"),
         "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/api/v1"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        login = httpx.post(f"{url}/auth/login", json={"email": ADMIN_EMAIL, "password": "serve-admin-pw"})
        assert login.status_code == 200
        assert (tmp_path / "data" / "platform.db").is_file()
        site = url.removesuffix("/api/v1")
        assert httpx.get(f"{site}/").headers["location"] == "/analytics"  # the dashboard is served too
        assert "Sign in" in httpx.get(f"{site}/login").text
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_team_init_is_deprecated_and_creates_the_team(api: LivePlatform, run: Callable[..., Any],
                                                      home: Path) -> None:
    config_dir = home / "team-init"
    run("auth", "login", "--api-url", api.url, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD,
        config_dir=config_dir)
    done = run("team", "init", "initech", "--name", "Initech", "-o", "json", config_dir=config_dir)
    assert done.stderr.strip() == "Note: team init is deprecated. Use team create."
    team = json.loads(done.stdout)  # the note is on stderr: -o json stays parseable
    assert team["slug"] == "initech" and team["name"] == "Initech" and team["namespace"] == "mcp-team-initech"
    listed = {t["slug"]: t for t in json.loads(run("team", "list", "-o", "json", config_dir=config_dir).stdout)}
    assert listed["initech"]["id"] == team["id"]
    again = run("team", "init", "initech", ok=False, config_dir=config_dir)
    assert again.returncode == 1 and "initech" in again.stderr and "Traceback" not in again.stderr
    assert "Deprecated: use `team create`" in run("team", "--help", config_dir=config_dir).stdout
