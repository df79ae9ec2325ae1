"""`mcp-runtime access`: grants and sessions (the gateway's policy inputs) and `explain`.

One module holds the whole `access` group: the sub-apps `grant` and `session` carry both the
platform commands (apply, list, get, ...) and the local scaffolding (`init`, in scaffold_access.py);
`explain` asks the platform, or judges local files when given --metadata-dir/--grant-file/--session-file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

from mcp_runtime.cli import scaffold_access, simulate
from mcp_runtime.cli.errors import CliError
from mcp_runtime.cli.output import OutputFormat, OutputOption, emit
from mcp_runtime.client import ApiCallError, ApiClient, client
from mcp_runtime.resources import ResourceError, load_resource

app = typer.Typer(help="Grants and sessions for gateway policy.", no_args_is_help=True)
grant_app = typer.Typer(help="Access grants: who may call which tools of a server.", no_args_is_help=True)
session_app = typer.Typer(help="Agent sessions: consented trust, expiry, revocation.", no_args_is_help=True)
app.add_typer(grant_app, name="grant")
app.add_typer(session_app, name="session")
grant_app.command("init")(scaffold_access.grant_init)
session_app.command("init")(scaffold_access.session_init)
app.command("simulate")(simulate.simulate)

NamespaceOption = typer.Option(None, "--namespace", "-n", help="Namespace (found by name when omitted).")
FileOption = typer.Option(..., "--file", "-f", help="YAML file (from `access grant|session init`).")
DryRunOption = typer.Option(False, "--dry-run", help="Show the impact on the last 24 h of calls; change nothing.")

GRANT_COLUMNS = [("NAME", "metadata.name"), ("NAMESPACE", "metadata.namespace"),
                 ("SERVER", "spec.serverRef.name"), ("HUMAN", "spec.subject.humanID"),
                 ("AGENT", "spec.subject.agentID"), ("TEAM", "spec.subject.teamID"),
                 ("MAX TRUST", "spec.maxTrust"), ("TOOLS", "tools"), ("STATUS", "status.phase")]
SESSION_COLUMNS = [("NAME", "metadata.name"), ("NAMESPACE", "metadata.namespace"),
                   ("SERVER", "spec.serverRef.name"), ("HUMAN", "spec.subject.humanID"),
                   ("AGENT", "spec.subject.agentID"), ("TEAM", "spec.subject.teamID"),
                   ("TRUST", "spec.consentedTrust"), ("EXPIRES", "spec.expiresAt"), ("STATUS", "status.phase")]


def _read_documents(path: Path, kind: str) -> list[dict[str, Any]]:
    """The resources in a YAML file, checked locally first so errors name the file and field."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise CliError(f"{path}: not valid YAML ({exc})") from None
    if not docs:
        raise CliError(f"{path} holds no resource")
    for doc in docs:
        try:
            resource = load_resource(doc, source=str(path))
        except ResourceError as exc:
            raise CliError(str(exc)) from None
        if resource.kind != kind:
            raise CliError(f"{path}: expected a {kind}, found a {resource.kind}")
    return docs


def _with_tools(grant: dict[str, Any]) -> dict[str, Any]:
    rules = grant.get("spec", {}).get("toolRules", [])
    shown = [r["name"] if r.get("decision", "allow") == "allow" else f"!{r['name']}" for r in rules]
    return {**grant, "tools": shown or ["*"]}


def _locate(api: ApiClient, collection: str, name: str, namespace: str | None) -> str:
    """The namespace of `name` when not given: the only visible one with that name."""
    if namespace:
        return namespace
    found = sorted({i["metadata"]["namespace"] for i in api.get(f"runtime/{collection}")["items"]
                    if i["metadata"]["name"] == name})
    word = collection.rstrip("s")
    if not found:
        raise CliError(f"{word} {name} not found", hint=f"mcp-runtime access {word} list")
    if len(found) > 1:
        raise CliError(f"{word} {name} exists in several namespaces ({', '.join(found)})", hint="pass --namespace")
    return str(found[0])


def _apply(api: ApiClient, collection: str, doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create, or replace when it exists (kubectl-apply semantics); (answer, created)."""
    try:
        return api.post(f"runtime/{collection}", doc), True
    except ApiCallError as exc:
        if exc.code != "already_exists":
            raise
    meta = doc.get("metadata", {})
    namespace = meta.get("namespace") or doc.get("spec", {}).get("serverRef", {}).get("namespace")
    return api.put(f"runtime/{collection}/{namespace}/{meta.get('name')}", doc), False


# grants -----------------------------------------------------------------------------------------
def _server_of(doc: dict[str, Any]) -> tuple[str, str | None]:
    spec, meta = doc.get("spec", {}), doc.get("metadata", {})
    return spec["serverRef"]["name"], meta.get("namespace") or spec["serverRef"].get("namespace")


@grant_app.command("apply")
def grant_apply(file: Path = FileOption, dry_run: bool = DryRunOption, output: OutputFormat = OutputOption) -> None:
    """Create or update the grant(s) in a YAML file.

    First the change is replayed against the last 24 h of the server's recorded calls: one line says how many
    calls that were allowed would be denied; with --dry-run the full report is shown and nothing is applied."""
    api = client()
    docs = _read_documents(file, "MCPAccessGrant")
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
        grant, created = _apply(api, "grants", doc)
        results.append(grant)
        if output == OutputFormat.table:
            meta = grant["metadata"]
            typer.echo(f"grant {meta['name']} {'created' if created else 'updated'} in {meta['namespace']} "
                       f"({grant.get('status', {}).get('phase', '-')})")
    if output != OutputFormat.table:
        emit(results[0] if len(results) == 1 else results, output)


@grant_app.command("list")
def grant_list(namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """List the grants you can see (your teams' namespaces and grants naming your team)."""
    items = client().get("runtime/grants", params={"namespace": namespace})["items"]
    emit([_with_tools(g) for g in items] if output == OutputFormat.table else items, output,
         columns=GRANT_COLUMNS)


@grant_app.command("get")
def grant_get(name: str, namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """Show one grant."""
    api = client()
    grant = api.get(f"runtime/grants/{_locate(api, 'grants', name, namespace)}/{name}")
    emit(_with_tools(grant) if output == OutputFormat.table else grant, output, columns=GRANT_COLUMNS)


def _grant_action(name: str, namespace: str | None, action: str, output: OutputFormat,
                  dry_run: bool = False) -> None:
    api = client()
    ns = _locate(api, "grants", name, namespace)
    path = f"runtime/grants/{ns}/{name}"
    if action == "delete":
        server = api.get(path)["spec"]["serverRef"]["name"]
        if not simulate.impact_before_change(api, server, ns, {"deleteGrants": [name]}, dry_run=dry_run,
                                             output=output):
            return
    grant = api.delete(path) if action == "delete" else api.post(f"{path}/{action}")
    if output != OutputFormat.table:
        emit(grant, output)
        return
    done = {"enable": "enabled", "disable": "disabled", "delete": "deleted"}[action]
    typer.echo(f"grant {name} {done} in {ns}")


@grant_app.command("enable")
def grant_enable(name: str, namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """Put a disabled grant back in force."""
    _grant_action(name, namespace, "enable", output)


@grant_app.command("disable")
def grant_disable(name: str, namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """Stop a grant from matching, without deleting it."""
    _grant_action(name, namespace, "disable", output)


@grant_app.command("delete")
def grant_delete(name: str, namespace: str | None = NamespaceOption, dry_run: bool = DryRunOption,
                 output: OutputFormat = OutputOption) -> None:
    """Delete a grant; the gateway denies its callers from the next request on.

    One line first says how many calls of the last 24 h that were allowed would be denied; with --dry-run
    the full report is shown and the grant is kept."""
    _grant_action(name, namespace, "delete", output, dry_run)


# sessions ---------------------------------------------------------------------------------------
@session_app.command("apply")
def session_apply(file: Path = FileOption, output: OutputFormat = OutputOption) -> None:
    """Create or update the session(s) in a YAML file (platform admins)."""
    api = client()
    results = []
    for doc in _read_documents(file, "MCPAgentSession"):
        answer, created = _apply(api, "sessions", doc)
        results.append(answer)
        if output == OutputFormat.table:
            meta = answer["session"]["metadata"]
            typer.echo(f"session {meta['name']} {'created' if created else 'updated'} in {meta['namespace']}, "
                       f"expires {answer.get('expiresAt')} (bearer token: mcp-runtime access session token "
                       f"{meta['name']} --namespace {meta['namespace']})")
    if output != OutputFormat.table:
        emit(results[0] if len(results) == 1 else results, output)


@session_app.command("list")
def session_list(namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """List the sessions you can see."""
    emit(client().get("runtime/sessions", params={"namespace": namespace})["items"], output,
         columns=SESSION_COLUMNS)


@session_app.command("get")
def session_get(name: str, namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """Show one session."""
    api = client()
    emit(api.get(f"runtime/sessions/{_locate(api, 'sessions', name, namespace)}/{name}"), output,
         columns=SESSION_COLUMNS)


def _session_action(name: str, namespace: str | None, action: str, output: OutputFormat) -> None:
    api = client()
    ns = _locate(api, "sessions", name, namespace)
    session = api.post(f"runtime/sessions/{ns}/{name}/{action}")
    if output != OutputFormat.table:
        emit(session, output)
        return
    typer.echo(f"session {name} {action}d in {ns}")


@session_app.command("revoke")
def session_revoke(name: str, namespace: str | None = NamespaceOption,
                   output: OutputFormat = OutputOption) -> None:
    """Revoke a session: its token stops working at the gateway and it is not re-issued."""
    _session_action(name, namespace, "revoke", output)


@session_app.command("unrevoke")
def session_unrevoke(name: str, namespace: str | None = NamespaceOption,
                     output: OutputFormat = OutputOption) -> None:
    """Lift a revocation (platform admins)."""
    _session_action(name, namespace, "unrevoke", output)


@session_app.command("token")
def session_token(name: str, namespace: str | None = NamespaceOption,
                  output: OutputFormat = OutputOption) -> None:
    """Print a fresh bearer token for a session, for clients that send a static header (admins/owners)."""
    api = client()
    answer = api.post(f"runtime/sessions/{_locate(api, 'sessions', name, namespace)}/{name}/token")
    if output != OutputFormat.table:
        emit(answer, output)
        return
    typer.echo(answer["token"])


# explain ----------------------------------------------------------------------------------------


@app.command("explain")
def explain(
    tool: str = typer.Option(..., "--tool", help="The tool being called."),
    server: str | None = typer.Option(None, "--server", help="Server name (local mode: default the only one)."),
    namespace: str | None = typer.Option(None, "--namespace", "-n", help="Server namespace (platform mode)."),
    agent_id: str | None = typer.Option(None, "--agent-id", help="Agent identity, e.g. cursor."),
    human_id: str | None = typer.Option(None, "--human-id", help="Human identity (platform default: you)."),
    team_id: str | None = typer.Option(None, "--team-id", help="Team UUID the agent acts for."),
    session: str | None = typer.Option(None, "--session", help="Platform mode: judge with this session (name)."),
    metadata_dir: Path | None = typer.Option(None, "--metadata-dir",
                                             help="Local mode: directory holding servers.yaml."),
    grant_file: list[Path] | None = typer.Option(None, "--grant-file", metavar="FILE",
                                                 help="Local mode: MCPAccessGrant YAML; repeat."),
    session_file: Path | None = typer.Option(None, "--session-file", metavar="FILE",
                                             help="Local mode: the caller's MCPAgentSession YAML."),
    output: OutputFormat = OutputOption,
) -> None:
    """May this identity call this tool, and why: the gateway's evaluator decides.

    Against the platform (default): the server's current compiled policy. With --metadata-dir,
    --grant-file or --session-file: from local files (.mcp/servers.yaml plus the YAML given).
    Without a session the caller is taken to hold a valid one (trust capped by the grants only).
    Exit code 0 when the call is allowed, 1 when it is denied (or on bad input).
    """
    if metadata_dir is not None or grant_file or session_file is not None:
        if namespace or session:
            raise CliError("--namespace and --session ask the platform; local files carry their own",
                           hint="drop them, or drop --metadata-dir/--grant-file/--session-file")
        scaffold_access.explain(tool=tool, metadata_dir=metadata_dir or Path(".mcp"), grant_file=grant_file,
                                session_file=session_file, server=server, agent_id=agent_id, team_id=team_id,
                                human_id=human_id, output_format=output)
        return
    if not server:
        raise CliError("--server is required to ask the platform",
                       hint="or explain from local files with --metadata-dir and --grant-file")
    answer = client().post("runtime/explain", {
        "server": server, "namespace": namespace, "tool": tool, "agentID": agent_id, "humanID": human_id,
        "teamID": team_id, "session": session,
    })
    if output != OutputFormat.table:
        emit(answer, output)
    else:
        _print_explanation(answer)
    if not answer["allowed"]:
        raise typer.Exit(1)


def _print_explanation(answer: dict[str, Any]) -> None:
    verdict = "ALLOW" if answer["allowed"] else "DENY"
    typer.echo(f"{verdict} ({answer['reason']}): {answer['message']}")
    for key in ("server", "namespace", "tool", "matchedGrant", "matchedSession", "effectiveTrust",
                "requiredTrust", "sideEffect", "policyRevision"):
        if answer.get(key):
            typer.echo(f"  {key}: {answer[key]}")
    if answer.get("sessionAssumed"):
        typer.echo("  (judged as if the caller held a session; pass --session NAME to check a real one)")
