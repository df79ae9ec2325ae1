"""The local scaffolding commands as a user runs them: server init/validate/generate, access grant init,
session init and explain. Every failure must be exit code 1 and one line that names what is wrong."""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mcp_runtime.cli.app import app
from mcp_runtime.resources import (
    MCPAccessGrant,
    MCPAgentSession,
    MCPServer,
    SideEffect,
    Trust,
    load_resource,
    load_servers_file,
)

runner = CliRunner()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert "Traceback" not in result.output
    return result


def assert_error(result, *fragments: str) -> str:
    """Exit code 1 and exactly one line on stderr, `error: ...`, containing every fragment."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("error: ")
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def mcp_dir(tmp_path: Path) -> Path:
    return tmp_path / ".mcp"


def servers(mcp_dir: Path):
    path = mcp_dir / "servers.yaml"
    return load_servers_file(path.read_text(), source=str(path))


def init_demo(mcp_dir: Path, *extra: str) -> None:
    result = run("server", "init", "demo", "--metadata-dir", str(mcp_dir), "--tool", "echo", "--tool", "add",
                 "--tool-spec", "create_task:medium:write", *extra)
    assert result.exit_code == 0, result.output


def write_metadata(mcp_dir: Path, text: str) -> Path:
    mcp_dir.mkdir(parents=True, exist_ok=True)
    path = mcp_dir / "servers.yaml"
    path.write_text(text)
    return path


# --- server init -----------------------------------------------------------------------------


def test_init_writes_tools_and_defaults_that_round_trip(mcp_dir: Path) -> None:
    result = run("server", "init", "payments", "--metadata-dir", str(mcp_dir), "--scope", "org",
                 "--tool", "list_invoices", "--tool-spec", "refund_invoice:high:destructive")
    assert result.exit_code == 0, result.output
    assert f"{mcp_dir / 'servers.yaml'}" in result.stdout
    assert "mcp-runtime server validate --metadata-dir" in result.stdout

    meta = servers(mcp_dir).get("payments")
    assert meta is not None and meta.scope == "org"
    tools = {t.name: t for t in meta.tools}
    assert (tools["list_invoices"].side_effect, tools["list_invoices"].required_trust) == (SideEffect.read, Trust.low)
    assert (tools["refund_invoice"].side_effect, tools["refund_invoice"].required_trust) == (
        SideEffect.destructive, Trust.high)
    assert meta.policy.mode == "allow-list" and meta.policy.default_decision == "deny"
    assert meta.session.required is True and meta.gateway.enabled is True
    raw = yaml.safe_load((mcp_dir / "servers.yaml").read_text())["servers"][0]
    assert raw["gateway"] == {"enabled": True}  # no platform-managed wiring
    assert "auth" not in raw


def test_init_default_scope_is_tenant_and_policy_flags_apply(mcp_dir: Path) -> None:
    result = run("server", "init", "svc", "--metadata-dir", str(mcp_dir), "--tool", "a",
                 "--policy-mode", "observe", "--default-decision", "allow", "--no-session-required",
                 "--description", "A test server.")
    assert result.exit_code == 0, result.output
    meta = servers(mcp_dir).get("svc")
    assert meta is not None
    assert meta.scope == "tenant"
    assert (meta.policy.mode, meta.policy.default_decision, meta.session.required) == ("observe", "allow", False)
    assert meta.description == "A test server."


def test_init_run_records_command_and_absolute_working_dir(mcp_dir: Path, tmp_path: Path) -> None:
    result = run("server", "init", "svc", "--metadata-dir", str(mcp_dir), "--tool", "a", "--run", "python app.py")
    assert result.exit_code == 0, result.output
    meta = servers(mcp_dir).get("svc")
    assert meta is not None and meta.run is not None
    assert meta.run.command == "python app.py"
    assert meta.run.working_dir == str(tmp_path.resolve())


def test_init_without_tools_warns_that_calls_will_be_denied(mcp_dir: Path) -> None:
    result = run("server", "init", "svc", "--metadata-dir", str(mcp_dir))
    assert result.exit_code == 0
    assert "tool_side_effect_unknown" in result.stdout


def test_init_keeps_other_entries_as_written(mcp_dir: Path) -> None:
    write_metadata(mcp_dir, "version: v1\nservers:\n- name: handmade\n  tools:\n  - name: t\n    sideEffect: write\n")
    result = run("server", "init", "svc", "--metadata-dir", str(mcp_dir), "--tool", "a")
    assert result.exit_code == 0, result.output
    raw = yaml.safe_load((mcp_dir / "servers.yaml").read_text())
    assert raw["servers"][0] == {"name": "handmade", "tools": [{"name": "t", "sideEffect": "write"}]}
    assert [s.name for s in servers(mcp_dir).servers] == ["handmade", "svc"]


def test_init_refuses_to_replace_without_force(mcp_dir: Path) -> None:
    init_demo(mcp_dir)
    before = (mcp_dir / "servers.yaml").read_text()
    result = run("server", "init", "demo", "--metadata-dir", str(mcp_dir), "--tool", "other")
    assert_error(result, "'demo' already exists", "--force")
    assert (mcp_dir / "servers.yaml").read_text() == before


def test_init_force_replaces_the_entry_in_place(mcp_dir: Path) -> None:
    init_demo(mcp_dir)
    assert run("server", "init", "second", "--metadata-dir", str(mcp_dir), "--tool", "x").exit_code == 0
    result = run("server", "init", "demo", "--metadata-dir", str(mcp_dir), "--tool", "only", "--force")
    assert result.exit_code == 0, result.output
    assert "Replaced" in result.stdout
    loaded = servers(mcp_dir)
    assert [s.name for s in loaded.servers] == ["demo", "second"]
    demo = loaded.get("demo")
    assert demo is not None and demo.tool_names() == ["only"]


def test_init_force_keeps_fields_init_does_not_manage(mcp_dir: Path) -> None:
    write_metadata(mcp_dir, "version: v1\nservers:\n- name: svc\n  scope: org\n  image: reg.example.com/org/svc\n"
                            "  imageTag: v3\n  port: 9000\n  policy:\n    mode: observe\n"
                            "  tools:\n  - name: old\n    sideEffect: write\n")
    result = run("server", "init", "svc", "--metadata-dir", str(mcp_dir), "--tool", "new", "--force",
                 "--default-decision", "allow")
    assert result.exit_code == 0, result.output
    meta = servers(mcp_dir).get("svc")
    assert meta is not None
    assert (meta.image, meta.image_tag, meta.port, meta.scope) == ("reg.example.com/org/svc", "v3", 9000, "org")
    assert (meta.policy.mode, meta.policy.default_decision) == ("observe", "allow")
    assert meta.tool_names() == ["new"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--tool-spec", "x:medium"], ["--tool-spec 'x:medium'", "name:trust:side-effect"]),
        (["--tool-spec", "x:huge:read"], ["trust 'huge'", "low, medium, high"]),
        (["--tool-spec", "x:low:explode"], ["side effect 'explode'", "read, write, destructive"]),
        (["--tool-spec", "x:write:medium"], ["swapped", "x:medium:write"]),
        (["--tool", "a", "--tool-spec", "a:low:read"], ["tool 'a' is given twice"]),
        (["--tool", "a", "--tool", "a"], ["tool 'a' is given twice"]),
        (["--tool", "bad name"], ["--tool", "'bad name' is not a valid tool name"]),
        (["--scope", "galaxy"], ["--scope 'galaxy'", "tenant, org, public"]),
        (["--policy-mode", "strict"], ["--policy-mode 'strict'", "allow-list, observe"]),
        (["--default-decision", "maybe"], ["--default-decision 'maybe'", "allow, deny"]),
    ],
)
def test_init_bad_flags_fail_in_one_line_and_write_nothing(mcp_dir: Path, args: list[str],
                                                           fragments: list[str]) -> None:
    result = run("server", "init", "svc", "--metadata-dir", str(mcp_dir), *args)
    assert_error(result, *fragments)
    assert not (mcp_dir / "servers.yaml").exists()


def test_init_bad_server_name(mcp_dir: Path) -> None:
    assert_error(run("server", "init", "Bad_Name", "--metadata-dir", str(mcp_dir)), "'Bad_Name'", "lowercase")


def test_init_with_unreadable_existing_metadata_leaves_it_alone(mcp_dir: Path) -> None:
    path = write_metadata(mcp_dir, "version: v1\nservers: [\n")
    assert_error(run("server", "init", "svc", "--metadata-dir", str(mcp_dir), "--tool", "a"),
                 str(path), "not valid YAML", "line")
    assert path.read_text() == "version: v1\nservers: [\n"


def test_init_from_unreachable_server_fails_cleanly(mcp_dir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = assert_error(run("server", "init", "svc", "--metadata-dir", str(mcp_dir), "--from-server", url),
                        "--from-server", "127.0.0.1")
    assert "refused" in line or "cannot reach" in line
    assert not (mcp_dir / "servers.yaml").exists()


def test_init_from_server_with_bad_url(mcp_dir: Path) -> None:
    assert_error(run("server", "init", "svc", "--metadata-dir", str(mcp_dir), "--from-server", "localhost:8088"),
                 "--from-server", "not an http(s) URL")


def test_failed_write_leaves_no_partial_file(mcp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_demo(mcp_dir)
    before = (mcp_dir / "servers.yaml").read_text()

    def disk_full(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    assert_error(run("server", "init", "svc", "--metadata-dir", str(mcp_dir), "--tool", "a"),
                 "cannot write", "No space left")
    assert (mcp_dir / "servers.yaml").read_text() == before
    assert [p.name for p in mcp_dir.iterdir()] == ["servers.yaml"]


def test_metadata_dir_under_a_file_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert_error(run("server", "init", "svc", "--metadata-dir", "file/.mcp", "--tool", "a"), "cannot write")


# --- server validate -------------------------------------------------------------------------


def test_validate_ok_summary(mcp_dir: Path) -> None:
    init_demo(mcp_dir)
    result = run("server", "validate", "--metadata-dir", str(mcp_dir))
    assert result.exit_code == 0, result.output
    assert "OK" in result.stdout and "1 server" in result.stdout and "3 tools" in result.stdout


def test_validate_without_metadata_says_to_init(tmp_path: Path) -> None:
    assert_error(run("server", "validate", "--metadata-dir", str(tmp_path / "nowhere")),
                 "servers.yaml", "server init")


@pytest.mark.parametrize(
    ("tool_yaml", "fragments"),
    [
        ("  - name: a\n    sideEffect: read\n    colour: red\n", ["unknown field 'colour'", "servers[0].tools[0]"]),
        ("  - name: a\n    sideEffect: maybe\n", ["servers[0].tools[0].sideEffect", "'maybe'", "'read'"]),
        ("  - name: a\n", ["servers[0].tools[0].sideEffect", "missing", "read, write, destructive"]),
        ("  - name: a\n    sideEffect: read\n  - name: a\n    sideEffect: write\n", ["'a' is listed twice"]),
        ("  - name: a\n    sideEffect: read\n    requiredTrust: extreme\n", ["requiredTrust", "'extreme'"]),
    ],
)
def test_validate_names_file_field_and_allowed_values(mcp_dir: Path, tool_yaml: str, fragments: list[str]) -> None:
    path = write_metadata(mcp_dir, "version: v1\nservers:\n- name: svc\n  tools:\n" + tool_yaml)
    assert_error(run("server", "validate", "--metadata-dir", str(mcp_dir)), str(path), *fragments)


def test_validate_reports_every_error(mcp_dir: Path) -> None:
    write_metadata(mcp_dir, "version: v1\nservers:\n- name: svc\n  port: 0\n  tools:\n  - name: a\n")
    assert_error(run("server", "validate", "--metadata-dir", str(mcp_dir)), "servers[0].port",
                 "servers[0].tools[0].sideEffect")


def test_validate_catches_server_level_problems(mcp_dir: Path) -> None:
    write_metadata(mcp_dir, "version: v1\nservers:\n- name: svc\n  port: 8091\n")
    assert_error(run("server", "validate", "--metadata-dir", str(mcp_dir)), "server 'svc'", "gateway.port")


def grant_init(name: str, *args: str, server: str = "demo", output: str = "grant.yaml",
               namespace: str = "mcp-team-acme"):
    return run("access", "grant", "init", name, "--server", server, "--namespace", namespace,
               *args, "--output", output)


def test_validate_grant_naming_unknown_tool_fails(mcp_dir: Path) -> None:
    init_demo(mcp_dir)
    assert grant_init("g", "--agent-id", "cursor", "--tool", "echo", "--tool", "ecko").exit_code == 0
    assert_error(run("server", "validate", "--metadata-dir", str(mcp_dir), "--grant-file", "grant.yaml"),
                 "grant.yaml", "'ecko'", "tool_side_effect_unknown")


def test_validate_grant_and_session_for_unknown_server_fail(mcp_dir: Path) -> None:
    init_demo(mcp_dir)
    assert grant_init("g", "--agent-id", "cursor", "--tool", "echo", server="other").exit_code == 0
    assert_error(run("server", "validate", "--metadata-dir", str(mcp_dir), "--grant-file", "grant.yaml"),
                 "grant.yaml", "server 'other'", "demo")
    assert run("access", "session", "init", "s", "--server", "other", "--namespace", "mcp-team-acme",
               "--agent-id", "cursor", "--trust", "low", "--expires-in", "1h", "--output", "s.yaml").exit_code == 0
    assert_error(run("server", "validate", "--metadata-dir", str(mcp_dir), "--session-file", "s.yaml"),
                 "s.yaml", "session 's'", "server 'other'")


def test_validate_grant_in_the_wrong_namespace_for_an_org_server(mcp_dir: Path) -> None:
    assert run("server", "init", "demo", "--metadata-dir", str(mcp_dir), "--scope", "org", "--tool", "echo"
               ).exit_code == 0
    assert grant_init("g", "--agent-id", "cursor", "--tool", "echo").exit_code == 0
    assert_error(run("server", "validate", "--metadata-dir", str(mcp_dir), "--grant-file", "grant.yaml"),
                 "grant.yaml", "'mcp-team-acme'", "'mcp-servers-org'")
    assert grant_init("g", "--agent-id", "cursor", "--tool", "echo", namespace="mcp-servers-org").exit_code == 0
    assert run("server", "validate", "--metadata-dir", str(mcp_dir), "--grant-file", "grant.yaml").exit_code == 0
    allowed = run("access", "explain", "--metadata-dir", str(mcp_dir), "--grant-file", "grant.yaml",
                  "--agent-id", "cursor", "--tool", "echo")
    assert allowed.exit_code == 0, allowed.output


def test_validate_good_grant_and_session_pass_and_warn_about_unreachable_trust(mcp_dir: Path) -> None:
    init_demo(mcp_dir)
    assert grant_init("g", "--agent-id", "cursor", "--tool", "echo", "--tool", "create_task").exit_code == 0
    assert run("access", "session", "init", "s", "--server", "demo", "--namespace", "mcp-team-acme",
               "--agent-id", "cursor", "--trust", "low", "--expires-in", "1h", "--output", "s.yaml").exit_code == 0
    result = run("server", "validate", "--metadata-dir", str(mcp_dir), "--grant-file", "grant.yaml",
                 "--session-file", "s.yaml")
    assert result.exit_code == 0, result.output
    assert "1 grant, 1 session" in result.stdout
    assert "create_task" in result.stderr and "trust_too_low" in result.stderr


def test_validate_bad_grant_files(mcp_dir: Path, tmp_path: Path) -> None:
    init_demo(mcp_dir)
    assert_error(run("server", "validate", "--metadata-dir", str(mcp_dir), "--grant-file", "missing.yaml"),
                 "missing.yaml", "does not exist")
    (tmp_path / "broken.yaml").write_text("kind: MCPAccessGrant\n  bad: [")
    assert_error(run("server", "validate", "--metadata-dir", str(mcp_dir), "--grant-file", "broken.yaml"),
                 "broken.yaml", "not valid YAML")
    assert run("access", "session", "init", "s", "--server", "demo", "--namespace", "ns", "--agent-id", "a",
               "--trust", "low", "--expires-in", "1h", "--output", "s.yaml").exit_code == 0
    assert_error(run("server", "validate", "--metadata-dir", str(mcp_dir), "--grant-file", "s.yaml"),
                 "s.yaml", "MCPAgentSession", "--session-file")
    grant = yaml.safe_load(_grant_text())
    grant["spec"]["toolRules"][0]["decision"] = "perhaps"
    (tmp_path / "enum.yaml").write_text(yaml.safe_dump(grant))
    assert_error(run("server", "validate", "--metadata-dir", str(mcp_dir), "--grant-file", "enum.yaml"),
                 "enum.yaml", "spec.toolRules[0].decision", "'perhaps'", "'allow'")


def _grant_text() -> str:
    assert grant_init("tmp", "--agent-id", "a", "--tool", "echo", output="tmp.yaml").exit_code == 0
    return Path("tmp.yaml").read_text()


# --- server generate -------------------------------------------------------------------------


def test_generate_writes_one_manifest_per_server(mcp_dir: Path, tmp_path: Path) -> None:
    init_demo(mcp_dir)
    assert run("server", "init", "pub", "--metadata-dir", str(mcp_dir), "--scope", "public", "--tool", "x"
               ).exit_code == 0
    result = run("server", "generate", "--metadata-dir", str(mcp_dir), "--output", "manifests")
    assert result.exit_code == 0, result.output
    demo = load_resource((tmp_path / "manifests" / "demo.yaml").read_text())
    pub = load_resource((tmp_path / "manifests" / "pub.yaml").read_text())
    assert isinstance(demo, MCPServer) and isinstance(pub, MCPServer)
    assert [t.name for t in demo.spec.tools] == ["echo", "add", "create_task"]
    assert demo.spec.tool("create_task").side_effect == SideEffect.write  # type: ignore[union-attr]
    assert pub.metadata.namespace == "mcp-servers-public"
    assert demo.spec.ingress_path == "/demo/mcp"

    result = run("server", "generate", "--metadata-dir", str(mcp_dir), "--output", "m2", "--namespace", "team-a")
    assert result.exit_code == 0
    assert load_resource((tmp_path / "m2" / "demo.yaml").read_text()).metadata.namespace == "team-a"


def test_generate_bad_input(mcp_dir: Path) -> None:
    init_demo(mcp_dir)
    assert_error(run("server", "generate", "--metadata-dir", str(mcp_dir), "--output", "m", "--namespace", "Bad!"),
                 "--namespace", "'Bad!'")
    assert_error(run("server", "generate", "--metadata-dir", "nowhere", "--output", "m"), "servers.yaml")


# --- access grant init / session init --------------------------------------------------------


def test_grant_init_writes_a_grant_that_round_trips(tmp_path: Path) -> None:
    result = grant_init("ops", "--agent-id", "cursor", "--team-id", "globex", "--tool", "echo",
                        "--tool-rule", "create_task:deny:medium", "--side-effect", "read", "--trust", "medium",
                        "--expires-in", "4h", "--disabled")
    assert result.exit_code == 0, result.output
    assert "grant.yaml" in result.stdout
    grant = load_resource((tmp_path / "grant.yaml").read_text())
    assert isinstance(grant, MCPAccessGrant)
    assert grant.metadata.name == "ops" and grant.metadata.namespace == "mcp-team-acme"
    assert grant.spec.server_ref.name == "demo"
    assert (grant.spec.subject.agent_id, grant.spec.subject.team_id, grant.spec.subject.human_id) == (
        "cursor", "globex", None)
    rules = {r.name: (r.decision.value, r.required_trust) for r in grant.spec.tool_rules}
    assert rules == {"echo": ("allow", Trust.medium), "create_task": ("deny", Trust.medium)}
    assert grant.spec.max_trust == Trust.medium
    assert grant.spec.allowed_side_effects == [SideEffect.read]
    assert grant.spec.disabled is True
    assert grant.spec.expires_at is not None
    delta = grant.spec.expires_at - datetime.now(UTC)
    assert timedelta(hours=3, minutes=58) < delta <= timedelta(hours=4)


def test_grant_init_defaults_trust_low_and_accepts_expires_at(tmp_path: Path) -> None:
    result = grant_init("ops", "--human-id", "u1", "--tool", "echo", "--expires-at", "2999-01-01T00:00:00Z")
    assert result.exit_code == 0, result.output
    grant = load_resource((tmp_path / "grant.yaml").read_text())
    assert isinstance(grant, MCPAccessGrant)
    assert grant.spec.max_trust == Trust.low and grant.spec.tool_rules[0].required_trust == Trust.low
    assert grant.spec.expires_at == datetime(2999, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--tool", "echo"], ["no subject", "--agent-id"]),
        (["--agent-id", "a", "--tool-rule", "echo:allow"], ["--tool-rule 'echo:allow'",
                                                             "name:allow|deny:low|medium|high"]),
        (["--agent-id", "a", "--tool-rule", "echo:permit:low"], ["decision 'permit'", "allow, deny"]),
        (["--agent-id", "a", "--tool-rule", "echo:allow:max"], ["trust 'max'", "low, medium, high"]),
        (["--agent-id", "a", "--tool", "echo", "--tool-rule", "echo:deny:low"], ["tool 'echo' is given twice"]),
        (["--agent-id", "a", "--side-effect", "delete"], ["--side-effect 'delete'", "read, write, destructive"]),
        (["--agent-id", "a", "--trust", "ultra"], ["--trust 'ultra'", "low, medium, high"]),
        (["--agent-id", "a", "--expires-in", "soon"], ["--expires-in", "'soon'", "4h"]),
        (["--agent-id", "a", "--expires-in", "1h", "--expires-at", "2999-01-01T00:00:00Z"], ["only one"]),
        (["--agent-id", "a", "--expires-at", "2001-01-01T00:00:00Z"], ["in the past"]),
        (["--agent-id", "a", "--expires-at", "tomorrow"], ["'tomorrow'", "ISO 8601"]),
    ],
)
def test_grant_init_bad_input(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    assert_error(grant_init("ops", *args), *fragments)
    assert not (tmp_path / "grant.yaml").exists()


def test_grant_init_bad_server_name_is_named() -> None:
    assert_error(grant_init("ops", "--agent-id", "a", server="Not_Valid"), "spec.serverRef.name", "'Not_Valid'")


def session_init(name: str, *args: str, output: str = "session.yaml"):
    return run("access", "session", "init", name, "--server", "demo", "--namespace", "mcp-team-acme",
               *args, "--output", output)


def test_session_init_writes_absolute_expiry(tmp_path: Path) -> None:
    result = session_init("cursor-session", "--agent-id", "cursor", "--human-id", "u1", "--trust", "medium",
                          "--expires-in", "1h", "--revoked", "--upstream-token-secret", "upstream",
                          "--upstream-token-key", "token")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "session.yaml").read_text()
    assert "expiresAt: '20" in text and "Z'" in text  # absolute UTC, not "1h"
    session = load_resource(text)
    assert isinstance(session, MCPAgentSession)
    assert session.spec.consented_trust == Trust.medium and session.spec.revoked is True
    assert session.spec.subject.agent_id == "cursor" and session.spec.subject.human_id == "u1"
    assert session.spec.upstream_token_secret_ref is not None
    assert (session.spec.upstream_token_secret_ref.name, session.spec.upstream_token_secret_ref.key) == (
        "upstream", "token")
    assert session.spec.expires_at is not None
    assert timedelta(minutes=58) < session.spec.expires_at - datetime.now(UTC) <= timedelta(hours=1)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--agent-id", "a", "--trust", "low"], ["expiry is required", "--expires-in"]),
        (["--agent-id", "a", "--trust", "top", "--expires-in", "1h"], ["--trust 'top'", "low, medium, high"]),
        (["--trust", "low", "--expires-in", "1h"], ["no subject"]),
        (["--agent-id", "a", "--trust", "low", "--expires-in", "1h", "--upstream-token-secret", "s"],
         ["--upstream-token-key", "both"]),
    ],
)
def test_session_init_bad_input(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    assert_error(session_init("s", *args), *fragments)
    assert not (tmp_path / "session.yaml").exists()


# --- access explain --------------------------------------------------------------------------


@pytest.fixture
def flow(mcp_dir: Path) -> Path:
    """server init -> grant init -> server validate, as the CLI reference shows."""
    init_demo(mcp_dir)
    assert grant_init("demo-ops", "--agent-id", "cursor", "--tool", "echo",
                      "--tool-rule", "create_task:allow:medium").exit_code == 0
    assert run("server", "validate", "--metadata-dir", str(mcp_dir), "--grant-file", "grant.yaml").exit_code == 0
    return mcp_dir


def explain(mcp_dir: Path, tool: str, *args: str):
    return run("access", "explain", "--metadata-dir", str(mcp_dir), "--grant-file", "grant.yaml",
               "--tool", tool, *args)


def test_explain_allows_a_granted_tool(flow: Path) -> None:
    result = explain(flow, "echo", "--agent-id", "cursor")
    assert result.exit_code == 0, result.output
    assert "ALLOW" in result.stdout and "allowed" in result.stdout and "demo-ops" in result.stdout
    assert "required low, effective low" in result.stdout


@pytest.mark.parametrize(
    ("tool", "reason"),
    [("add", "tool_not_granted"), ("create_task", "trust_too_low"), ("nope", "tool_side_effect_unknown")],
)
def test_explain_denies_with_the_evaluators_reason(flow: Path, tool: str, reason: str) -> None:
    result = explain(flow, tool, "--agent-id", "cursor", "-o", "json")
    assert result.exit_code == 1
    decision = json.loads(result.stdout)
    assert decision["allowed"] is False and decision["reason"] == reason
    assert decision["tool"] == tool and decision["message"]


def test_explain_denies_another_agent(flow: Path) -> None:
    result = explain(flow, "echo", "--agent-id", "claude")
    assert result.exit_code == 1
    assert "DENY" in result.stdout and "no_matching_grant" in result.stdout


def test_explain_reports_required_and_effective_trust(flow: Path) -> None:
    decision = json.loads(explain(flow, "create_task", "--agent-id", "cursor", "-o", "json").stdout)
    assert (decision["requiredTrust"], decision["effectiveTrust"], decision["matchedGrant"]) == (
        "medium", "low", "demo-ops")


def test_explain_with_session_file_uses_its_name_and_subject(flow: Path) -> None:
    assert grant_init("demo-ops", "--agent-id", "cursor", "--trust", "high", "--tool", "echo",
                      "--tool-rule", "create_task:allow:medium").exit_code == 0
    assert session_init("cursor-low", "--agent-id", "cursor", "--trust", "low", "--expires-in", "1h",
                        output="low.yaml").exit_code == 0
    assert session_init("cursor-med", "--agent-id", "cursor", "--trust", "medium", "--expires-in", "1h",
                        output="med.yaml").exit_code == 0

    low = explain(flow, "create_task", "--session-file", "low.yaml", "-o", "json")
    assert low.exit_code == 1
    decision = json.loads(low.stdout)
    assert (decision["reason"], decision["matchedSession"], decision["effectiveTrust"]) == (
        "trust_too_low", "cursor-low", "low")

    med = explain(flow, "create_task", "--session-file", "med.yaml", "-o", "json")
    assert med.exit_code == 0, med.output
    assert json.loads(med.stdout)["matchedSession"] == "cursor-med"


def test_explain_with_revoked_session(flow: Path) -> None:
    assert session_init("gone", "--agent-id", "cursor", "--trust", "low", "--expires-in", "1h",
                        "--revoked").exit_code == 0
    result = explain(flow, "echo", "--session-file", "session.yaml")
    assert result.exit_code == 1 and "session_revoked" in result.stdout


def test_explain_bad_input(flow: Path) -> None:
    assert_error(explain(flow, "echo"), "no caller", "--agent-id")
    assert_error(explain(flow, "echo", "--agent-id", "cursor", "--server", "ghost"), "'ghost'", "demo")
    assert_error(run("access", "explain", "--metadata-dir", str(flow), "--grant-file", "nope.yaml",
                     "--tool", "echo", "--agent-id", "a"), "nope.yaml", "does not exist")


def test_explain_help_documents_exit_codes() -> None:
    result = run("access", "explain", "--help")
    assert result.exit_code == 0
    assert "Exit code 0 when the call is allowed, 1 when it is denied" in " ".join(result.stdout.split())


# --- as a user's shell runs it ---------------------------------------------------------------


def test_end_to_end_in_a_subprocess(tmp_path: Path, cli) -> None:
    ok = cli(["server", "init", "demo", "--tool", "echo", "--tool-spec", "create_task:medium:write"],
                 cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "mcp-runtime server validate --metadata-dir .mcp" in ok.stdout
    again = cli(["server", "init", "demo", "--tool", "echo"], cwd=tmp_path)
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0 and "--force" in again.stderr and "Traceback" not in again.stderr
    grant = cli(["access", "grant", "init", "g", "--server", "demo", "--namespace", "mcp-team-acme",
                     "--agent-id", "cursor", "--tool", "echo", "--output", "grant.yaml"], cwd=tmp_path)
    assert grant.returncode == 0, grant.stderr
    valid = cli(["server", "validate", "--metadata-dir", ".mcp", "--grant-file", "grant.yaml"], cwd=tmp_path)
    assert valid.returncode == 0, valid.stderr
    allowed = cli(["access", "explain", "--grant-file", "grant.yaml", "--agent-id", "cursor", "--tool", "echo"],
                      cwd=tmp_path)
    assert allowed.returncode == 0 and "ALLOW" in allowed.stdout
    denied = cli(["access", "explain", "--grant-file", "grant.yaml", "--agent-id", "cursor",
                      "--tool", "create_task"], cwd=tmp_path)
    assert denied.returncode == 1 and "tool_not_granted" in denied.stdout


def test_explain_picks_the_server_the_grants_name(flow: Path) -> None:
    assert run("server", "init", "other", "--metadata-dir", str(flow), "--tool", "echo").exit_code == 0
    result = explain(flow, "echo", "--agent-id", "cursor", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["server"] == "demo"
    denied = explain(flow, "echo", "--agent-id", "cursor", "--server", "other")
    assert denied.exit_code == 1
    assert "no_matching_grant" in denied.stdout and "ignored: demo-ops" in denied.stdout


def test_validate_from_server_with_several_servers_needs_server(mcp_dir: Path) -> None:
    init_demo(mcp_dir)
    assert run("server", "init", "other", "--metadata-dir", str(mcp_dir), "--tool", "echo").exit_code == 0
    assert_error(run("server", "validate", "--metadata-dir", str(mcp_dir), "--from-server", "http://127.0.0.1:1"),
                 "several servers", "--server NAME")
    assert_error(run("server", "validate", "--metadata-dir", str(mcp_dir), "--from-server", "http://127.0.0.1:1",
                     "--server", "ghost"), "--server 'ghost'", "demo, other")


def test_rewrites_keep_the_files_permissions(mcp_dir: Path) -> None:
    init_demo(mcp_dir)
    path = mcp_dir / "servers.yaml"
    os.chmod(path, 0o640)
    assert run("server", "init", "other", "--metadata-dir", str(mcp_dir), "--tool", "a").exit_code == 0
    assert path.stat().st_mode & 0o777 == 0o640
