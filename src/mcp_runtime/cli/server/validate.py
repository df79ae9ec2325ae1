"""`mcp-runtime server validate`: check `.mcp/servers.yaml`, and grants and sessions against it.

A grant naming a tool the metadata lacks, or a running server with tools the metadata lacks, turns into
calls denied as `tool_side_effect_unknown` at the gateway: this finds them before a build or apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.files import load_resource_files
from mcp_runtime.cli.common.metadata import MetadataDirOption, known_namespace, load_servers
from mcp_runtime.cli.server.common import TimeoutOption, count, discover, server_problem
from mcp_runtime.cli.server.init import STDIO_TIMEOUT
from mcp_runtime.cli.server.stdio import PACKAGE_PREFIXES, discover_stdio, stdio_spec
from mcp_runtime.resources import (
    GrantPhase,
    MCPAccessGrant,
    MCPAgentSession,
    ServerMetadata,
    ServersFile,
    SessionPhase,
    ToolDecision,
    Trust,
)
from mcp_runtime.resources.common import utcnow


def validate(
    metadata_dir: Path = MetadataDirOption,
    grant_file: list[Path] | None = typer.Option(
        None, "--grant-file", metavar="FILE",
        help="An MCPAccessGrant YAML to check.",
    ),
    session_file: list[Path] | None = typer.Option(
        None, "--session-file", metavar="FILE",
        help="An MCPAgentSession YAML to check.",
    ),
    from_server: str | None = typer.Option(
        None, "--from-server",
        help="Compare the metadata's tools with a running server's (a URL), or with the stdio server the entry "
             "runs (`stdio`, started for the check) or a package (npm:<pkg>@<version>, pypi:<pkg>==<version>)."
    ),
    server: str | None = typer.Option(
        None, "--server", help="With --from-server: which metadata entry runs there (when there are several)."
    ),
    timeout: float = TimeoutOption,
) -> None:
    """Check the metadata, and grants and sessions against it, before a build or apply.

    A grant naming a tool the metadata lacks, or a running server with tools the metadata lacks,
    means tool calls denied as tool_side_effect_unknown at the gateway. Exit code 1 on any problem.
    """
    path, model = load_servers(metadata_dir)
    problems = [p for meta in model.servers if (p := server_problem(meta, path))]
    grants = load_resource_files(grant_file or [], MCPAccessGrant, "--grant-file")
    sessions = load_resource_files(session_file or [], MCPAgentSession, "--session-file")
    warnings: list[str] = []
    for source, grant in grants:
        problems += _grant_problems(source, grant, model, path, warnings)
    for source, session in sessions:
        problems += _reference_problems(source, "session", session, model, path)
        phase = session.phase_at(utcnow())
        if phase != SessionPhase.active:
            warnings.append(f"{source}: session {session.metadata.name!r} is {phase.value}")
    if problems:
        raise CliError("; ".join(problems), hint="fix the names and re-run 'mcp-runtime server validate'")

    if from_server:
        meta = _pick_server(model, server, path)
        discovered = _discover(meta, from_server, timeout)
        _compare_with_server(meta, [t.name for t in discovered], from_server, path)

    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    tools = sum(len(s.tools) for s in model.servers)
    names = ", ".join(f"{s.name} ({count(len(s.tools), 'tool')})" for s in model.servers)
    typer.echo(f"OK {path}: {count(len(model.servers), 'server')}, {count(tools, 'tool')}: {names}")
    if grants or sessions:
        typer.echo(f"OK {count(len(grants), 'grant')}, {count(len(sessions), 'session')} match the metadata")
    if from_server:
        typer.echo(f"OK {from_server}: its {count(len(discovered), 'tool')} match server {meta.name!r}")


def _reference_problems(source: Path, what: str, resource: MCPAccessGrant | MCPAgentSession, model: ServersFile,
                        path: Path) -> list[str]:
    """The grant or session must name a server of the metadata, in the namespace that server goes to."""
    name, server = resource.metadata.name, resource.spec.server_ref.name
    meta = model.get(server)
    if meta is None:
        known = ", ".join(s.name for s in model.servers)
        return [f"{source}: {what} {name!r} is for server {server!r}, which {path} does not list "
                f"(it lists: {known}); fix serverRef.name or add the server with 'server init'"]
    expected = known_namespace(meta)
    actual = resource.metadata.namespace or resource.spec.server_ref.namespace
    if expected and actual and actual != expected:
        return [f"{source}: {what} {name!r} is in namespace {actual!r} but server {server!r} is published to "
                f"{expected!r} (metadata scope/namespace): the gateway would ignore it; fix metadata.namespace"]
    return []


def _grant_problems(source: Path, grant: MCPAccessGrant, model: ServersFile, path: Path,
                    warnings: list[str]) -> list[str]:
    """Tool rules must name tools the metadata declares; also warn about rules that can never pass."""
    name, server_name = grant.metadata.name, grant.spec.server_ref.name
    problems = _reference_problems(source, "grant", grant, model, path)
    meta = model.get(server_name)
    if meta is None:
        return problems
    declared = {t.name: t for t in meta.tools}
    for rule in grant.spec.tool_rules:
        tool = declared.get(rule.name)
        if tool is None:
            problems.append(
                f"{source}: grant {name!r} names tool {rule.name!r}, which server {server_name!r} in {path} does "
                f"not declare: calls to it would be denied as tool_side_effect_unknown; fix the tool name or add "
                f"it to the metadata (declared: {', '.join(declared) or 'none'})"
            )
            continue
        if rule.decision != ToolDecision.allow:
            continue
        required = max(tool.required_trust, rule.required_trust or Trust.low)
        if grant.spec.max_trust < required:
            warnings.append(f"{source}: grant {name!r}: tool {rule.name!r} needs trust {required} but maxTrust is "
                            f"{grant.spec.max_trust}: calls will be denied as trust_too_low")
        effects = grant.spec.allowed_side_effects
        if effects and tool.side_effect not in effects:
            warnings.append(f"{source}: grant {name!r}: tool {rule.name!r} has side effect {tool.side_effect}, "
                            "not in allowedSideEffects: calls will be denied as side_effect_not_allowed")
    phase = grant.phase_at(utcnow())
    if phase != GrantPhase.active:
        warnings.append(f"{source}: grant {name!r} is {phase.value}: it matches no caller")
    return problems


def _pick_server(model: ServersFile, server: str | None, path: Path) -> ServerMetadata:
    if server:
        meta = model.get(server)
        if meta is None:
            raise CliError(f"--server {server!r} is not in {path}",
                           hint=f"use one of {', '.join(s.name for s in model.servers)}")
        return meta
    if len(model.servers) > 1:
        raise CliError(f"{path} lists several servers ({', '.join(s.name for s in model.servers)})",
                       hint="pass --server NAME to say which one runs at --from-server")
    return model.servers[0]


def _discover(meta: ServerMetadata, target: str, timeout: float) -> list[Any]:
    """Tools from a URL, from the entry's own stdio command (`stdio`), or from a package shorthand."""
    if target == "stdio":
        if meta.stdio is None:
            raise CliError(f"--from-server stdio: server {meta.name!r} has no stdio command in its metadata",
                           hint="add one with 'server init --stdio-command ... --force', or pass the server's URL")
        return discover_stdio(meta.stdio, max(timeout, STDIO_TIMEOUT), "--from-server stdio")
    if target.startswith(PACKAGE_PREFIXES):
        return discover_stdio(stdio_spec(target), max(timeout, STDIO_TIMEOUT), "--from-server")
    return discover(target, timeout)


def _compare_with_server(meta: ServerMetadata, live: list[str], url: str, path: Path) -> None:
    declared = set(meta.tool_names())
    undeclared = sorted(set(live) - declared)
    stale = sorted(declared - set(live))
    if not undeclared and not stale:
        return
    parts = []
    if undeclared:
        parts.append(f"the server at {url} has tools that {path} lacks for {meta.name!r}: {', '.join(undeclared)} "
                     "(calls to them are denied as tool_side_effect_unknown; add them with a side effect)")
    if stale:
        parts.append(f"{path} lists tools for {meta.name!r} that the server lacks: {', '.join(stale)} "
                     "(stale entries; remove them or fix their names)")
    raise CliError("; ".join(parts),
                   hint=f"edit {path}, or re-run 'mcp-runtime server init {meta.name} --from-server {url} --force' "
                   "with a --tool-spec for each tool that writes")
