"""`mcp-runtime access approvals`: tool calls waiting for a person's approval (docs/approvals.md).

`list` shows the calls you may decide (the server's owners and admins see all of a server's; the calling
person sees their own when the approver is the caller); `approve ID` lets exactly that call run (its
arguments, its caller); `deny ID` refuses it. The first decision wins: a second gets "already decided".
"""

from __future__ import annotations

import typer

from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit, emit_structured
from mcp_runtime.client import client

app = typer.Typer(help="Tool calls waiting for a person's approval: list, approve, deny.", no_args_is_help=True)

COLUMNS = [("ID", "id"), ("SERVER", "server"), ("NAMESPACE", "namespace"), ("TOOL", "tool"),
           ("CALLER", "caller.humanID"), ("AGENT", "caller.agentID"), ("ARGUMENTS", "arguments"),
           ("APPROVER", "approver"), ("STATUS", "status"), ("EXPIRES", "expiresAt"), ("DECIDED BY", "decidedBy")]
MAX_SHOWN = 60


@app.command("list")
def approvals_list(
    all_: bool = typer.Option(False, "--all", help="Include the calls decided recently."),
    output: OutputFormat = OutputOption,
) -> None:
    """List the calls waiting for your approval (oldest first)."""
    items = client().get("runtime/approvals", params={"all": "true" if all_ else "false"})["items"]
    if output == OutputFormat.table:
        for item in items:  # a table row shows the start of the arguments; -o json shows them whole
            if len(item["arguments"]) > MAX_SHOWN:
                item["arguments"] = item["arguments"][:MAX_SHOWN - 1] + "…"
        if not items:
            typer.echo("no calls are waiting for your approval" + ("" if all_ else " (--all shows decided ones)"))
            return
    emit(items, output, columns=COLUMNS)


def _decide(approval_id: str, action: str, output: OutputFormat) -> None:
    approval = client().post(f"runtime/approvals/{approval_id}/{action}")
    if emit_structured(approval, output):
        return
    verb = "approved: the call runs now" if action == "approve" else "denied: the caller gets approval_denied"
    typer.echo(f"{approval['tool']} on {approval['server']} ({approval_id}) {verb}")


@app.command("approve")
def approvals_approve(approval_id: str = typer.Argument(..., metavar="ID", help="The approval's id (from list)."),
                      output: OutputFormat = OutputOption) -> None:
    """Let exactly that waiting call run (its arguments, its caller); nothing else is approved."""
    _decide(approval_id, "approve", output)


@app.command("deny")
def approvals_deny(approval_id: str = typer.Argument(..., metavar="ID", help="The approval's id (from list)."),
                   output: OutputFormat = OutputOption) -> None:
    """Refuse that waiting call: its caller gets the error `approval_denied`."""
    _decide(approval_id, "deny", output)
