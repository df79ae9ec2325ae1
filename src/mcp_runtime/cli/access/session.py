"""`mcp-runtime access session`: agent sessions (consented trust, expiry, revocation).

`init` writes a session YAML locally; `apply`, `list`, `get`, `revoke`, `unrevoke` and `token` work on the
platform.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

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
from mcp_runtime.cli.common.api import NamespaceOption
from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.flags import format_time, parse_choice, resolve_expiry
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit, emit_structured
from mcp_runtime.client import client
from mcp_runtime.resources import SESSION_KIND, MCPAgentSession, Trust

app = typer.Typer(help="Agent sessions: consented trust, expiry, revocation.", no_args_is_help=True)

COLUMNS = [("NAME", "metadata.name"), ("NAMESPACE", "metadata.namespace"),
           ("SERVER", "spec.serverRef.name"), ("HUMAN", "spec.subject.humanID"),
           ("AGENT", "spec.subject.agentID"), ("TEAM", "spec.subject.teamID"),
           ("TRUST", "spec.consentedTrust"), ("EXPIRES", "spec.expiresAt"), ("STATUS", "status.phase")]


# --- init: write the YAML ----------------------------------------------------------------------
@app.command("init")
def session_init(
    name: str = typer.Argument(..., help="Session name (the token's sid)."),
    server: str = ServerOption,
    namespace: str = ServerNamespaceOption,
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
        "subject": subject(human_id, agent_id, team_id),
        "consentedTrust": consented.value,
        "expiresAt": format_time(expiry),
        "revoked": revoked,
    }
    if bool(upstream_token_secret) != bool(upstream_token_key):
        raise CliError("--upstream-token-secret and --upstream-token-key go together",
                       hint="pass both (the Secret's name and the key inside it) or neither")
    if upstream_token_secret:
        spec["upstreamTokenSecretRef"] = {"name": upstream_token_secret, "key": upstream_token_key}
    write_resource(MCPAgentSession, document(MCPAgentSession, name, namespace, spec), output, f"session {name!r}")


# --- the platform ------------------------------------------------------------------------------
@app.command("apply")
def session_apply(file: Path = FileOption, output: OutputFormat = OutputOption) -> None:
    """Create or update the session(s) in a YAML file (platform admins)."""
    api = client()
    results = []
    for doc in read_documents(file, SESSION_KIND):
        answer, created = apply(api, "sessions", doc)
        results.append(answer)
        if output == OutputFormat.table:
            meta = answer["session"]["metadata"]
            typer.echo(f"session {meta['name']} {'created' if created else 'updated'} in {meta['namespace']}, "
                       f"expires {answer.get('expiresAt')} (bearer token: mcp-runtime access session token "
                       f"{meta['name']} --namespace {meta['namespace']})")
    emit_applied(results, output)


@app.command("list")
def session_list(namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """List the sessions you can see."""
    emit(client().get("runtime/sessions", params={"namespace": namespace})["items"], output, columns=COLUMNS)


@app.command("get")
def session_get(name: str, namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """Show one session."""
    api = client()
    emit(api.get(f"runtime/sessions/{locate(api, 'sessions', name, namespace)}/{name}"), output, columns=COLUMNS)


def _session_action(name: str, namespace: str | None, action: str, output: OutputFormat) -> None:
    api = client()
    ns = locate(api, "sessions", name, namespace)
    session = api.post(f"runtime/sessions/{ns}/{name}/{action}")
    if emit_structured(session, output):
        return
    typer.echo(f"session {name} {action}d in {ns}")


@app.command("revoke")
def session_revoke(name: str, namespace: str | None = NamespaceOption,
                   output: OutputFormat = OutputOption) -> None:
    """Revoke a session: its token stops working at the gateway and it is not re-issued."""
    _session_action(name, namespace, "revoke", output)


@app.command("unrevoke")
def session_unrevoke(name: str, namespace: str | None = NamespaceOption,
                     output: OutputFormat = OutputOption) -> None:
    """Lift a revocation (platform admins)."""
    _session_action(name, namespace, "unrevoke", output)


@app.command("token")
def session_token(name: str, namespace: str | None = NamespaceOption,
                  output: OutputFormat = OutputOption) -> None:
    """Print a fresh bearer token for a session, for clients that send a static header (admins/owners)."""
    api = client()
    answer = api.post(f"runtime/sessions/{locate(api, 'sessions', name, namespace)}/{name}/token")
    if emit_structured(answer, output):
        return
    typer.echo(answer["token"])
