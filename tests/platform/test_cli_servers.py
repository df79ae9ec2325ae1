"""`server deploy|list|get|status|delete|logs|policy inspect` and `status`, run as a user would.

A live platform API (SQLite) serves; the CLI runs as a subprocess with its config in a temp dir.
The runtime is absent at first (logs are unavailable), then a RecordingRuntime is attached: it
refuses servers without a run command and serves log lines the test sets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from platform_support import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    LivePlatform,
    RecordingRuntime,
    free_port,
    platform_settings,
    serve_platform,
)

from mcp_runtime.platform.hooks import NoRuntime
from mcp_runtime.resources import MCPServerStatus, ServerPhase
from mcp_runtime.store.sql import sqlite_url

ACME = "mcp-team-acme"
Run = Callable[..., Any]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePlatform]:
    data = tmp_path_factory.mktemp("cli-servers")
    with serve_platform(platform_settings(data, sqlite_url(data))) as live:
        yield live


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-servers-home")


@pytest.fixture
def run(cli: Run, home: Path) -> Run:
    """Run the CLI in `cwd` (default: home) as `profile`; `ok=False` expects a one-line failure (exit 1)."""
    def invoke(*args: str, profile: str = "alice", cwd: Path | None = None, ok: bool = True,
               config_dir: Path | None = None) -> Any:
        env = {"MCP_RUNTIME_CONFIG_DIR": str(config_dir or home / "config"), "MCP_PLATFORM_API_PROFILE": profile,
               "MCP_PLATFORM_API_URL": ""}
        result = cli(list(args), env=env, cwd=cwd or home)
        if ok:
            assert result.returncode == 0, f"{args}: {result.stdout}{result.stderr}"
        else:
            assert result.returncode == 1, f"{args} should fail: {result.stdout}{result.stderr}"
            assert "Traceback" not in result.stderr
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        return result
    return invoke


@pytest.fixture
def people(api: LivePlatform, run: Run, home: Path) -> None:
    """Admin creates acme (alice owner) and globex (bob member); everyone has a profile. Once per module."""
    done = home / "people-created"
    if done.exists():
        return
    run("auth", "login", "--api-url", api.url, "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD,
        "--profile", "admin", profile="")
    run("team", "create", "acme", "--name", "Acme Corp", profile="admin")
    run("team", "create", "globex", profile="admin")
    for team, email, password, role in (("acme", "alice@acme.com", "alice123", "owner"),
                                        ("globex", "bob@globex.com", "bob456", "member")):
        run("team", "user", "create", team, "--username", email, "--password", password, "--role", role,
            profile="admin")
        run("auth", "login", "--api-url", api.url, "--email", email, "--password", password,
            "--profile", email.split("@")[0], profile="")
    done.touch()


@pytest.fixture
def runtime(api: LivePlatform) -> Iterator[RecordingRuntime]:
    recording = RecordingRuntime()
    api.platform.set_runtime(recording)
    try:
        yield recording
    finally:
        api.platform.set_runtime(NoRuntime())


def project(tmp_path: Path, run: Run, name: str, *specs: str) -> Path:
    """A directory with .mcp/servers.yaml for `name`, written by `server init`."""
    directory = tmp_path / name
    directory.mkdir()
    args = ["server", "init", name, "--tool", "echo", "--tool", "add"]
    for spec in specs:
        args += ["--tool-spec", spec]
    run(*args, cwd=directory)
    return directory


def test_deploy_list_get_and_policy(api: LivePlatform, run: Run, people: None, tmp_path: Path) -> None:
    app = project(tmp_path, run, "payments", "refund:high:destructive")
    out = run("server", "deploy", "payments", "--scope", "tenant", cwd=app).stdout
    assert f"Deployed server payments to namespace {ACME} (Pending)" in out
    assert f"URL: {api.url}/payments/mcp" in out
    assert f"Next: mcp-runtime server status payments --namespace {ACME}" in out

    again = run("server", "deploy", "payments", "--scope", "tenant", cwd=app, ok=False)
    assert again.stderr.strip() == (f"error: server payments already exists in namespace {ACME} "
                                    "(use --update to redeploy it)")
    assert "Redeployed server payments" in run("server", "deploy", "payments", "--update", cwd=app).stdout

    api.platform.servers.set_status(ACME, "payments", MCPServerStatus(
        phase=ServerPhase.ready, message="answering", url="/payments/mcp", ready_replicas=1))
    listed = run("server", "list").stdout
    assert re.search(r"^NAME\s+NAMESPACE\s+READY\s+STATUS\s+URL", listed, re.M), listed
    assert re.search(rf"^payments\s+{ACME}\s+1/1\s+Ready\s+{re.escape(api.url)}/payments/mcp", listed, re.M)
    items = json.loads(run("server", "list", "-o", "json").stdout)
    assert [(s["metadata"]["name"], s["status"]["phase"]) for s in items] == [("payments", "Ready")]
    assert run("server", "list", "--namespace", "mcp-team-globex").stdout.strip() == "No servers."

    shown = run("server", "get", "payments").stdout
    assert re.search(rf"^Namespace:\s+{ACME}$", shown, re.M) and re.search(r"^Status:\s+Ready \(answering\)", shown,
                                                                          re.M)
    # a destructive tool waits for its caller's approval by default (docs/approvals.md)
    assert re.search(r"^refund\s+high\s+destructive\s+caller", shown, re.M)
    assert re.search(r"^echo\s+low\s+read\s+-", shown, re.M)
    resource = yaml.safe_load(run("server", "get", "payments", "-o", "yaml").stdout)
    assert resource["kind"] == "MCPServer" and resource["metadata"]["generation"] == 1
    assert [t["name"] for t in resource["spec"]["tools"]] == ["echo", "add", "refund"]

    document = json.loads(run("server", "policy", "inspect", "payments", "-o", "json").stdout)
    assert document["server"] == {"name": "payments", "namespace": ACME,
                                  "teamID": resource["spec"]["teamID"]}
    policy = run("server", "policy", "inspect", "payments", "--namespace", ACME).stdout
    assert re.search(rf"^Revision:\s+{document['revision']}$", policy, re.M)
    assert re.search(r"^refund\s+high\s+destructive", policy, re.M)
    assert "Grants: none" in policy and "Sessions: none" in policy

    # a grant shows up in the compiled document
    grant = tmp_path / "grant.yaml"
    run("access", "grant", "init", "payments-bob", "--server", "payments", "--namespace", ACME, "--human-id",
        "bob@globex.com", "--tool", "echo", "--output", str(grant))
    run("access", "grant", "apply", "--file", str(grant))
    policy = run("server", "policy", "inspect", "payments").stdout
    assert re.search(r"^payments-bob\s+bob@globex.com\s+-\s+-\s+low\s+any\s+echo\s+no", policy, re.M), policy

    # bob (granted) sees the server and its status, but not its logs; status counts what he sees
    assert re.search(rf"^payments\s+{ACME}\s+1/1\s+Ready", run("server", "list", profile="bob").stdout, re.M)
    platform = run("status", profile="bob").stdout
    assert re.search(r"^Servers:\s+1 \(Ready 1\)$", platform, re.M)
    denied = run("server", "logs", "payments", profile="bob", ok=False).stderr
    assert denied.startswith("error: you cannot read the logs of server payments")


def test_status_logs_and_delete(api: LivePlatform, run: Run, people: None, tmp_path: Path) -> None:
    app = project(tmp_path, run, "ledger")
    run("server", "deploy", "ledger", cwd=app)
    no_logs = run("server", "logs", "ledger", ok=False).stderr
    assert no_logs.startswith("error: no runtime runs servers on this platform")

    api.platform.servers.set_status(ACME, "ledger", MCPServerStatus(
        phase=ServerPhase.error, message="exited with code 1: ModuleNotFoundError: No module named 'flask'"))
    table = run("server", "status", "--namespace", ACME).stdout
    assert re.search(rf"^ledger\s+{ACME}\s+0/1\s+Error\s+exited with code 1", table, re.M), table
    one = run("server", "status", "ledger").stdout
    assert re.search(r"^Status:\s+Error$", one, re.M)
    assert "phase Error: exited with code 1" in one and "deployed (generation 1)" in one
    detail = json.loads(run("server", "status", "ledger", "-o", "json").stdout)
    assert detail["phase"] == "Error" and [e["action"] for e in detail["events"]] == ["create", "status"]

    platform = run("status", profile="admin").stdout
    assert re.search(rf"^Platform:\s+{re.escape(api.url)}$", platform, re.M)
    assert re.search(r"^Health:\s+ok \(version ", platform, re.M)
    assert re.search(r"^Runtime:\s+none$", platform, re.M) and re.search(r"^Store:\s+sqlite$", platform, re.M)
    assert re.search(r"^Servers:\s+\d+ \(.*Error 1", platform, re.M)
    assert json.loads(run("status", "-o", "json", profile="admin").stdout)["store"] == "sqlite"

    refused = run("server", "delete", "ledger", ok=False).stderr
    assert "without confirmation" in refused and "--yes" in refused
    assert run("server", "delete", "ledger", "--yes").stdout.strip() == f"server ledger deleted from {ACME}"
    assert "ledger" not in run("server", "list").stdout
    gone = run("server", "get", "ledger", ok=False).stderr
    assert gone.strip() == "error: server ledger not found (or not visible to you) (mcp-runtime server list)"


def test_deploy_with_run_through_a_runtime_that_checks(api: LivePlatform, run: Run, people: None, tmp_path: Path,
                                                      runtime: RecordingRuntime) -> None:
    app = project(tmp_path, run, "runner")
    refused = run("server", "deploy", "runner", cwd=app, ok=False).stderr
    assert refused.startswith("error: server runner has no run command: the process runtime starts servers")
    assert runtime.events == []

    run("server", "deploy", "runner", "--run", "python app.py", cwd=app)
    stored = json.loads(run("server", "get", "runner", "-o", "json").stdout)
    assert stored["spec"]["run"] == {"command": "python app.py", "workingDir": str(app.resolve())}
    assert runtime.events == [("created", ACME, "runner")]

    runtime.lines[(ACME, "runner")] = [f"line {i}" for i in range(5)]
    runtime.followed[(ACME, "runner")] = ["more 1", "more 2"]
    assert run("server", "logs", "runner", "--tail", "2").stdout.splitlines() == ["line 3", "line 4"]
    followed = run("server", "logs", "runner", "--tail", "1", "--follow").stdout.splitlines()
    assert followed == ["line 4", "more 1", "more 2"]

    # the only entry of a metadata dir lends its inventory to another runtime name
    copy = run("server", "deploy", "runner-b", "--run", "python app.py", cwd=app)
    assert "using the tool inventory of 'runner'" in copy.stderr
    other = json.loads(run("server", "get", "runner-b", "-o", "json").stdout)
    assert [t["name"] for t in other["spec"]["tools"]] == ["echo", "add"]
    assert other["spec"]["ingressPath"] == "/runner-b/mcp"


def test_names_resolve_across_namespaces(api: LivePlatform, run: Run, people: None, tmp_path: Path) -> None:
    app = project(tmp_path, run, "shared")
    run("server", "deploy", "shared", cwd=app)
    org = tmp_path / "org"
    org.mkdir()
    (org / ".mcp").mkdir()
    (org / ".mcp" / "servers.yaml").write_text(yaml.safe_dump({"version": "v1", "servers": [
        {"name": "shared", "scope": "org", "route": "/shared-org", "tools": [{"name": "echo", "sideEffect": "read"}]}
    ]}))
    out = run("server", "deploy", "shared", profile="admin", cwd=org).stdout
    assert "to namespace mcp-servers-org" in out
    ambiguous = run("server", "get", "shared", profile="admin", ok=False).stderr
    assert ambiguous.strip() == ("error: server shared exists in several namespaces: mcp-servers-org, "
                                 f"{ACME} (pass --namespace, e.g. --namespace mcp-servers-org)")
    assert "shared" in run("server", "get", "shared", "-n", ACME, profile="admin").stdout
    # alice sees only hers (and the org catalog): for her the name is ambiguous too
    assert "several namespaces" in run("server", "get", "shared", ok=False).stderr


def test_clear_errors_without_login_or_platform(run: Run, people: None, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh-config"
    missing = run("server", "list", profile="", config_dir=fresh, ok=False).stderr
    assert missing.startswith("error: not logged in (run: mcp-runtime auth login")
    assert run("status", profile="", config_dir=fresh, ok=False).stderr.startswith("error: not logged in")

    dead = f"http://127.0.0.1:{free_port()}"
    config = fresh / "config.json"
    fresh.mkdir()
    config.write_text(json.dumps({"current": "gone", "profiles": {"gone": {"apiUrl": dead, "apiKey": "mcpr_x"}}}))
    unreachable = run("status", profile="", config_dir=fresh, ok=False).stderr
    assert unreachable.startswith(f"error: cannot reach the platform API at {dead}")
    no_metadata = run("server", "deploy", "nothing", cwd=tmp_path, ok=False).stderr
    assert no_metadata.startswith("error: no metadata at .mcp/servers.yaml")
