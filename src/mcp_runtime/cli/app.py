"""The `mcp-runtime` command: a Typer app that mounts one sub-app per command group."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from mcp_runtime import __version__
from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.client.errors import ClientError


class RootGroup(TyperGroup):
    """The root command: a platform-client error raised by any command prints as one line, like `CliError`."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ClientError as exc:
            raise CliError.from_client(exc) from None


app = typer.Typer(
    name="mcp-runtime",
    cls=RootGroup,
    help="Publish, govern and observe MCP servers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mcp-runtime {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Publish, govern and observe MCP servers."""


def _mount() -> None:
    """Register the command groups (the list is in `cli.commands`)."""
    from mcp_runtime.cli import commands

    commands.register(app)


_mount()


def main() -> None:
    """Console-script entry point."""
    app()
