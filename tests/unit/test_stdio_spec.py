"""The stdio form of a server: one of a command or a pinned package, checked with errors that say the fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mcp_runtime.resources import MCPServer, ServerMetadata, StdioSpec, metadata_to_server, package_command
from mcp_runtime.resources.crd import structural_schema
from mcp_runtime.resources.server import MCPServerSpec


def test_package_shorthands_become_the_commands_that_run_them() -> None:
    assert package_command("npm:@modelcontextprotocol/server-everything@2026.8.31") == [
        "npx", "-y", "@modelcontextprotocol/server-everything@2026.8.31"]
    assert package_command("pypi:mcp-server-time==2025.9.25") == ["uvx", "mcp-server-time==2025.9.25"]
    spec = StdioSpec(package="npm:@modelcontextprotocol/server-filesystem@2026.1.14", args=["/data"])
    assert spec.argv() == ["npx", "-y", "@modelcontextprotocol/server-filesystem@2026.1.14", "/data"]
    assert StdioSpec(command="python", args=["server.py"]).argv() == ["python", "server.py"]


@pytest.mark.parametrize(("package", "fix"), [
    ("npm:@modelcontextprotocol/server-everything", "npm:<package>@<version>"),
    ("pypi:mcp-server-time", "pypi:<package>==<version>"),
    ("pypi:mcp-server-time>=1", "pypi:<package>==<version>"),
    ("cargo:thing@1", "npm:<package>@<version> or pypi:<package>==<version>"),
])
def test_an_unpinned_or_unknown_package_is_refused_with_the_form_to_use(package: str, fix: str) -> None:
    with pytest.raises(ValidationError) as refused:
        StdioSpec(package=package)
    assert fix in str(refused.value)


def test_exactly_one_of_command_and_package() -> None:
    with pytest.raises(ValidationError, match="exactly one of `command`"):
        StdioSpec()
    with pytest.raises(ValidationError, match="exactly one of `command`"):
        StdioSpec(command="npx", package="npm:a@1")


def test_run_and_stdio_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="not both"):
        ServerMetadata.model_validate({"name": "x", "run": {"command": "python app.py"},
                                       "stdio": {"command": "python"}})


def test_metadata_stdio_travels_to_the_mcpserver_and_the_crd_schema() -> None:
    meta = ServerMetadata.model_validate({
        "name": "files", "stdio": {"package": "npm:@modelcontextprotocol/server-filesystem@2026.1.14",
                                   "args": ["/srv"], "envVars": [{"name": "LOG", "value": "1"}],
                                   "secretEnvVars": [{"name": "TOKEN", "secretKeyRef": {"name": "s", "key": "k"}}],
                                   "maxSessions": 4, "idleTimeout": "5m"}})
    server = metadata_to_server(meta)
    assert isinstance(server, MCPServer) and server.spec.stdio is not None
    assert server.spec.stdio.max_sessions == 4 and server.spec.stdio.idle_timeout_seconds == 300
    stdio = structural_schema(MCPServerSpec)["properties"]["stdio"]
    assert {"command", "package", "args", "envVars", "secretEnvVars", "workingDir", "maxSessions",
            "idleTimeout"} <= set(stdio["properties"])
    with pytest.raises(ValidationError):
        StdioSpec(command="x", idle_timeout="soon")
