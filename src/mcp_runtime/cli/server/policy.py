"""`mcp-runtime server policy inspect`: the compiled policy document the server's gateway enforces."""

from __future__ import annotations

import typer

from mcp_runtime.cli.common.api import NamespaceOption, shown_tool_rules
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit_structured, print_fields, print_table
from mcp_runtime.cli.server.common import locate
from mcp_runtime.client import client

app = typer.Typer(help="The compiled policy the gateway enforces.", no_args_is_help=True)

GRANT_COLUMNS = [("GRANT", "name"), ("HUMAN", "subject.humanID"), ("AGENT", "subject.agentID"),
                 ("TEAM", "subject.teamID"), ("MAX TRUST", "maxTrust"), ("SIDE EFFECTS", "sideEffects"),
                 ("TOOLS", "tools"), ("DISABLED", "disabled"), ("EXPIRES", "expiresAt")]
SESSION_COLUMNS = [("SESSION", "name"), ("HUMAN", "subject.humanID"), ("AGENT", "subject.agentID"),
                   ("TEAM", "subject.teamID"), ("TRUST", "consentedTrust"), ("EXPIRES", "expiresAt"),
                   ("REVOKED", "revoked")]
TOOL_COLUMNS = [("TOOL", "name"), ("TRUST", "requiredTrust"), ("SIDE EFFECT", "sideEffect"),
                ("RISK", "riskLevel")]


@app.command("inspect")
def policy_inspect(name: str = typer.Argument(..., help="Server name."), namespace: str | None = NamespaceOption,
            output: OutputFormat = OutputOption) -> None:
    """Show the compiled policy document: revision, tools, grants and sessions (-o json: the document)."""
    api = client()
    ns = locate(api, name, namespace)
    document = api.get(f"runtime/servers/{ns}/{name}/policy")
    if emit_structured(document, output):
        return
    print_fields([("Server", f"{name} ({ns})"), ("Revision", document.get("revision")),
                  ("Mode", document.get("mode")), ("Default", document.get("defaultDecision")),
                  ("Session required", "yes" if document.get("sessionRequired") else "no")])
    grants = [{**g, "sideEffects": g.get("allowedSideEffects") or ["any"],
               "tools": shown_tool_rules(g.get("toolRules", []))} for g in document.get("grants", [])]
    for title, columns, rows in (("Tools", TOOL_COLUMNS, document.get("tools", [])),
                                 ("Grants", GRANT_COLUMNS, grants),
                                 ("Sessions", SESSION_COLUMNS, document.get("sessions", []))):
        typer.echo("")
        if rows:
            print_table(rows, columns, heading=f"{title}:")
        else:
            typer.echo(f"{title}: none")
