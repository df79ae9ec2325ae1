"""Shared fixtures: how tests run the CLI as a user would, and where the repo is.

The helpers live in `fixtures.cli` so test modules import them by a name no other conftest shadows.
"""

from __future__ import annotations

from pathlib import Path

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
CONTAINER_WORDS = ("podman", "kube_cluster", "kube_pods_cluster", "kube_images", "package_images")
LOAD_MODULES = {"test_gateway_load.py", "test_soak_short.py", "test_api_fuzz.py", "test_gateway_fuzz.py"}


def _group_of(module: Path, source: str) -> str | None:
    if module.parent.name == "kube" or any(word in source for word in CONTAINER_WORDS):
        return "containers"
    if module.name in LOAD_MODULES:
        return "load"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    groups: dict[Path, str | None] = {}
    for item in items:
        module = Path(str(item.fspath))
        if module not in groups:
            groups[module] = _group_of(module, module.read_text(errors="replace"))
        if groups[module] is not None:
            item.add_marker(pytest.mark.xdist_group(groups[module]))
