"""`server init --stdio-command` and `server validate --from-server stdio|npm:...`, as a shell runs them,
against real stdio servers (the SDK fixture, and server-everything from npm)."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

COUNTER = Path(__file__).resolve().parents[1] / "fixtures" / "stdio" / "counter_server.py"
EVERYTHING = "npm:@modelcontextprotocol/server-everything@2026.8.31"
COUNTER_TOOLS = "Discovered: ask, bump, crash, pid, roots, sample, slow, spawn"


def test_init_discovers_a_stdio_servers_tools_and_validate_starts_it_again(cli, tmp_path: Path) -> None:
    done = cli(["server", "init", "counter", "--stdio-command", f"python {COUNTER}"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert COUNTER_TOOLS in done.stdout
    entry = yaml.safe_load((tmp_path / ".mcp" / "servers.yaml").read_text())["servers"][0]
    assert entry["stdio"]["command"] == "python" and entry["stdio"]["args"] == [str(COUNTER)]
    assert entry["stdio"]["workingDir"] == str(tmp_path.resolve()) and "run" not in entry
    assert {t["name"] for t in entry["tools"]} == {"ask", "bump", "crash", "pid", "roots", "sample", "slow", "spawn"}

    checked = cli(["server", "validate", "--from-server", "stdio"], cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "OK stdio: its 8 tools match server 'counter'" in checked.stdout


def test_init_from_an_npm_package(cli, tmp_path: Path) -> None:
    done = cli(["server", "init", "everything", "--stdio-command", EVERYTHING], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "echo" in done.stdout and "trigger-long-running-operation" in done.stdout
    entry = yaml.safe_load((tmp_path / ".mcp" / "servers.yaml").read_text())["servers"][0]
    assert entry["stdio"]["package"] == EVERYTHING.strip()


def test_bad_stdio_commands_are_clear_errors(cli, tmp_path: Path) -> None:
    missing = cli(["server", "init", "x", "--stdio-command", "no-such-mcp-server --flag"], cwd=tmp_path)
    assert missing.returncode != 0 and "'no-such-mcp-server' is not on PATH" in missing.stderr
    unpinned = cli(["server", "init", "x", "--stdio-command", "npm:@modelcontextprotocol/server-everything"],
                   cwd=tmp_path)
    assert unpinned.returncode != 0 and "npm:<package>@<version>" in unpinned.stderr
    code = "import sys; print('needs ROOT', file=sys.stderr); sys.exit(2)"
    exits = cli(["server", "init", "x", "--stdio-command", f"{sys.executable} -c \"{code}\""], cwd=tmp_path)
    assert exits.returncode != 0 and "exited with code 2" in exits.stderr and "needs ROOT" in exits.stderr
    assert not (tmp_path / ".mcp" / "servers.yaml").exists()  # nothing written on failure


def test_init_from_a_pypi_package_runs_it_with_uvx(cli, tmp_path: Path) -> None:
    done = cli(["server", "init", "time", "--stdio-command", "pypi:mcp-server-time==2026.10.19"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Discovered: convert_time, get_current_time" in done.stdout
