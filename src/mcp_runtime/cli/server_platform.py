"""`mcp-runtime server deploy|list|get|status|delete|logs|policy inspect`: servers on the platform.

These commands talk to the platform API as the active profile. `deploy` sends the `.mcp` metadata
entry (by name, or the only one in the file) so the server's tool inventory, and so its governance,
travels with it. A NAME without --namespace is found among the servers the caller can see.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from mcp_runtime.cli.errors import CliError
from mcp_runtime.cli.local_files import load_metadata, parse_choice, servers_path
from mcp_runtime.cli.output import OutputFormat, OutputOption, console, emit
from mcp_runtime.client import ApiCallError, ApiClient, client
from mcp_runtime.resources import ResourceError, Scope, ServerMetadata, validate_model

NamespaceOption = typer.Option(None, "--namespace", "-n", help="Namespace (found by name when omitted).")
LIST_COLUMNS = [("NAME", "name"), ("NAMESPACE", "namespace"), ("READY", "ready"), ("STATUS", "phase"),
                ("URL", "url")]
STATUS_COLUMNS = [("NAME", "name"), ("NAMESPACE", "namespace"), ("READY", "ready"), ("STATUS", "phase"),
                  ("MESSAGE", "message")]
TOOL_COLUMNS = [("TOOL", "name"), ("TRUST", "requiredTrust"), ("SIDE EFFECT", "sideEffect"),
                ("DESCRIPTION", "description")]


def register(server_app: typer.Typer) -> None:
    """Add the platform commands to the `server` group (init/validate/generate live in server.py)."""
    server_app.command("deploy")(deploy)
    server_app.command("list")(list_servers)
    server_app.command("get")(get)
    server_app.command("status")(status)
    server_app.command("delete")(delete)
    server_app.command("logs")(logs)
    policy_app = typer.Typer(help="The compiled policy the gateway enforces.", no_args_is_help=True)
    policy_app.command("inspect")(policy_inspect)
    server_app.add_typer(policy_app, name="policy")


# --- helpers -----------------------------------------------------------------------------------
def locate(api: ApiClient, name: str, namespace: str | None) -> str:
    """The namespace of server `name`: as given, or the only visible server with that name."""
    if namespace:
        return namespace
    found = sorted(s["metadata"]["namespace"] for s in api.get("runtime/servers")["items"]
                   if s["metadata"]["name"] == name)
    if not found:
        raise CliError(f"server {name} not found (or not visible to you)", hint="mcp-runtime server list")
    if len(found) > 1:
        raise CliError(f"server {name} exists in several namespaces: {', '.join(found)}",
                       hint=f"pass --namespace, e.g. --namespace {found[0]}")
    return str(found[0])


def ready_count(server: dict[str, Any]) -> str:
    """`1/1` like kubectl: ready replicas (as reported, else 'all' when Ready) over desired."""
    status = server.get("status") or {}
    desired = int(server.get("spec", {}).get("replicas", 1))
    ready = status.get("readyReplicas")
    if ready is None:
        ready = desired if status.get("phase") == "Ready" else 0
    return f"{ready}/{desired}"


def public_url(api: ApiClient, path: str | None) -> str | None:
    """A route such as `/payments/mcp` is served by the platform's gateway: prefix the platform URL."""
    if not path:
        return None
    return f"{api.profile.api_url}{path}" if path.startswith("/") else path


def summary_row(api: ApiClient, server: dict[str, Any]) -> dict[str, Any]:
    meta, spec, status = server["metadata"], server.get("spec", {}), server.get("status") or {}
    return {"name": meta["name"], "namespace": meta.get("namespace"), "ready": ready_count(server),
            "phase": status.get("phase", "Pending"), "message": status.get("message"),
            "url": public_url(api, status.get("url") or spec.get("ingressPath"))}


def _table(title: str | None, columns: list[tuple[str, str]], rows: list[dict[str, Any]]) -> None:
    if title:
        console.print(title)
    emit(rows, OutputFormat.table, columns=columns)


def _pairs(pairs: list[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs) + 2
    for key, value in pairs:
        typer.echo(f"{key + ':':<{width}}{'-' if value in (None, '', []) else value}")


# --- deploy ------------------------------------------------------------------------------------
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
    entries = [e for e in raw["servers"] if isinstance(e, dict)]
    entry = next((e for e in entries if e.get("name") == name), None)
    if entry is None and len(model.servers) == 1:
        entry = entries[0]
        typer.echo(f"using the tool inventory of {entry.get('name')!r} from {path} for server {name}", err=True)
    if entry is None:
        listed = ", ".join(s.name for s in model.servers) or "no servers"
        raise CliError(f"{path} has no entry for server {name} (it lists: {listed})",
                       hint=f"run 'mcp-runtime server init {name}', or deploy one of the listed names")
    return dict(entry)


def deploy(
    name: str = typer.Argument(..., help="Server name on the platform."),
    scope: str | None = typer.Option(None, "--scope", help="tenant (your team's namespace), org or public."),
    metadata_dir: Path = typer.Option(Path(".mcp"), "--metadata-dir", help="Directory holding servers.yaml."),
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
    entry = _metadata_entry(name, metadata_dir, required=image is None and run is None)
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
    body: dict[str, Any] = {"name": name, "metadata": entry, "update": update, "scope": scope_value,
                            "team": team, "namespace": namespace, "image": image, "imageTag": tag}
    api = client()
    try:
        server = api.post("runtime/servers", {k: v for k, v in body.items() if v is not None})
    except ApiCallError as exc:
        if exc.code == "already_exists":
            raise CliError(exc.message.split(";")[0], hint="use --update to redeploy it") from None
        raise
    if output != OutputFormat.table:
        emit(server, output)
        return
    row = summary_row(api, server)
    verb = "Deployed" if api.last_status == 201 else "Redeployed"
    typer.echo(f"{verb} server {row['name']} to namespace {row['namespace']} ({row['phase']})")
    typer.echo(f"URL: {row['url']}")
    typer.echo(f"Next: mcp-runtime server status {row['name']} --namespace {row['namespace']}")


# --- list, get, status -------------------------------------------------------------------------
def list_servers(namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """List the servers you can see: READY replicas and STATUS (phase) as the runtime reports them."""
    api = client()
    items = api.get("runtime/servers", params={"namespace": namespace})["items"]
    if output != OutputFormat.table:
        emit(items, output)
        return
    if not items:
        typer.echo("No servers." + ("" if namespace else " Deploy one with: mcp-runtime server deploy NAME"))
        return
    emit([summary_row(api, s) for s in items], output, columns=LIST_COLUMNS)


def get(name: str = typer.Argument(..., help="Server name."), namespace: str | None = NamespaceOption,
        output: OutputFormat = OutputOption) -> None:
    """Show a server: a summary and its tools (-o json|yaml for the whole resource)."""
    api = client()
    server = api.get(f"runtime/servers/{locate(api, name, namespace)}/{name}")
    if output != OutputFormat.table:
        emit(server, output)
        return
    spec, meta = server.get("spec", {}), server["metadata"]
    row = summary_row(api, server)
    policy, session, run = spec.get("policy", {}), spec.get("session", {}), spec.get("run")
    _pairs([
        ("Name", meta["name"]), ("Namespace", meta.get("namespace")), ("Team ID", spec.get("teamID")),
        ("Description", spec.get("description")),
        ("Status", row["phase"] + (f" ({row['message']})" if row["message"] else "")),
        ("Ready", row["ready"]), ("URL", row["url"]), ("Image", _image(spec)),
        ("Run", f"{run['command']} (in {run.get('workingDir') or '.'})" if run else None),
        ("Policy", f"{policy.get('mode', 'allow-list')}, default {policy.get('defaultDecision', 'deny')}, "
                   f"session {'required' if session.get('required', True) else 'optional'}"),
        ("Gateway", "enabled" if spec.get("gateway", {}).get("enabled", True) else "disabled"),
        ("Generation", meta.get("generation")), ("Created", meta.get("creationTimestamp")),
    ])
    tools = spec.get("tools", [])
    typer.echo("")
    if not tools:
        typer.echo("No tools declared: every tool call is denied as tool_side_effect_unknown.")
        return
    _table(None, TOOL_COLUMNS, tools)


def _image(spec: dict[str, Any]) -> str | None:
    image, tag = spec.get("image"), spec.get("imageTag")
    if not image:
        return None
    return f"{image}:{tag}" if tag and ":" not in image.rsplit("/", 1)[-1] else str(image)


def status(name: str | None = typer.Argument(None, help="One server (default: all you can see)."),
           namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """Phase, readiness and the runtime's message; with NAME also its conditions and recent events."""
    api = client()
    if name is None:
        items = api.get("runtime/servers", params={"namespace": namespace})["items"]
        rows = [summary_row(api, s) for s in items]
        if output != OutputFormat.table:
            emit(rows, output)
        elif not rows:
            typer.echo("No servers.")
        else:
            emit(rows, output, columns=STATUS_COLUMNS)
        return
    ns = locate(api, name, namespace)
    answer = api.get(f"runtime/servers/{ns}/{name}/status")
    events = api.get(f"runtime/servers/{ns}/{name}/events", params={"limit": 10})["items"]
    if output != OutputFormat.table:
        emit({**answer, "events": events}, output)
        return
    ready = answer.get("readyReplicas")
    _pairs([("Server", f"{name} ({ns})"), ("Status", answer.get("phase")), ("Message", answer.get("message")),
            ("Ready", f"{ready if ready is not None else 0}/{answer.get('replicas', 1)}"),
            ("URL", public_url(api, answer.get("url")))])
    if answer.get("conditions"):
        typer.echo("")
        _table(None, [("CONDITION", "type"), ("STATUS", "status"), ("REASON", "reason"), ("MESSAGE", "message")],
               answer["conditions"])
    if events:
        typer.echo("")
        _table(None, [("TIME", "at"), ("BY", "actor"), ("EVENT", "message")], events)


# --- delete, logs --------------------------------------------------------------------------------
def delete(name: str = typer.Argument(..., help="Server name."), namespace: str | None = NamespaceOption,
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
           output: OutputFormat = OutputOption) -> None:
    """Delete a server: the runtime stops it and its route stops answering."""
    api = client()
    ns = locate(api, name, namespace)
    if not yes:
        if not sys.stdin.isatty():
            raise CliError(f"refusing to delete server {name} in {ns} without confirmation",
                           hint="pass --yes")
        typer.confirm(f"Delete server {name} in namespace {ns}?", abort=True)
    deleted = api.delete(f"runtime/servers/{ns}/{name}")
    if output != OutputFormat.table:
        emit(deleted, output)
        return
    typer.echo(f"server {name} deleted from {ns}")


def logs(name: str = typer.Argument(..., help="Server name."), namespace: str | None = NamespaceOption,
         tail: int | None = typer.Option(None, "--tail", min=0, help="Lines from the end to show (default 200)."),
         follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines (Ctrl-C stops)."),
         gateway: bool = typer.Option(False, "--gateway", help="With --use-kube: the mcp-gateway sidecar's logs."),
         use_kube: bool = typer.Option(False, "--use-kube", help="Read the pods' logs from the Kubernetes API "
                                       "(admin; needs RBAC and --namespace)."),
         kubeconfig: str | None = typer.Option(None, "--kubeconfig", help="With --use-kube: kubeconfig file."),
         context: str | None = typer.Option(None, "--context", help="With --use-kube: kubeconfig context."),
         ) -> None:
    """Print the server's output as its runtime captured it (its team and admins only)."""
    if use_kube:
        from mcp_runtime.cli import server_kube

        if not namespace:
            raise CliError("--use-kube needs --namespace", hint=f"e.g. --namespace mcp-team-<team> {name}")
        server_kube.server_logs(name=name, namespace=namespace, follow=follow, tail=tail, gateway=gateway,
                                use_kube=True, kubeconfig=kubeconfig, context=context)
        return
    if gateway:
        raise CliError("--gateway reads the gateway sidecar of a Kubernetes pod", hint="add --use-kube")
    api = client()
    ns = locate(api, name, namespace)
    path = f"runtime/servers/{ns}/{name}/logs"
    params = {"tail": 200 if tail is None else tail}
    if not follow:
        for line in api.get(path, params=params)["lines"]:
            typer.echo(line)
        return
    try:
        for line in api.stream_lines(path, params={**params, "follow": "true"}):
            typer.echo(line)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


# --- policy inspect ------------------------------------------------------------------------------
GRANT_COLUMNS = [("GRANT", "name"), ("HUMAN", "subject.humanID"), ("AGENT", "subject.agentID"),
                 ("TEAM", "subject.teamID"), ("MAX TRUST", "maxTrust"), ("SIDE EFFECTS", "sideEffects"),
                 ("TOOLS", "tools"), ("DISABLED", "disabled"), ("EXPIRES", "expiresAt")]
SESSION_COLUMNS = [("SESSION", "name"), ("HUMAN", "subject.humanID"), ("AGENT", "subject.agentID"),
                   ("TEAM", "subject.teamID"), ("TRUST", "consentedTrust"), ("EXPIRES", "expiresAt"),
                   ("REVOKED", "revoked")]
POLICY_TOOL_COLUMNS = [("TOOL", "name"), ("TRUST", "requiredTrust"), ("SIDE EFFECT", "sideEffect"),
                       ("RISK", "riskLevel")]


def policy_inspect(name: str = typer.Argument(..., help="Server name."), namespace: str | None = NamespaceOption,
                   output: OutputFormat = OutputOption) -> None:
    """Show the compiled policy document: revision, tools, grants and sessions (-o json: the document)."""
    api = client()
    ns = locate(api, name, namespace)
    document = api.get(f"runtime/servers/{ns}/{name}/policy")
    if output != OutputFormat.table:
        emit(document, output)
        return
    _pairs([("Server", f"{name} ({ns})"), ("Revision", document.get("revision")),
            ("Mode", document.get("mode")), ("Default", document.get("defaultDecision")),
            ("Session required", "yes" if document.get("sessionRequired") else "no")])
    grants = [{**g, "sideEffects": g.get("allowedSideEffects") or ["any"],
               "tools": [r["name"] if r.get("decision", "allow") == "allow" else f"!{r['name']}"
                         for r in g.get("toolRules", [])] or ["*"]}
              for g in document.get("grants", [])]
    for title, columns, rows in (("Tools", POLICY_TOOL_COLUMNS, document.get("tools", [])),
                                 ("Grants", GRANT_COLUMNS, grants),
                                 ("Sessions", SESSION_COLUMNS, document.get("sessions", []))):
        typer.echo("")
        if rows:
            _table(f"{title}:", columns, rows)
        else:
            typer.echo(f"{title}: none")
