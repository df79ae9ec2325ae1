"""`mcp-runtime cluster provision --provider kind|k3d|eks`: create a cluster with the provider's tool."""

from __future__ import annotations

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.kube.provision import (
    ProvisionError,
    ProvisionRequest,
    command,
    find_tool,
    kind_config,
)
from mcp_runtime.kube.provision import provision as run_provision
from mcp_runtime.resources import parse_duration


def provision(
    provider: str = typer.Option("kind", "--provider", help="kind | k3d (local, need docker or podman) | eks "
                                                            "(eksctl, AWS credentials)."),
    name: str = typer.Option("mcp-runtime", "--name", help="Cluster name."),
    nodes: int = typer.Option(1, "--nodes", help="Nodes (kind, k3d: one control plane, the rest workers)."),
    region: str | None = typer.Option(None, "--region", help="AWS region (eks; default: your AWS config's)."),
    timeout: str = typer.Option("30m", "--timeout", help="Give up after this long, e.g. 10m."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the command (and kind's config); run nothing."),
) -> None:
    """Create a cluster with kind, k3d or eksctl (whichever --provider names; it must be on PATH)."""
    request = ProvisionRequest(provider=provider, name=name, nodes=nodes, region=region)
    try:
        seconds = parse_duration(timeout).total_seconds()
    except ValueError as exc:
        raise CliError(f"--timeout: {exc}") from None
    try:
        request.validate()
        if dry_run:
            typer.echo("would run: " + " ".join(command(request)))
            if provider == "kind":
                typer.echo("with <kind-config.yaml>:\n" + kind_config(nodes).rstrip())
            return
        find_tool(request)
        typer.echo(f"creating {provider} cluster {name} with {nodes} node(s) (timeout {timeout}) ...")
        run_provision(request, timeout=seconds)
    except ProvisionError as exc:
        raise CliError(exc.message, hint=exc.hint) from None
    typer.echo(f"cluster {name} is up ({provider}); next: mcp-runtime bootstrap, then mcp-runtime cluster init")
