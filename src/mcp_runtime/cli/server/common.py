"""What several `server` commands share: asking a running server for its tools (`init`, `validate`),
checking that a metadata entry can become an MCPServer (`validate`, `generate`), and finding and
summarising a server on the platform (`deploy`, `list`, `get`, `status`, `delete`, `logs`, `policy`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from mcp_runtime.cli.common.api import namespaces_named
from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.client import ApiClient
from mcp_runtime.resources import ServerMetadata, ServerPhase, describe_validation_error, metadata_to_server

TimeoutOption = typer.Option(10.0, "--timeout", help="Seconds to wait for --from-server to answer.")


# --- local: .mcp metadata and a server running on this machine ---------------------------------
def discover(url: str, timeout: float, *, headers: dict[str, str] | None = None, verify: Any = True,
             flag: str = "--from-server") -> list[Any]:
    """The tools a running server lists, or a CliError saying why it could not be asked. `headers` and
    `verify` (an ssl context for a private CA) are for a remote server's credential and TLS."""
    from mcp_runtime.runtime.discovery import DiscoveryError, discover_tools_sync

    try:
        tools = discover_tools_sync(url, timeout, headers=headers, verify=verify)
    except DiscoveryError as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise CliError(f"{flag}: {message}",
                       hint=getattr(exc, "hint", None) or "start the server, or check the URL") from None
    except ValueError as exc:
        raise CliError(f"{flag}: {exc}") from None
    return list({t.name: t for t in tools}.values())


def server_problem(meta: ServerMetadata, path: Path) -> str | None:
    """What stops this entry from becoming an MCPServer (e.g. gateway port equal to the app port)."""
    try:
        metadata_to_server(meta)
    except ValidationError as exc:
        return f"{path}: server {meta.name!r}: {describe_validation_error(exc)}"
    return None


def count(n: int, noun: str) -> str:
    """`1 tool`, `3 tools`."""
    return f"{n} {noun}{'s' * (n != 1)}"


# --- on the platform ---------------------------------------------------------------------------
def locate(api: ApiClient, name: str, namespace: str | None) -> str:
    """The namespace of server `name`: as given, or the only visible server with that name."""
    if namespace:
        return namespace
    found = namespaces_named(api, "servers", name)
    if not found:
        raise CliError(f"server {name} not found (or not visible to you)", hint="mcp-runtime server list")
    if len(found) > 1:
        raise CliError(f"server {name} exists in several namespaces: {', '.join(found)}",
                       hint=f"pass --namespace, e.g. --namespace {found[0]}")
    return found[0]


def ready_count(server: dict[str, Any]) -> str:
    """`1/1` like kubectl: ready replicas (as reported, else 'all' when Ready) over desired."""
    status = server.get("status") or {}
    desired = int(server.get("spec", {}).get("replicas", 1))
    ready = status.get("readyReplicas")
    if ready is None:
        ready = desired if status.get("phase") == ServerPhase.ready.value else 0
    return f"{ready}/{desired}"


def public_url(api: ApiClient, path: str | None) -> str | None:
    """A route such as `/payments/mcp` is served by the platform's gateway: prefix the platform URL."""
    if not path:
        return None
    return f"{api.profile.api_url}{path}" if path.startswith("/") else path


def server_kind(spec: dict[str, Any]) -> str:
    """How a server runs: `remote` (someone else runs it), `stdio`, or `http` (an image or run command)."""
    if spec.get("remote"):
        return "remote"
    if spec.get("stdio"):
        return "stdio"
    return "http"


def summary_row(api: ApiClient, server: dict[str, Any]) -> dict[str, Any]:
    """One server as a row of `server list` / `server status` (and the lines `deploy` prints)."""
    meta, spec, status = server["metadata"], server.get("spec", {}), server.get("status") or {}
    return {"name": meta["name"], "namespace": meta.get("namespace"), "kind": server_kind(spec),
            "ready": ready_count(server),
            "phase": status.get("phase", ServerPhase.pending.value), "message": status.get("message"),
            "url": public_url(api, status.get("url") or spec.get("ingressPath"))}
