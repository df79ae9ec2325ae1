"""`server init --from-server` and `server validate --from-server` against the real Python example
(examples/data-utility-mcp/app.py): two runs in a subprocess as a shell would, the rest in process."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fixtures.servers import DATA_UTILITY_TOOLS, data_utility_server, free_port
from mcp_runtime.cli.app import app
from mcp_runtime.resources import SideEffect, Trust, load_servers_file

__all__ = ["data_utility_server"]  # fixture used by name below

DISCOVERED = "Discovered: add, echo, lower, multiply, ping, reverse, upper"


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The CLI in this process (the subprocess tests above show the real shell behaviour)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str):
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert "Traceback" not in result.output
        return result

    return invoke


def base_url(mcp_url: str) -> str:
    """`http://127.0.0.1:PORT/mcp` -> `http://127.0.0.1:PORT`: the CLI must append /mcp itself."""
    return mcp_url.removesuffix("/mcp")


def load(tmp_path: Path):
    path = tmp_path / ".mcp" / "servers.yaml"
    return load_servers_file(path.read_text(), source=str(path))


def test_init_from_server_discovers_the_examples_tools(cli, tmp_path: Path, data_utility_server: str) -> None:
    result = cli(["server", "init", "data-util", "--from-server", base_url(data_utility_server)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert DISCOVERED in result.stdout
    assert "review" in result.stdout and "--tool-spec" in result.stdout
    assert "mcp-runtime server validate --metadata-dir .mcp" in result.stdout

    meta = load(tmp_path).get("data-util")
    assert meta is not None
    assert meta.tool_names() == sorted(DATA_UTILITY_TOOLS)
    assert all((t.side_effect, t.required_trust) == (SideEffect.read, Trust.low) for t in meta.tools)
    assert {t.name: t.description for t in meta.tools}["add"] == "Add two numbers and return the sum."


def test_tool_spec_overrides_a_discovered_tool(run, tmp_path: Path, data_utility_server: str) -> None:
    result = run("server", "init", "data-util", "--from-server", data_utility_server,
                 "--tool-spec", "multiply:medium:write")
    assert result.exit_code == 0, result.output
    tools = {t.name: t for t in load(tmp_path).servers[0].tools}
    assert (tools["multiply"].side_effect, tools["multiply"].required_trust) == (SideEffect.write, Trust.medium)
    assert tools["echo"].side_effect == SideEffect.read


def test_tool_spec_for_a_tool_the_server_lacks_is_refused(run, tmp_path: Path, data_utility_server: str) -> None:
    result = run("server", "init", "data-util", "--from-server", data_utility_server,
                 "--tool-spec", "divide:low:read")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "'divide'" in result.stderr and "multiply" in result.stderr
    assert not (tmp_path / ".mcp" / "servers.yaml").exists()


def test_validate_from_server_matches_after_init(run, data_utility_server: str) -> None:
    assert run("server", "init", "data-util", "--from-server", data_utility_server).exit_code == 0
    result = run("server", "validate", "--metadata-dir", ".mcp", "--from-server", base_url(data_utility_server))
    assert result.exit_code == 0, result.output
    assert "OK" in result.stdout and "7 tools" in result.stdout


def test_validate_from_server_reports_both_sides_of_a_mismatch(cli, tmp_path: Path,
                                                               data_utility_server: str) -> None:
    assert cli(["server", "init", "data-util", "--from-server", data_utility_server], cwd=tmp_path).returncode == 0
    path = tmp_path / ".mcp" / "servers.yaml"
    raw = yaml.safe_load(path.read_text())
    tools = raw["servers"][0]["tools"]
    raw["servers"][0]["tools"] = [t for t in tools if t["name"] != "reverse"] + [
        {"name": "divide", "sideEffect": "read"}]
    path.write_text(yaml.safe_dump(raw, sort_keys=False))

    result = cli(["server", "validate", "--metadata-dir", ".mcp", "--from-server", data_utility_server],
                 cwd=tmp_path)
    assert result.returncode == 1
    line = result.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "reverse" in line and "tool_side_effect_unknown" in line  # the server has it, the metadata lacks it
    assert "divide" in line and "stale" in line  # the metadata has it, the server lacks it


def test_validate_from_server_needs_a_reachable_server(run) -> None:
    assert run("server", "init", "data-util", "--tool", "echo").exit_code == 0
    result = run("server", "validate", "--from-server", f"http://127.0.0.1:{free_port()}/mcp")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: --from-server") and result.stderr.count("\n") == 1
