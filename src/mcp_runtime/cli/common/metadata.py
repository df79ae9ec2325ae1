"""`.mcp/servers.yaml`, the server metadata that `server init` writes and `validate`, `generate`, `deploy`,
`build image` and `access explain` read: where it lives, how it loads, how an entry is found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.files import read_text, resource_error
from mcp_runtime.resources import (
    ResourceError,
    Scope,
    ServerMetadata,
    ServersFile,
    load_servers_file,
    parse_yaml,
    scope_namespace,
)

SERVERS_FILE = "servers.yaml"
DEFAULT_METADATA_DIR = Path(".mcp")

MetadataDirOption = typer.Option(DEFAULT_METADATA_DIR, "--metadata-dir", help="Directory holding servers.yaml.")


def servers_path(metadata_dir: Path) -> Path:
    return metadata_dir / SERVERS_FILE


def load_metadata(metadata_dir: Path, *, missing_ok: bool = False) -> tuple[ServersFile, dict[str, Any]]:
    """Load `<metadata_dir>/servers.yaml` as the model and as the raw mapping it was written as.

    The raw mapping lets `server init` keep other entries exactly as their authors wrote them.
    """
    path = servers_path(metadata_dir)
    if missing_ok and not path.exists():
        return ServersFile(), {"version": "v1", "servers": []}
    if not path.exists():
        raise CliError(f"no metadata at {path}",
                       hint="create it with 'mcp-runtime server init NAME', or pass --metadata-dir")
    text = read_text(path, "metadata file")
    hint = f"fix {path} and re-run"
    try:
        model = load_servers_file(text, source=str(path))
        raw = parse_yaml(text, source=str(path)) or {}
    except ResourceError as exc:
        raise resource_error(exc, hint) from None
    raw.setdefault("version", "v1")
    if raw.get("servers") is None:
        raw["servers"] = []
    return model, raw


def load_servers(metadata_dir: Path) -> tuple[Path, ServersFile]:
    """The metadata file's path and model, which must list at least one server."""
    path = servers_path(metadata_dir)
    model, _ = load_metadata(metadata_dir)
    if not model.servers:
        raise CliError(f"{path} lists no servers", hint="add one with 'mcp-runtime server init NAME'")
    return path, model


def raw_entry(raw: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The entry named `name` in the raw mapping, as written (the same object: edits land in `raw`)."""
    return next((e for e in raw.get("servers") or [] if isinstance(e, dict) and e.get("name") == name), None)


def known_namespace(meta: ServerMetadata) -> str | None:
    """The namespace the server is published to when the metadata fixes it (tenant needs the platform)."""
    if meta.namespace:
        return meta.namespace
    return scope_namespace(meta.scope) if meta.scope != Scope.tenant else None
