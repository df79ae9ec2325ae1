"""`mcp-runtime server deploy`: publish a server on the platform, as the active profile.

`deploy` sends the `.mcp` metadata entry (by name, or the only one in the file) so the server's tool
inventory, and so its governance, travels with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.flags import parse_choice
from mcp_runtime.cli.common.metadata import MetadataDirOption, load_metadata, raw_entry, servers_path
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit_structured
from mcp_runtime.cli.server.common import summary_row
from mcp_runtime.client import ApiCallError, client
from mcp_runtime.resources import ResourceError, Scope, ServerMetadata, validate_model


def deploy(
    name: str = typer.Argument(..., help="Server name on the platform."),
    scope: str | None = typer.Option(None, "--scope", help="tenant (your team's namespace), org or public."),
    metadata_dir: Path = MetadataDirOption,
    run: str | None = typer.Option(None, "--run", help='Command that starts it (process runtime), e.g. '
                                   '"python app.py"; runs in the current directory.'),
    image: str | None = typer.Option(None, "--image", help="Image repository (short names resolve to the registry)."),
    tag: str | None = typer.Option(None, "--tag", help="Image tag."),
    team: str | None = typer.Option(None, "--team", help="Team slug to deploy into (tenant scope)."),
    namespace: str | None = typer.Option(None, "--namespace", "-n", help="Namespace to deploy into."),
    update: bool = typer.Option(False, "--update", help="Redeploy a server that already exists."),
    output: OutputFormat = OutputOption,
) -> None:
    """Deploy a server from .mcp metadata (or an image); --update to redeploy."""
    if team and namespace:
        raise CliError("--team and --namespace both choose the namespace", hint="pass only one")
    scope_value = parse_choice(scope, Scope, "--scope") if scope is not None else None
    entry = _deploy_entry(name, metadata_dir, run, required=image is None and run is None)
    body: dict[str, Any] = {"name": name, "metadata": entry, "update": update, "scope": scope_value,
                            "team": team, "namespace": namespace, "image": image, "imageTag": tag}
    api = client()
    try:
        server = api.post("runtime/servers", {k: v for k, v in body.items() if v is not None})
    except ApiCallError as exc:
        if exc.code == "already_exists":
            raise CliError(exc.message.split(";")[0], hint="use --update to redeploy it") from None
        raise
    if emit_structured(server, output):
        return
    row = summary_row(api, server)
    verb = "Deployed" if api.last_status == 201 else "Redeployed"
    typer.echo(f"{verb} server {row['name']} to namespace {row['namespace']} ({row['phase']})")
    typer.echo(f"URL: {row['url']}")
    typer.echo(f"Next: mcp-runtime server status {row['name']} --namespace {row['namespace']}")


def _deploy_entry(name: str, metadata_dir: Path, run: str | None, *, required: bool) -> dict[str, Any]:
    """The metadata entry to send (with --run as its run command), checked by the model first."""
    entry = _metadata_entry(name, metadata_dir, required=required)
    if entry is None:
        entry = {"name": name}
        typer.echo(f"note: no {servers_path(metadata_dir)}: deploying without a tool inventory; every tool call "
                   "is denied as tool_side_effect_unknown until the server's tools are declared", err=True)
    if run is not None:
        entry["run"] = {"command": run, "workingDir": str(Path.cwd().resolve())}
    try:
        validate_model(ServerMetadata, entry, source=f"{servers_path(metadata_dir)}: server {entry.get('name')!r}")
    except ResourceError as exc:
        raise CliError(str(exc), hint="fix the metadata and re-run") from None
    return entry


def _metadata_entry(name: str, metadata_dir: Path, *, required: bool) -> dict[str, Any] | None:
    """The `.mcp` entry to send: NAME's, or the only one (its inventory under another runtime name)."""
    path = servers_path(metadata_dir)
    if not path.exists():
        if required:
            raise CliError(f"no metadata at {path}",
                           hint=f"run 'mcp-runtime server init {name}' here, pass --metadata-dir, "
                                "or deploy an image with --image")
        return None
    model, raw = load_metadata(metadata_dir)
    entry = raw_entry(raw, name)
    if entry is None and len(model.servers) == 1:
        entry = next(e for e in raw["servers"] if isinstance(e, dict))
        typer.echo(f"using the tool inventory of {entry.get('name')!r} from {path} for server {name}", err=True)
    if entry is None:
        listed = ", ".join(s.name for s in model.servers) or "no servers"
        raise CliError(f"{path} has no entry for server {name} (it lists: {listed})",
                       hint=f"run 'mcp-runtime server init {name}', or deploy one of the listed names")
    return dict(entry)
