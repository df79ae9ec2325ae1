"""`server build image` and `registry push` fail with one clear line when something is missing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Cli = Callable[..., Any]


def test_build_without_any_builder_says_what_to_install(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    empty = tmp_path / "bin"
    empty.mkdir()
    result = cli(["server", "build", "image", "payments", "--tag", "v1", "--team", "acme"], cwd=tmp_path,
                     env={"PATH": str(empty), "MCP_RUNTIME_REGISTRY": "registry.example.com"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: no image builder found: install docker, podman or buildah (Debian: apt-get install podman) "
        "and try again"]


def test_tenant_build_without_login_or_team_asks_for_one(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "Containerfile").write_text("FROM scratch\n")
    result = cli(["server", "build", "image", "payments", "--tag", "v1"], cwd=tmp_path,
                     env={"MCP_RUNTIME_REGISTRY": "registry.example.com", "MCP_RUNTIME_CONFIG_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "tenant images live under your team's slug" in result.stderr and "--team" in result.stderr


def test_push_needs_a_platform_login(tmp_path: Path, cli: Cli) -> None:
    result = cli(["registry", "push", "--image", "payments:v1", "--scope", "tenant"],
                     env={"MCP_RUNTIME_CONFIG_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "not logged in" in result.stderr and "Traceback" not in result.stderr
