"""Local `access` commands: write grant and session YAML, and explain a decision from local files.

`access grant init` and `access session init` only write files (apply them with the platform
commands); `access explain` compiles the policy from `.mcp/servers.yaml` plus the given grant and
session files and asks the same evaluator the gateway uses. Nothing here decides on its own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from mcp_runtime.cli.errors import CliError
from mcp_runtime.cli.local_files import (
    check_unique,
    format_time,
    load_metadata,
    load_resource_files,
    parse_choice,
    resolve_expiry,
    resource_error,
    servers_path,
    split_spec,
    write_atomic,
)
from mcp_runtime.cli.output import OutputFormat, OutputOption, emit
from mcp_runtime.cli.server import known_namespace
from mcp_runtime.policy import Decision, Identity, compile_policy, evaluate
from mcp_runtime.resources import (
    MCPAccessGrant,
    MCPAgentSession,
    ResourceError,
    SideEffect,
    ToolDecision,
    Trust,
    describe_validation_error,
    metadata_to_server,
    to_yaml,
    validate_model,
)
from mcp_runtime.resources.common import GROUP_VERSION, check_tool_name

ServerOption = typer.Option(..., "--server", help="Name of the MCPServer it applies to.")
NamespaceOption = typer.Option(..., "--namespace", help="The server's namespace, e.g. mcp-team-acme.")
HumanOption = typer.Option(None, "--human-id", help="Subject: the human (user id).")
AgentOption = typer.Option(None, "--agent-id", help="Subject: the agent, e.g. cursor.")
TeamOption = typer.Option(None, "--team-id", help="Subject: the team id (another team's id shares the server).")
ExpiresInOption = typer.Option(None, "--expires-in", help="Lifetime from now, e.g. 30m, 4h, 7d.")
ExpiresAtOption = typer.Option(None, "--expires-at", help="Absolute expiry, ISO 8601, e.g. 2026-01-31T12:00:00Z.")
FileOutputOption = typer.Option(..., "--output", help="File to write the YAML to.")


def _subject(human_id: str | None, agent_id: str | None, team_id: str | None) -> dict[str, str]:
    subject = {k: v for k, v in (("humanID", human_id), ("agentID", agent_id), ("teamID", team_id)) if v}
    if not subject:
        raise CliError("no subject given", hint="pass at least one of --agent-id, --team-id, --human-id")
    return subject


def _metadata(name: str, namespace: str) -> dict[str, str]:
    return {"name": name, "namespace": namespace}


def _write_resource(kind: type[MCPAccessGrant] | type[MCPAgentSession], data: dict[str, Any], output: Path,
                    what: str) -> None:
    """Validate the built resource with the model (names, ids), then write it atomically."""
    try:
        resource = validate_model(kind, data, source=what)
    except ResourceError as exc:
        raise resource_error(exc, "fix the flags and re-run") from None
    if output.is_dir():
        raise CliError(f"--output {output} is a directory", hint="pass a file name such as grant.yaml")
    existed = output.exists()
    write_atomic(output, to_yaml(resource))
    typer.echo(f"wrote {output}{' (replaced the existing file)' if existed else ''}")


# --- access grant init -----------------------------------------------------------------------


def grant_init(
    name: str = typer.Argument(..., help="Grant name."),
    server: str = ServerOption,
    namespace: str = NamespaceOption,
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
    rules = [{"name": _tool_name(t, "--tool"), "decision": "allow", "requiredTrust": max_trust.value}
             for t in tool or []]
    rules += [_parse_tool_rule(v) for v in tool_rule or []]
    check_unique([r["name"] for r in rules], "tool")
    effects = [parse_choice(s, SideEffect, "--side-effect").value for s in side_effect or []]
    spec: dict[str, Any] = {
        "serverRef": {"name": server, "namespace": namespace},
        "subject": _subject(human_id, agent_id, team_id),
        "maxTrust": max_trust.value,
        "allowedSideEffects": effects,
        "toolRules": rules,
        "disabled": disabled,
    }
    expiry = resolve_expiry(expires_in, expires_at, now=datetime.now(UTC), required=False)
    if expiry is not None:
        spec["expiresAt"] = format_time(expiry)
    data = {"apiVersion": GROUP_VERSION, "kind": "MCPAccessGrant",
            "metadata": _metadata(name, namespace), "spec": spec}
    _write_resource(MCPAccessGrant, data, output, f"grant {name!r}")


def _tool_name(name: str, flag: str) -> str:
    try:
        return check_tool_name(name.strip())
    except ValueError as exc:
        raise CliError(f"{flag} {exc}") from None


def _parse_tool_rule(value: str) -> dict[str, str]:
    """`name:allow|deny:low|medium|high`."""
    name, decision, trust = split_spec(value, "--tool-rule", "name:allow|deny:low|medium|high",
                                       "create_task:deny:medium")
    return {
        "name": _tool_name(name, "--tool-rule"),
        "decision": parse_choice(decision, ToolDecision, f"--tool-rule {value!r}: decision").value,
        "requiredTrust": parse_choice(trust, Trust, f"--tool-rule {value!r}: trust").value,
    }


# --- access session init ---------------------------------------------------------------------


def session_init(
    name: str = typer.Argument(..., help="Session name (the token's sid)."),
    server: str = ServerOption,
    namespace: str = NamespaceOption,
    team_id: str | None = TeamOption,
    agent_id: str | None = AgentOption,
    human_id: str | None = HumanOption,
    trust: str = typer.Option(..., "--trust", help="Consented trust: low, medium or high."),
    expires_in: str | None = ExpiresInOption,
    expires_at: str | None = ExpiresAtOption,
    revoked: bool = typer.Option(False, "--revoked", help="Write the session revoked."),
    upstream_token_secret: str | None = typer.Option(
        None, "--upstream-token-secret", help="Secret holding the upstream credential (with --upstream-token-key)."
    ),
    upstream_token_key: str | None = typer.Option(None, "--upstream-token-key", help="Key inside that Secret."),
    output: Path = FileOutputOption,
) -> None:
    """Write an MCPAgentSession YAML; --expires-in is turned into an absolute UTC expiresAt."""
    consented = parse_choice(trust, Trust, "--trust")
    expiry = resolve_expiry(expires_in, expires_at, now=datetime.now(UTC), required=True)
    assert expiry is not None
    spec: dict[str, Any] = {
        "serverRef": {"name": server, "namespace": namespace},
        "subject": _subject(human_id, agent_id, team_id),
        "consentedTrust": consented.value,
        "expiresAt": format_time(expiry),
        "revoked": revoked,
    }
    if bool(upstream_token_secret) != bool(upstream_token_key):
        raise CliError("--upstream-token-secret and --upstream-token-key go together",
                       hint="pass both (the Secret's name and the key inside it) or neither")
    if upstream_token_secret:
        spec["upstreamTokenSecretRef"] = {"name": upstream_token_secret, "key": upstream_token_key}
    data = {"apiVersion": GROUP_VERSION, "kind": "MCPAgentSession",
            "metadata": _metadata(name, namespace), "spec": spec}
    _write_resource(MCPAgentSession, data, output, f"session {name!r}")


# --- access explain --------------------------------------------------------------------------


def explain(
    tool: str = typer.Option(..., "--tool", help="The tool being called."),
    metadata_dir: Path = typer.Option(Path(".mcp"), "--metadata-dir", help="Directory holding servers.yaml."),
    grant_file: list[Path] | None = typer.Option(
        None, "--grant-file", metavar="FILE",
        help="MCPAccessGrant YAML; repeat.",
    ),
    session_file: Path | None = typer.Option(
        None, "--session-file", metavar="FILE", help="The caller's MCPAgentSession YAML (its name is the session id)."
    ),
    server: str | None = typer.Option(None, "--server", help="Server in the metadata (default: the only one)."),
    agent_id: str | None = AgentOption,
    team_id: str | None = TeamOption,
    human_id: str | None = HumanOption,
    output_format: OutputFormat = OutputOption,
) -> None:
    """Explain whether a caller may call a tool, from local files, with the gateway's evaluator.

    Exit code 0 when the call is allowed, 1 when it is denied (or on bad input).
    Without --session-file the caller is taken to hold a valid session, so trust is capped by the
    grants' maxTrust only; with it, the session's name is the session id and its subject fills in
    the identity fields not given on the command line.
    """
    path = servers_path(metadata_dir)
    model, _ = load_metadata(metadata_dir)
    grants = [g for _, g in load_resource_files(grant_file or [], MCPAccessGrant, "--grant-file")]
    sessions = [s for _, s in load_resource_files([session_file] if session_file else [], MCPAgentSession,
                                                   "--session-file")]
    if len(sessions) > 1:
        raise CliError(f"--session-file {session_file} holds {len(sessions)} sessions",
                       hint="pass a file with the caller's one session")
    session = sessions[0] if sessions else None

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
    namespace = known_namespace(meta) or _namespace(grants, session) or meta.resolved_namespace()
    ignored = [g.metadata.name for g in grants if g.spec.server_ref.name != server_name
               or (g.metadata.namespace or namespace) != namespace]
    try:
        mcp_server = metadata_to_server(meta, namespace=namespace)
    except ValidationError as exc:
        raise CliError(f"{path}: server {server_name!r}: {describe_validation_error(exc)}",
                       hint="check it with 'mcp-runtime server validate'") from None
    if session is None:  # judge the grants, not the transport: assume the caller holds a valid session
        mcp_server.spec.session.required = False
    doc = compile_policy(mcp_server, grants,
                         [session] if session else [])

    identity = Identity(
        human_id=human_id or (session.spec.subject.human_id if session else None),
        agent_id=agent_id or (session.spec.subject.agent_id if session else None),
        team_id=team_id or (session.spec.subject.team_id if session else None),
        session_id=session.metadata.name if session else None,
    )
    if identity.is_empty():
        raise CliError("no caller given", hint="pass --agent-id, --team-id, --human-id or --session-file")
    decision = evaluate(doc, identity, tool, datetime.now(UTC))
    _print_decision(decision, identity, ignored, session is None, output_format)
    if not decision.allowed:
        raise typer.Exit(1)


def _pick_server(server: str | None, model: Any, grants: list[Any], session: MCPAgentSession | None,
                 path: Path) -> str:
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


def _namespace(grants: list[Any], session: MCPAgentSession | None) -> str | None:
    """The namespace the files live in: the policy only keeps grants of the server's namespace."""
    if session is not None and session.metadata.namespace:
        return session.metadata.namespace
    for grant in grants:
        if grant.metadata.namespace:
            return str(grant.metadata.namespace)
    return None


def decision_json(decision: Decision) -> dict[str, Any]:
    return {
        "allowed": decision.allowed,
        "reason": decision.reason.value,
        "server": decision.server,
        "tool": decision.tool,
        "matchedGrant": decision.matched_grant,
        "matchedSession": decision.matched_session,
        "requiredTrust": decision.required_trust.value if decision.required_trust else None,
        "effectiveTrust": decision.effective_trust.value if decision.effective_trust else None,
        "sideEffect": decision.side_effect.value if decision.side_effect else None,
        "policyRevision": decision.policy_revision,
        "message": decision.message,
    }


def _print_decision(decision: Decision, identity: Identity, ignored: list[str], assumed_session: bool,
                    fmt: OutputFormat) -> None:
    if fmt != OutputFormat.table:
        emit(decision_json(decision), fmt)
        return
    who = ", ".join(f"{k}={v}" for k, v in (("human", identity.human_id), ("agent", identity.agent_id),
                                            ("team", identity.team_id), ("session", identity.session_id)) if v)
    typer.echo(f"{'ALLOW' if decision.allowed else 'DENY'}: tool {decision.tool!r} on {decision.server} for {who}")
    rows = [("reason", decision.reason.value), ("grant", decision.matched_grant or "-")]
    if decision.matched_session:
        rows.append(("session", decision.matched_session))
    rows += [("trust", f"required {decision.required_trust or '-'}, effective {decision.effective_trust or '-'}"),
             ("side effect", str(decision.side_effect or "-"))]
    for label, value in rows:
        typer.echo(f"  {label + ':':<13}{value}")
    typer.echo(f"  {decision.message}")
    if ignored:
        typer.echo(f"note: grants for another server or namespace were ignored: {', '.join(ignored)}")
    if assumed_session:
        typer.echo("note: no --session-file: evaluated as a caller with a valid session "
                   "(trust capped by the grants' maxTrust only)")


# --- registration ----------------------------------------------------------------------------


def register(access_app: typer.Typer, grant_app: typer.Typer, session_app: typer.Typer) -> None:
    """Add `grant init`, `session init` and `explain` to the `access` group built in cli/access.py."""
    grant_app.command("init")(grant_init)
    session_app.command("init")(session_init)
    access_app.command("explain")(explain)
