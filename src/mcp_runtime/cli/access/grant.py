"""`mcp-runtime access grant`: who may call which tools of a server.

`init` writes a grant YAML locally (check it with `server validate --grant-file`); `apply`, `list`, `get`,
`enable`, `disable` and `delete` work on the platform.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from mcp_runtime.cli.access import simulate
from mcp_runtime.cli.access.common import (
    AgentOption,
    ExpiresAtOption,
    ExpiresInOption,
    FileOption,
    FileOutputOption,
    HumanOption,
    ServerNamespaceOption,
    ServerOption,
    TeamOption,
    apply,
    document,
    emit_applied,
    locate,
    read_documents,
    subject,
    write_resource,
)
from mcp_runtime.cli.common.api import NamespaceOption, shown_tool_rules
from mcp_runtime.cli.common.flags import check_unique, format_time, parse_choice, resolve_expiry, split_spec, tool_name
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit, emit_structured
from mcp_runtime.client import client
from mcp_runtime.resources import GRANT_KIND, MCPAccessGrant, SideEffect, ToolDecision, Trust

app = typer.Typer(help="Access grants: who may call which tools of a server.", no_args_is_help=True)

COLUMNS = [("NAME", "metadata.name"), ("NAMESPACE", "metadata.namespace"),
           ("SERVER", "spec.serverRef.name"), ("HUMAN", "spec.subject.humanID"),
           ("AGENT", "spec.subject.agentID"), ("TEAM", "spec.subject.teamID"),
           ("MAX TRUST", "spec.maxTrust"), ("TOOLS", "tools"), ("STATUS", "status.phase")]


# --- init: write the YAML ----------------------------------------------------------------------
@app.command("init")
def grant_init(
    name: str = typer.Argument(..., help="Grant name."),
    server: str = ServerOption,
    namespace: str = ServerNamespaceOption,
    team_id: str | None = TeamOption,
    agent_id: str | None = AgentOption,
    human_id: str | None = HumanOption,
    tool: list[str] | None = typer.Option(
        None, "--tool", metavar="TOOL",
        help="Allow a tool at --trust (name:allow:<trust>).",
    ),
    tool_rule: list[str] | None = typer.Option(
        None, "--tool-rule", metavar="NAME:DECISION:TRUST",
        help="name:allow|deny:low|medium|high, e.g. create_task:deny:medium.",
    ),
    side_effect: list[str] | None = typer.Option(
        None, "--side-effect", metavar="SIDE_EFFECT",
        help="Allowed side effect (read, write, destructive); repeat; none = all.",
    ),
    trust: str = typer.Option("low", "--trust", help="maxTrust of the grant, and requiredTrust of --tool rules."),
    expires_in: str | None = ExpiresInOption,
    expires_at: str | None = ExpiresAtOption,
    disabled: bool = typer.Option(False, "--disabled", help="Write the grant disabled."),
    output: Path = FileOutputOption,
) -> None:
    """Write an MCPAccessGrant YAML (check it with 'server validate --grant-file', then 'access grant apply')."""
    max_trust = parse_choice(trust, Trust, "--trust")
    rules = [{"name": tool_name(t, "--tool"), "decision": "allow", "requiredTrust": max_trust.value}
             for t in tool or []]
    rules += [_parse_tool_rule(v) for v in tool_rule or []]
    check_unique([r["name"] for r in rules], "tool")
    effects = [parse_choice(s, SideEffect, "--side-effect").value for s in side_effect or []]
    spec: dict[str, Any] = {
        "serverRef": {"name": server, "namespace": namespace},
        "subject": subject(human_id, agent_id, team_id),
        "maxTrust": max_trust.value,
        "allowedSideEffects": effects,
        "toolRules": rules,
        "disabled": disabled,
    }
    expiry = resolve_expiry(expires_in, expires_at, now=datetime.now(UTC), required=False)
    if expiry is not None:
        spec["expiresAt"] = format_time(expiry)
    write_resource(MCPAccessGrant, document(MCPAccessGrant, name, namespace, spec), output, f"grant {name!r}")


def _parse_tool_rule(value: str) -> dict[str, str]:
    """`name:allow|deny:low|medium|high`."""
    name, decision, trust = split_spec(value, "--tool-rule", "name:allow|deny:low|medium|high",
                                       "create_task:deny:medium")
    return {
        "name": tool_name(name, "--tool-rule"),
        "decision": parse_choice(decision, ToolDecision, f"--tool-rule {value!r}: decision").value,
        "requiredTrust": parse_choice(trust, Trust, f"--tool-rule {value!r}: trust").value,
    }


# --- the platform ------------------------------------------------------------------------------
DryRunOption = typer.Option(False, "--dry-run", help="Show the impact on the last 24 h of calls; change nothing.")


def _server_of(doc: dict[str, Any]) -> tuple[str, str | None]:
    spec, meta = doc.get("spec", {}), doc.get("metadata", {})
    return spec["serverRef"]["name"], meta.get("namespace") or spec["serverRef"].get("namespace")


def _with_tools(grant: dict[str, Any]) -> dict[str, Any]:
    return {**grant, "tools": shown_tool_rules(grant.get("spec", {}).get("toolRules", []))}


@app.command("apply")
def grant_apply(file: Path = FileOption, dry_run: bool = DryRunOption, output: OutputFormat = OutputOption) -> None:
    """Create or update the grant(s) in a YAML file.

    First the change is replayed against the last 24 h of the server's recorded calls: one line says how many
    calls that were allowed would be denied; with --dry-run the full report is shown and nothing is applied."""
    api = client()
    docs = read_documents(file, GRANT_KIND)
    by_server: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for doc in docs:
        by_server.setdefault(_server_of(doc), []).append(doc)
    proceed = True
    for (server, namespace), grants in by_server.items():
        proceed = simulate.impact_before_change(api, server, namespace, {"grants": grants}, dry_run=dry_run,
                                                output=output) and proceed
    if not proceed:
        return
    results = []
    for doc in docs:
        grant, created = apply(api, "grants", doc)
        results.append(grant)
        if output == OutputFormat.table:
            meta = grant["metadata"]
            typer.echo(f"grant {meta['name']} {'created' if created else 'updated'} in {meta['namespace']} "
                       f"({grant.get('status', {}).get('phase', '-')})")
    emit_applied(results, output)


@app.command("list")
def grant_list(namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """List the grants you can see (your teams' namespaces and grants naming your team)."""
    items = client().get("runtime/grants", params={"namespace": namespace})["items"]
    emit([_with_tools(g) for g in items] if output == OutputFormat.table else items, output, columns=COLUMNS)


@app.command("get")
def grant_get(name: str, namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """Show one grant."""
    api = client()
    grant = api.get(f"runtime/grants/{locate(api, 'grants', name, namespace)}/{name}")
    emit(_with_tools(grant) if output == OutputFormat.table else grant, output, columns=COLUMNS)


def _grant_action(name: str, namespace: str | None, action: str, output: OutputFormat,
                  dry_run: bool = False) -> None:
    api = client()
    ns = locate(api, "grants", name, namespace)
    path = f"runtime/grants/{ns}/{name}"
    if action == "delete":
        server = api.get(path)["spec"]["serverRef"]["name"]
        if not simulate.impact_before_change(api, server, ns, {"deleteGrants": [name]}, dry_run=dry_run,
                                             output=output):
            return
    grant = api.delete(path) if action == "delete" else api.post(f"{path}/{action}")
    if emit_structured(grant, output):
        return
    done = {"enable": "enabled", "disable": "disabled", "delete": "deleted"}[action]
    typer.echo(f"grant {name} {done} in {ns}")


@app.command("enable")
def grant_enable(name: str, namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """Put a disabled grant back in force."""
    _grant_action(name, namespace, "enable", output)


@app.command("disable")
def grant_disable(name: str, namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """Stop a grant from matching, without deleting it."""
    _grant_action(name, namespace, "disable", output)


@app.command("delete")
def grant_delete(name: str, namespace: str | None = NamespaceOption, dry_run: bool = DryRunOption,
                 output: OutputFormat = OutputOption) -> None:
    """Delete a grant; the gateway denies its callers from the next request on.

    One line first says how many calls of the last 24 h that were allowed would be denied; with --dry-run
    the full report is shown and the grant is kept."""
    _grant_action(name, namespace, "delete", output, dry_run)
