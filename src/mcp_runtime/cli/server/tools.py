"""`mcp-runtime server tools diff|approve`: review tool definitions that changed since they were pinned.

The gateway reports what each server's tools look like now (see docs/governance.md, "Tool-definition
pinning"); `diff` shows, per tool, the reviewed definition against the one the server lists now, and
`approve` (team owners) pins what the server lists now and pushes the policy to the gateway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mcp_runtime.cli.common.api import NamespaceOption
from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.files import dump_yaml, write_atomic
from mcp_runtime.cli.common.flags import tool_name
from mcp_runtime.cli.common.metadata import load_metadata, raw_entry, servers_path
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit_structured, print_table
from mcp_runtime.cli.server.common import locate
from mcp_runtime.client import client

app = typer.Typer(help="Review tool definitions against their pins: diff, approve.", no_args_is_help=True)

COLUMNS = [("TOOL", "name"), ("STATE", "state"), ("PINNED", "pinned"), ("SEEN", "seen")]
_STATES = {"pinned": "pinned", "changed": "CHANGED", "not_pinned": "NOT PINNED",
           "unverified": "not listed"}


def _short(digest: str | None) -> str:
    return digest.removeprefix("sha256:")[:12] if digest else "-"


@app.command("diff")
def diff(name: str = typer.Argument(..., help="Server name."), namespace: str | None = NamespaceOption,
         output: OutputFormat = OutputOption) -> None:
    """Each tool's pinned definition against what the server lists now, with a diff of every change."""
    api = client()
    ns = locate(api, name, namespace)
    answer = api.get(f"runtime/servers/{ns}/{name}/tools")
    if emit_structured(answer, output):
        return
    condition = answer.get("condition") or {}
    typer.echo(f"Server {name} ({ns}), pinning mode {answer.get('mode')}: "
               f"{condition.get('message') or 'the gateway has not listed its tools yet'}")
    rows = [{"name": r["name"], "state": _STATES.get(r["state"], r["state"]), "pinned": _short(r["pinnedDigest"]),
             "seen": _short(r["seenDigest"])} for r in answer.get("tools", [])]
    if rows:
        typer.echo("")
        print_table(rows, COLUMNS)
    for row in answer.get("tools", []):
        if row["state"] == "pinned" or not row.get("seen"):
            continue
        typer.echo("")
        for line in row.get("diff") or []:
            color = "green" if line.startswith("+") else "red" if line.startswith("-") else None
            typer.secho(line, fg=color)
    if any(r["state"] != "pinned" for r in answer.get("tools", [])):
        typer.echo(f"\nApprove with: mcp-runtime server tools approve {name} [--tool TOOL]")


@app.command("approve")
def approve(name: str = typer.Argument(..., help="Server name."),
            tool: list[str] | None = typer.Option(None, "--tool", metavar="TOOL",
                                                  help="Approve only this tool; repeat. Default: every change."),
            namespace: str | None = NamespaceOption,
            metadata_dir: Path | None = typer.Option(
                None, "--metadata-dir", help="Also write the new pins into this directory's servers.yaml "
                "(so the reviewed state is in Git)."),
            output: OutputFormat = OutputOption) -> None:
    """Pin the tool definitions the server lists now (team owners); the gateway enforces them at once."""
    names = [tool_name(t, "--tool") for t in tool or []]
    api = client()
    ns = locate(api, name, namespace)
    answer = api.post(f"runtime/servers/{ns}/{name}/tools/approve", {"tools": names})
    if metadata_dir is not None and answer.get("approved"):
        _save_pins(metadata_dir, name, api.get(f"runtime/servers/{ns}/{name}"))
    if emit_structured(answer, output):
        return
    approved = answer.get("approved") or []
    if not approved:
        typer.echo(f"Nothing to approve on {name}: every tool it lists is pinned as it is.")
        return
    typer.echo(f"Approved {', '.join(approved)} on {name}; policy revision "
               f"{(answer.get('policyRevision') or '')[:12]} is enforced by the gateway now.")


def _save_pins(metadata_dir: Path, name: str, server: dict[str, Any]) -> None:
    """Copy the server's pins into its entry of servers.yaml (other fields and entries as written)."""
    path = servers_path(metadata_dir)
    _current, raw = load_metadata(metadata_dir)
    entry = raw_entry(raw, name)
    if entry is None:
        raise CliError(f"approved, but {path} has no server {name!r} to write the pins into",
                       hint="pass the --metadata-dir that holds this server's entry")
    pins = {t["name"]: t["pin"] for t in server.get("spec", {}).get("tools", []) if t.get("pin")}
    for item in entry.get("tools") or []:
        if isinstance(item, dict) and item.get("name") in pins:
            item["pin"] = pins[item["name"]]
    write_atomic(path, dump_yaml(raw))
    typer.echo(f"Wrote the pins into {path}: commit it so the review is in Git.")
