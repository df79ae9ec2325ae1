"""Argument conditions as a user meets them in the CLI: validation that names the rule, and
`access explain --arguments` showing which condition decided."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_cli_scaffold import assert_error, grant_init, init_demo, run


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def conditioned_grant(mcp_dir: Path, condition: str) -> None:
    init_demo(mcp_dir)
    assert grant_init("demo-ops", "--agent-id", "cursor", "--tool", "echo", "--tool", "add").exit_code == 0
    grant = yaml.safe_load(Path("grant.yaml").read_text())
    for rule in grant["spec"]["toolRules"]:
        if rule["name"] == "add":
            rule["condition"] = condition
    Path("grant.yaml").write_text(yaml.safe_dump(grant))


def test_validate_accepts_a_condition(tmp_path: Path) -> None:
    mcp_dir = tmp_path / ".mcp"
    conditioned_grant(mcp_dir, "args.a <= 100")
    result = run("server", "validate", "--metadata-dir", str(mcp_dir), "--grant-file", "grant.yaml")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("condition", "fragment"), [
    ("args.a <=", "not a valid CEL expression"),
    ("a <= 100", "unknown name(s) a"),
])
def test_validate_names_the_rule_of_a_bad_condition(tmp_path: Path, condition: str, fragment: str) -> None:
    mcp_dir = tmp_path / ".mcp"
    conditioned_grant(mcp_dir, condition)
    assert_error(run("server", "validate", "--metadata-dir", str(mcp_dir), "--grant-file", "grant.yaml"),
                 "grant.yaml", "toolRule 'add'", fragment)


def explain(mcp_dir: Path, *args: str):
    return run("access", "explain", "--metadata-dir", str(mcp_dir), "--grant-file", "grant.yaml",
               "--tool", "add", "--agent-id", "cursor", *args)


def test_explain_shows_the_condition_that_decided(tmp_path: Path) -> None:
    mcp_dir = tmp_path / ".mcp"
    conditioned_grant(mcp_dir, "args.a <= 100")
    allowed = explain(mcp_dir, "--arguments", '{"a": 40, "b": 2}')
    assert allowed.exit_code == 0, allowed.output
    assert "condition:   args.a <= 100 (holds)" in allowed.stdout
    denied = explain(mcp_dir, "--arguments", '{"a": 400}', "-o", "json")
    assert denied.exit_code == 1
    answer = json.loads(denied.stdout)
    assert (answer["reason"], answer["condition"], answer["conditionDetail"]) == (
        "condition_not_met", "args.a <= 100", "evaluated to false")
    missing = json.loads(explain(mcp_dir, "--arguments", "{}", "-o", "json").stdout)
    assert missing["conditionDetail"] == "argument 'a' is missing"
    unknown = explain(mcp_dir)
    assert unknown.exit_code == 0 and "not judged: pass --arguments" in unknown.stdout


@pytest.mark.parametrize(("text", "fragment"), [("{a", "--arguments is not JSON"),
                                               ("[1]", "--arguments must be a JSON object")])
def test_explain_refuses_bad_arguments(tmp_path: Path, text: str, fragment: str) -> None:
    mcp_dir = tmp_path / ".mcp"
    conditioned_grant(mcp_dir, "args.a <= 100")
    assert_error(explain(mcp_dir, "--arguments", text), fragment)
