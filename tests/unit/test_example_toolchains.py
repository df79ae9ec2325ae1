"""The Go/Rust example tests look their toolchains up explicitly and say what to install when none fits."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fixtures.examples import ToolchainError, _find


def fake_tool(path: Path, output: str) -> Path:
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_too_old_toolchain_is_refused_with_what_to_install(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    old = fake_tool(tmp_path / "go", "go version go1.19.8 linux/amd64")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError) as caught:
        _find("MCP_RUNTIME_TEST_GO", tmp_path / "missing" / "go", "go", r"go(\d+)\.(\d+)", (1, 25), "install Go")
    assert str(caught.value) == (f"go >= 1.25 is needed to build the example (tried: {old} (1.19)); install Go, "
                                 "or point $MCP_RUNTIME_TEST_GO at one")


def test_the_explicit_then_preferred_toolchain_wins_over_path(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "path").mkdir()
    (tmp_path / "preferred").mkdir()
    fake_tool(tmp_path / "path" / "cargo", "cargo 1.63.0")
    preferred = fake_tool(tmp_path / "preferred" / "cargo", "cargo 1.95.0 (f2d3ce0bd 2026-03-21)")
    monkeypatch.setenv("PATH", str(tmp_path / "path") + os.pathsep + os.environ["PATH"])
    found = _find("MCP_RUNTIME_TEST_CARGO", preferred, "cargo", r"cargo (\d+)\.(\d+)", (1, 88), "rustup")
    assert (found.path, found.version) == (str(preferred), (1, 95))
    explicit = fake_tool(tmp_path / "explicit-cargo", "cargo 1.90.1")
    monkeypatch.setenv("MCP_RUNTIME_TEST_CARGO", str(explicit))
    found = _find("MCP_RUNTIME_TEST_CARGO", preferred, "cargo", r"cargo (\d+)\.(\d+)", (1, 88), "rustup")
    assert found.path == str(explicit)
