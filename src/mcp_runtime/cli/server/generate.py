"""`mcp-runtime server generate`: one MCPServer manifest per `.mcp/servers.yaml` entry, for review or GitOps."""

from __future__ import annotations

from pathlib import Path

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.files import write_atomic
from mcp_runtime.cli.common.flags import dns_label
from mcp_runtime.cli.common.metadata import MetadataDirOption, load_servers
from mcp_runtime.cli.server.common import server_problem
from mcp_runtime.resources import metadata_to_server, to_yaml


def generate(
    metadata_dir: Path = MetadataDirOption,
    output: Path = typer.Option(..., "--output", help="Directory to write one <name>.yaml per server into."),
    namespace: str | None = typer.Option(None, "--namespace", help="Namespace for every manifest (default: by scope)."),
) -> None:
    """Render one MCPServer manifest per metadata entry, for review or GitOps."""
    path, model = load_servers(metadata_dir)
    if namespace is not None:
        dns_label(namespace, "--namespace")
    if output.exists() and not output.is_dir():
        raise CliError(f"--output {output} is a file", hint="pass a directory")
    rendered = {}
    for meta in model.servers:  # render all first: one bad entry writes nothing
        problem = server_problem(meta, path)
        if problem:
            raise CliError(problem, hint=f"fix {path} and re-run")
        rendered[meta.name] = to_yaml(metadata_to_server(meta, namespace=namespace))
    for name, text in rendered.items():
        target = output / f"{name}.yaml"
        write_atomic(target, text)
        typer.echo(f"wrote {target}")
