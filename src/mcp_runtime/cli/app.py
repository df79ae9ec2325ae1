"""The `mcp-runtime` command: a Typer app that mounts one sub-app per command group."""

from __future__ import annotations

import typer

from mcp_runtime import __version__

app = typer.Typer(
    name="mcp-runtime",
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
    """Register the command groups. Each lives in its own module under `mcp_runtime.cli`."""
    from mcp_runtime.cli import commands

    commands.register(app)


_mount()


def main() -> None:
    """Console-script entry point."""
    app()
