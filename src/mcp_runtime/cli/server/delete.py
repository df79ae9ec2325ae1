"""`mcp-runtime server delete`: remove a server from the platform (asks first unless --yes)."""

from __future__ import annotations

import sys

import typer

from mcp_runtime.cli.common.api import NamespaceOption
from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit_structured
from mcp_runtime.cli.server.common import locate
from mcp_runtime.client import client


def delete(name: str = typer.Argument(..., help="Server name."), namespace: str | None = NamespaceOption,
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
           output: OutputFormat = OutputOption) -> None:
    """Delete a server: the runtime stops it and its route stops answering."""
    api = client()
    ns = locate(api, name, namespace)
    if not yes:
        if not sys.stdin.isatty():
            raise CliError(f"refusing to delete server {name} in {ns} without confirmation",
                           hint="pass --yes")
        typer.confirm(f"Delete server {name} in namespace {ns}?", abort=True)
    deleted = api.delete(f"runtime/servers/{ns}/{name}")
    if emit_structured(deleted, output):
        return
    typer.echo(f"server {name} deleted from {ns}")
