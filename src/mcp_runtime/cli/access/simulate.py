"""`mcp-runtime access simulate`, and the impact check `access grant apply|delete` run before changing access.

Both ask `POST runtime/simulate` (docs/governance.md, "Before you change access: simulate"): the platform
compiles the would-be policy with the compiler `apply` uses and replays the server's recorded tool calls
through the gateway's evaluator. Nothing here decides anything; it reads files, asks, and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

from mcp_runtime.cli.access.common import read_documents
from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit, err_console
from mcp_runtime.client import ApiClient, client
from mcp_runtime.resources import ResourceError, ServerMetadata, load_servers_file, validate_model

IMPACT_WINDOW = "24h"
"""The window `grant apply` and `grant delete` look at before changing access."""
REPLAY_TIMEOUT = 600.0
"""Seconds a simulation may take: the platform replays up to 2,000,000 calls in one request."""

ROW_COLUMNS = [("HUMAN", "humanID"), ("AGENT", "agentID"), ("TEAM", "team"), ("TOOL", "tool"), ("NOW", "now"),
               ("AFTER", "after_"), ("CALLS", "calls"), ("FIRST", "first"), ("LAST", "last")]


def simulate(
    server: str = typer.Option(..., "--server", help="The server whose recorded calls are replayed."),
    namespace: str | None = typer.Option(None, "--namespace", "-n", help="Its namespace (found by name when omitted)."),
    grant_file: list[Path] | None = typer.Option(None, "--grant-file", metavar="FILE",
                                                 help="MCPAccessGrant YAML to apply (new or changed); repeat."),
    session_file: list[Path] | None = typer.Option(None, "--session-file", metavar="FILE",
                                                   help="MCPAgentSession YAML to apply (platform admins); repeat."),
    server_file: Path | None = typer.Option(None, "--server-file", metavar="FILE",
                                            help="The server redeployed from .mcp/servers.yaml or an MCPServer YAML."),
    delete_grant: list[str] | None = typer.Option(None, "--delete-grant", metavar="NAME",
                                                  help="A grant to delete; repeat."),
    since: str = typer.Option("7d", "--since", help="The window: 24h, 7d, 30d or an ISO 8601 time."),
    output: OutputFormat = OutputOption,
) -> None:
    """Which recorded calls a change would decide differently, by caller and tool, before you apply it.

    The change is compiled as 'apply' would compile it and every tools/call of the window is judged again
    by the gateway's evaluator, with the caller's identity and session as they were. Nothing is applied.
    Calls recorded before the event log carried the replay inputs are counted as too old, never guessed.
    """
    change: dict[str, Any] = {}
    if grant_file:
        change["grants"] = [doc for path in grant_file for doc in read_documents(path, "MCPAccessGrant")]
    if session_file:
        change["sessions"] = [doc for path in session_file for doc in read_documents(path, "MCPAgentSession")]
    if server_file is not None:
        change["deploy"] = read_server(server_file, server)
    if delete_grant:
        change["deleteGrants"] = list(delete_grant)
    if not change:
        raise CliError("nothing to simulate",
                       hint="pass --grant-file, --session-file, --server-file or --delete-grant")
    report = ask(client(), server, namespace, change, since)
    if output != OutputFormat.table:
        emit(report, output)
        return
    print_report(report)


def ask(api: ApiClient, server: str, namespace: str | None, change: dict[str, Any], since: str) -> dict[str, Any]:
    """`POST runtime/simulate`, with a spinner on stderr while the platform replays (a long window takes time)."""
    body = {"server": server, "namespace": namespace, "since": since, **change}
    timeout, api.timeout = api.timeout, max(api.timeout, REPLAY_TIMEOUT)
    try:
        with err_console.status(f"replaying the recorded calls of {server} over {since}..."):
            answer: dict[str, Any] = api.post("runtime/simulate", {k: v for k, v in body.items() if v is not None})
    finally:
        api.timeout = timeout
    return answer


def print_report(report: dict[str, Any]) -> None:
    """The summary line, the changed calls by caller and tool, and the totals."""
    typer.echo(report["summary"])
    rows = [{**row, "now": f"{row['before']['decision']} {row['before']['reason']}",
             "after_": f"{row['after']['decision']} {row['after']['reason']}",
             "first": _minute(row["first"]), "last": _minute(row["last"])} for row in report["rows"]]
    if rows:
        emit(rows, OutputFormat.table, columns=ROW_COLUMNS)
    totals = [f"replayed {report['replayed']:,}", f"unchanged {report['unchanged']:,}",
              f"changed {report['changed']:,}"]
    if report["beforePolicy"]:
        totals.append(f"refused before the policy {report['beforePolicy']:,}")
    for gap in report["gaps"]:
        totals.append(f"not replayed {gap['calls']:,}: {gap['reason']}")
    typer.echo(" · ".join(totals))
    if report["drifted"]:
        typer.echo(f"note: {report['drifted']:,} call(s) are decided differently today than when they were made "
                   "(the policy changed since); the comparison is with today's policy")
    if report["window"]["truncated"]:
        typer.echo("note: the window held more calls than one simulation replays; only the oldest were replayed")


def impact_before_change(api: ApiClient, server: str, namespace: str | None, change: dict[str, Any], *,
                         dry_run: bool, output: OutputFormat) -> bool:
    """For `grant apply|delete`: the replay of the last 24 h. With --dry-run print the full report and say
    not to apply (False); otherwise print one line when calls that were allowed would be denied."""
    report = ask(api, server, namespace, change, IMPACT_WINDOW)
    if dry_run:
        if output != OutputFormat.table:
            emit(report, output)
        else:
            print_report(report)
            typer.echo("dry run: nothing was applied")
        return False
    if report["newlyDenied"]:
        typer.echo(report["summary"], err=output != OutputFormat.table)  # -o json|yaml: stdout stays parseable
    return True


def read_server(path: Path, server: str) -> dict[str, Any]:
    """`deploy` of the request: the entry for `server` in a `.mcp/servers.yaml`, or an MCPServer's spec."""
    docs = [doc for doc in _yaml_documents(path) if doc is not None]
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise CliError(f"{path}: expected one .mcp/servers.yaml document or one MCPServer")
    doc = docs[0]
    if doc.get("kind") == "MCPServer":
        read_documents(path, "MCPServer")
        return {"spec": doc.get("spec", {})}
    try:
        servers = load_servers_file(yaml.safe_dump(doc), source=str(path))
    except ResourceError as exc:
        raise CliError(str(exc), hint="pass .mcp/servers.yaml or an MCPServer YAML") from None
    entry = next((e for e in doc.get("servers", []) if isinstance(e, dict) and e.get("name") == server), None)
    if entry is None:
        listed = ", ".join(s.name for s in servers.servers) or "no servers"
        raise CliError(f"{path} has no entry for server {server} (it lists: {listed})")
    try:
        validate_model(ServerMetadata, entry, source=f"{path}: server {server!r}")
    except ResourceError as exc:
        raise CliError(str(exc)) from None
    return {"metadata": entry}


def _yaml_documents(path: Path) -> list[Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise CliError(f"{path}: not valid YAML ({exc})") from None


def _minute(stamp: str) -> str:
    return stamp.replace("T", " ")[:16] + " UTC"
