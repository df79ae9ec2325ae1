"""The build plan of a stdio package's image (`server build image` for `npm:`/`pypi:` specs): the package is
fetched on the host and preinstalled on the platform image, and the image runs it offline."""

from __future__ import annotations

import pytest

from mcp_runtime.runtime.package_image import STDIO_DIR, package_plan


def test_npm_plan_installs_node_npm_and_the_package_on_the_host_and_runs_npx_offline() -> None:
    plan = package_plan("npm:@modelcontextprotocol/server-filesystem@2026.8.31", base="localhost/mcp-runtime:latest",
                        npm="npm")
    [install] = plan.host_commands
    assert install[:4] == ("npm", "install", "--prefix", "app")
    assert install[-3:] == ("node@22", "npm@10", "@modelcontextprotocol/server-filesystem@2026.8.31")
    assert dict(plan.files)["app/package.json"].startswith('{"name": "mcp-stdio-server"')
    containerfile = plan.containerfile
    assert containerfile.startswith("ARG BASE_IMAGE=localhost/mcp-runtime:latest\nFROM ${BASE_IMAGE}\n")
    assert f"COPY --chown=0:0 app {STDIO_DIR}" in containerfile
    assert f"PATH={STDIO_DIR}/node_modules/.bin:$PATH" in containerfile  # node, npm and npx from the install
    assert "NPM_CONFIG_OFFLINE=true" in containerfile  # npx runs the installed package, never fetches one
    assert f"WORKDIR {STDIO_DIR}" in containerfile  # npx looks for the package in this project
    assert 'LABEL org.mcpruntime.stdio-package="npm:@modelcontextprotocol/server-filesystem@2026.8.31"' in containerfile
    assert containerfile.rstrip().endswith("USER 65532:65532")


def test_pypi_plan_builds_wheels_on_the_host_and_runs_uvx_from_them_offline() -> None:
    plan = package_plan("pypi:mcp-server-time==2026.10.19", python="/usr/bin/python3")
    [wheels] = plan.host_commands
    assert wheels[:3] == ("/usr/bin/python3", "-m", "pip") and wheels[-2:] == ("mcp-server-time==2026.10.19", "uv")
    containerfile = plan.containerfile
    assert f"COPY wheels {STDIO_DIR}/wheels" in containerfile
    assert f"--find-links {STDIO_DIR}/wheels uv" in containerfile
    for setting in ("UV_OFFLINE=1", "UV_NO_INDEX=1", f"UV_FIND_LINKS={STDIO_DIR}/wheels", "UV_PYTHON_DOWNLOADS=never"):
        assert setting in containerfile


@pytest.mark.parametrize("spec", ["npm:left-pad", "pypi:mcp-server-time", "docker:x"])
def test_a_spec_without_a_version_or_of_another_kind_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="spec"):
        package_plan(spec)
