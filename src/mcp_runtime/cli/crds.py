"""`mcp-runtime crds`: print or write the CRDs generated from the resource models."""

from __future__ import annotations

from pathlib import Path

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.resources.crd import crd_yaml, render_crds

app = typer.Typer(help="Print or write the MCPServer, MCPAccessGrant and MCPAgentSession CRDs.",
                  no_args_is_help=True)


@app.command("print")
def print_crds() -> None:
    """Print every CRD as one multi-document YAML stream (pipe it to `kubectl apply -f -`)."""
    typer.echo("---\n".join(crd_yaml(crd) for crd in render_crds().values()), nl=False)


CHECKED_IN = (Path("deploy/crds"), Path("deploy/helm/mcp-runtime/crds"))
"""Where the generated CRDs are checked in: on their own, and in the Helm chart (Helm installs crds/ first)."""


@app.command("generate")
def generate(
    output: list[Path] = typer.Option(list(CHECKED_IN), "--output",
                                      help="Directory to write the CRD files into (repeat for several)."),
) -> None:
    """Write one YAML file per CRD into each OUTPUT (default: deploy/crds/ and the Helm chart's crds/)."""
    for directory in output:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for filename, crd in render_crds().items():
                (directory / filename).write_text(crd_yaml(crd), encoding="utf-8")
                typer.echo(f"wrote {directory / filename}")
        except OSError as exc:
            raise CliError(f"cannot write CRDs to {directory}: {exc.strerror}",
                           hint="choose a writable --output") from None
