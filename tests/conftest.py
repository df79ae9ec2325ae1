"""Shared fixtures: how tests run the CLI as a user would, and where the repo is.

The helpers live in `fixtures.cli` so test modules import them by a name no other conftest shadows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fixtures.cli import EXAMPLES, REPO_ROOT, SRC, cli_env, free_port, run_cli

__all__ = ["EXAMPLES", "REPO_ROOT", "SRC", "cli_env", "free_port", "run_cli"]


@pytest.fixture
def cli():
    return run_cli


# --- parallel workers (pytest-xdist, `-n 2 --dist loadgroup` in the README's test command) ---------------
# Tests that share a machine-wide resource run on one worker, one after another: podman (image tags, the
# storage) and the Kubernetes test cluster (the images loaded into its containerd, cluster-wide objects)
# share the group "containers"; the load tests share "load" so that two never compete for the CPU.
# Everything else (per-test ports, data directories, PostgreSQL schemas) runs wherever a worker is free.
# The groups are given to xdist by a scheduler of our own rather than by `xdist_group` marks: xdist 3.8
# renames marked items through a node attribute pytest 9.2 no longer reads, so the marks do nothing.
CONTAINER_WORDS = ("podman", "kube_cluster", "kube_pods_cluster", "kube_images", "package_images")
LOAD_MODULES = {"test_gateway_load.py", "test_soak_short.py", "test_api_fuzz.py", "test_gateway_fuzz.py"}
_GROUPS: dict[Path, str | None] = {}


def group_of(module: Path) -> str | None:
    """The group a test module runs in (None: any worker, test by test)."""
    if module not in _GROUPS:
        source = module.read_text(errors="replace") if module.is_file() else ""
        if module.parent.name == "kube" or any(word in source for word in CONTAINER_WORDS):
            _GROUPS[module] = "containers"
        elif module.name in LOAD_MODULES:
            _GROUPS[module] = "load"
        else:
            _GROUPS[module] = None
    return _GROUPS[module]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With `--dist loadgroup`: one work unit per group, every other test a unit of its own."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    root = config.rootpath

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return group_of(root / nodeid.split("::", 1)[0]) or nodeid

    return GroupScheduling(config, log)
