"""`mcp-runtime access explain`: may this identity call this tool, and why.

Against the platform (default) it asks for the server's current compiled policy to be judged. With
--metadata-dir, --grant-file or --session-file it compiles the policy from `.mcp/servers.yaml` plus the
given grant and session files, and asks the same evaluator the gateway uses. Nothing here decides on its own.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.files import load_resource_files
from mcp_runtime.cli.common.metadata import DEFAULT_METADATA_DIR, known_namespace, load_metadata, servers_path
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit_structured
from mcp_runtime.client import client
from mcp_runtime.policy import ARGUMENTS_UNKNOWN, Decision, Identity, PolicyDocument, compile_policy, evaluate
from mcp_runtime.resources import (
    MCPAccessGrant,
    MCPAgentSession,
    ServerMetadata,
    ServersFile,
    describe_validation_error,
    metadata_to_server,
)


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
    arguments: str | None = typer.Option(None, "--arguments", metavar="JSON",
                                         help="The call's arguments as a JSON object, to judge argument "
                                              "conditions (without it a condition is shown as 'if')."),
    output: OutputFormat = OutputOption,
) -> None:
    """May this identity call this tool, and why: the gateway's evaluator decides.

    Against the platform (default): the server's current compiled policy. With --metadata-dir,
    --grant-file or --session-file: from local files (.mcp/servers.yaml plus the YAML given).
    Without a session the caller is taken to hold a valid one (trust capped by the grants only).
    With --arguments '{"amount": 50}' a grant's argument condition is judged as the gateway would.
    Exit code 0 when the call is allowed, 1 when it is denied (or on bad input).
    """
    args = _parse_arguments(arguments)
    if metadata_dir is not None or grant_file or session_file is not None:
        if namespace or session:
            raise CliError("--namespace and --session ask the platform; local files carry their own",
                           hint="drop them, or drop --metadata-dir/--grant-file/--session-file")
        allowed = _explain_local(tool, metadata_dir or DEFAULT_METADATA_DIR, grant_file or [], session_file,
                                 server, Identity(human_id=human_id, agent_id=agent_id, team_id=team_id), args,
                                 output)
    else:
        allowed = _explain_on_platform(tool, server, namespace, agent_id, human_id, team_id, session, args,
                                       output)
    if not allowed:
        raise typer.Exit(1)


# --- on the platform ---------------------------------------------------------------------------
def _parse_arguments(text: str | None) -> dict[str, Any] | None:
    """--arguments: a JSON object (what a `tools/call` carries in `params.arguments`)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CliError(f"--arguments is not JSON: {exc}",
                       hint="""pass an object, e.g. --arguments '{"amount": 50}'""") from None
    if not isinstance(value, dict):
        raise CliError(f"--arguments must be a JSON object, not {type(value).__name__}",
                       hint="""pass the tool's arguments by name, e.g. --arguments '{"amount": 50}'""")
    return value


def _explain_on_platform(tool: str, server: str | None, namespace: str | None, agent_id: str | None,
                         human_id: str | None, team_id: str | None, session: str | None,
                         arguments: dict[str, Any] | None, output: OutputFormat) -> bool:
    if not server:
        raise CliError("--server is required to ask the platform",
                       hint="or explain from local files with --metadata-dir and --grant-file")
    answer = client().post("runtime/explain", {
        "server": server, "namespace": namespace, "tool": tool, "agentID": agent_id, "humanID": human_id,
        "teamID": team_id, "session": session, "arguments": arguments,
    })
    if not emit_structured(answer, output):
        _print_explanation(answer)
    return bool(answer["allowed"])


def _print_explanation(answer: dict[str, Any]) -> None:
    verdict = "ALLOW" if answer["allowed"] else "DENY"
    typer.echo(f"{verdict} ({answer['reason']}): {answer['message']}")
    for key in ("server", "namespace", "tool", "matchedGrant", "matchedSession", "effectiveTrust",
                "requiredTrust", "sideEffect", "condition", "conditionDetail", "policyRevision"):
        if answer.get(key):
            typer.echo(f"  {key}: {answer[key]}")
    if answer.get("conditional"):
        typer.echo("  (the grant's condition decides: pass --arguments '{...}' to judge a call)")
    if answer.get("sessionAssumed"):
        typer.echo("  (judged as if the caller held a session; pass --session NAME to check a real one)")


# --- from local files --------------------------------------------------------------------------
def _explain_local(tool: str, metadata_dir: Path, grant_files: list[Path], session_file: Path | None,
                   server: str | None, given: Identity, arguments: dict[str, Any] | None,
                   output: OutputFormat) -> bool:
    """Judge from local files. Without --session-file the caller is taken to hold a valid session, so
    trust is capped by the grants' maxTrust only; with it, the session's name is the session id and its
    subject fills in the identity fields not given on the command line."""
    path = servers_path(metadata_dir)
    model, _ = load_metadata(metadata_dir)
    grants = [g for _, g in load_resource_files(grant_files, MCPAccessGrant, "--grant-file")]
    session = _one_session(session_file)
    meta = _server_entry(server, model, grants, session, session_file, path)
    namespace = known_namespace(meta) or _namespace(grants, session) or meta.resolved_namespace()
    ignored = [g.metadata.name for g in grants if g.spec.server_ref.name != meta.name
               or (g.metadata.namespace or namespace) != namespace]
    doc = _local_policy(meta, namespace, grants, session, path)
    identity = _identity(given, session)
    decision = evaluate(doc, identity, tool, datetime.now(UTC),
                        ARGUMENTS_UNKNOWN if arguments is None else arguments)
    _print_decision(decision, identity, ignored, session is None, output)
    return decision.allowed


def _one_session(session_file: Path | None) -> MCPAgentSession | None:
    sessions = [s for _, s in load_resource_files([session_file] if session_file else [], MCPAgentSession,
                                                   "--session-file")]
    if len(sessions) > 1:
        raise CliError(f"--session-file {session_file} holds {len(sessions)} sessions",
                       hint="pass a file with the caller's one session")
    return sessions[0] if sessions else None


def _server_entry(server: str | None, model: ServersFile, grants: list[MCPAccessGrant],
                  session: MCPAgentSession | None, session_file: Path | None, path: Path) -> ServerMetadata:
    """The metadata entry of the server asked about; the session must be for that server."""
    server_name = _pick_server(server, model, grants, session, path)
    meta = model.get(server_name)
    if meta is None:
        known = ", ".join(s.name for s in model.servers) or "none"
        raise CliError(f"server {server_name!r} is not in {path}",
                       hint=f"servers there: {known}; pass --server or fix the grant's serverRef")
    if session is not None and session.spec.server_ref.name != server_name:
        raise CliError(f"--session-file {session_file}: session {session.metadata.name!r} is for server "
                       f"{session.spec.server_ref.name!r}, not {server_name!r}",
                       hint="pass the caller's session for this server, or --server")
    return meta


def _local_policy(meta: ServerMetadata, namespace: str, grants: list[MCPAccessGrant],
                  session: MCPAgentSession | None, path: Path) -> PolicyDocument:
    """The policy document the platform would compile from these files."""
    try:
        mcp_server = metadata_to_server(meta, namespace=namespace)
    except ValidationError as exc:
        raise CliError(f"{path}: server {meta.name!r}: {describe_validation_error(exc)}",
                       hint="check it with 'mcp-runtime server validate'") from None
    if session is None:  # judge the grants, not the transport: assume the caller holds a valid session
        mcp_server.spec.session.required = False
    return compile_policy(mcp_server, grants, [session] if session else [])


def _identity(given: Identity, session: MCPAgentSession | None) -> Identity:
    """The flags' identity, completed from the session's subject; at least one id is needed."""
    subject = session.spec.subject if session else None
    identity = Identity(
        human_id=given.human_id or (subject.human_id if subject else None),
        agent_id=given.agent_id or (subject.agent_id if subject else None),
        team_id=given.team_id or (subject.team_id if subject else None),
        session_id=session.metadata.name if session else None,
    )
    if identity.is_empty():
        raise CliError("no caller given", hint="pass --agent-id, --team-id, --human-id or --session-file")
    return identity


def _pick_server(server: str | None, model: ServersFile, grants: list[MCPAccessGrant],
                 session: MCPAgentSession | None, path: Path) -> str:
    """--server, else the only server in the metadata, else the one server all the files name."""
    if server:
        return server
    if len(model.servers) == 1:
        return str(model.servers[0].name)
    named = {g.spec.server_ref.name for g in grants} | ({session.spec.server_ref.name} if session else set())
    if len(named) == 1:
        return named.pop()
    known = ", ".join(s.name for s in model.servers) or "none"
    raise CliError(f"{path} lists several servers ({known}) and the files do not pick one",
                   hint="pass --server NAME")


def _namespace(grants: list[MCPAccessGrant], session: MCPAgentSession | None) -> str | None:
    """The namespace the files live in: the policy only keeps grants of the server's namespace."""
    if session is not None and session.metadata.namespace:
        return session.metadata.namespace
    for grant in grants:
        if grant.metadata.namespace:
            return str(grant.metadata.namespace)
    return None


def _print_decision(decision: Decision, identity: Identity, ignored: list[str], assumed_session: bool,
                    fmt: OutputFormat) -> None:
    if emit_structured(decision.to_json(), fmt):
        return
    who = ", ".join(f"{k}={v}" for k, v in (("human", identity.human_id), ("agent", identity.agent_id),
                                            ("team", identity.team_id), ("session", identity.session_id)) if v)
    verdict = "ALLOW" if decision.allowed else "ALLOW ONCE APPROVED" if decision.needs_approval else "DENY"
    typer.echo(f"{verdict}: tool {decision.tool!r} on {decision.server} for {who}")
    rows = [("reason", decision.reason.value), ("grant", decision.matched_grant or "-")]
    if decision.matched_session:
        rows.append(("session", decision.matched_session))
    rows += [("trust", f"required {decision.required_trust or '-'}, effective {decision.effective_trust or '-'}"),
             ("side effect", str(decision.side_effect or "-"))]
    if decision.approval is not None:
        rows.append(("approver", decision.approval.value))
    if decision.condition is not None:
        verdict = ("not judged: pass --arguments" if decision.conditional
                   else decision.condition_detail or "holds")
        rows.append(("condition", f"{decision.condition} ({verdict})"))
    for label, value in rows:
        typer.echo(f"  {label + ':':<13}{value}")
    typer.echo(f"  {decision.message}")
    if ignored:
        typer.echo(f"note: grants for another server or namespace were ignored: {', '.join(ignored)}")
    if assumed_session:
        typer.echo("note: no --session-file: evaluated as a caller with a valid session "
                   "(trust capped by the grants' maxTrust only)")
