"""Shared fixtures: how tests run the CLI as a user would, and where the repo is.

The helpers live in `fixtures.cli` so test modules import them by a name no other conftest shadows.
"""

from __future__ import annotations

import pytest

from fixtures.cli import EXAMPLES, REPO_ROOT, SRC, cli_env, free_port, run_cli

__all__ = ["EXAMPLES", "REPO_ROOT", "SRC", "cli_env", "free_port", "run_cli"]


@pytest.fixture
def cli():
    return run_cli
