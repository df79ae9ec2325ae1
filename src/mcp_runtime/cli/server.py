"""`mcp-runtime server init|validate|generate`: author and check `.mcp/servers.yaml` locally.

These commands need no platform: they read and write files, and `--from-server` talks to a server
running on this machine to discover its tools. The point is to catch tool-name and side-effect
mismatches before a deploy, because at the gateway they turn into `tool_side_effect_unknown` denials.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from mcp_runtime.cli import images
from mcp_runtime.cli.errors import CliError
from mcp_runtime.cli.local_files import (
    check_unique,
    dump_yaml,
    load_metadata,
    load_resource_files,
    parse_choice,
    resource_error,
    servers_path,
    split_spec,
    write_atomic,
)
from mcp_runtime.resources import (
    MCPAccessGrant,
    MCPAgentSession,
    PolicyMode,
    ResourceError,
    Scope,
    ServerMetadata,
    ServersFile,
    SideEffect,
    ToolDecision,
    ToolSpec,
    Trust,
    describe_validation_error,
    dump_resource,
    metadata_to_server,
    scope_namespace,
    to_yaml,
    validate_model,
)
from mcp_runtime.resources.common import check_dns_label, check_tool_name, utcnow
from mcp_runtime.resources.server import DEFAULT_APP_PORT

app = typer.Typer(help="Scaffold and validate .mcp metadata; deploy, inspect and manage servers on the platform.",
                  no_args_is_help=True)
images.register(app)  # server build image

MetadataDirOption = typer.Option(Path(".mcp"), "--metadata-dir", help="Directory holding servers.yaml.")
TimeoutOption = typer.Option(10.0, "--timeout", help="Seconds to wait for --from-server to answer.")


# --- server init -----------------------------------------------------------------------------


@app.command("init")
def init(
    name: str = typer.Argument(..., help="Server name (lowercase letters, digits and '-')."),
    tool: list[str] | None = typer.Option(
        None, "--tool", metavar="TOOL", help="A tool with side effect read and trust low; repeat."
    ),
    tool_spec: list[str] | None = typer.Option(
        None, "--tool-spec", metavar="NAME:TRUST:SIDE_EFFECT",
        help="A tool with trust low|medium|high and side effect read|write|destructive; repeat.",
    ),
    scope: str | None = typer.Option(None, "--scope", help="Where it is published: tenant (default), org, public."),
    force: bool = typer.Option(
        False, "--force", help="Replace the entry with the same name: its tools, and the flags given; fields init "
        "does not write (image, imageTag, env vars, ...) are kept."
    ),
    policy_mode: str | None = typer.Option(
        None, "--policy-mode", help="allow-list (enforce, default) or observe."
    ),
    default_decision: str | None = typer.Option(
        None, "--default-decision", help="Decision when no grant matches: deny (default) or allow."
    ),
    session_required: bool | None = typer.Option(
        None, "--session-required/--no-session-required", help="Require an agent session for tool calls (default)."
    ),
    from_server: str | None = typer.Option(
        None, "--from-server", help="Discover tools from a running server (http://localhost:8088 gets /mcp)."
    ),
    run: str | None = typer.Option(None, "--run", help="Command that starts the server locally (process runtime)."),
    metadata_dir: Path = MetadataDirOption,
    description: str | None = typer.Option(None, "--description", help="Short summary for the catalog."),
    timeout: float = TimeoutOption,
) -> None:
    """Create or update the server's entry in <metadata-dir>/servers.yaml.

    Other servers in the file are kept as written; an entry with the same name is replaced only
    with --force. Tool names must match what the server implements: use --from-server to read them.
    """
    try:
        check_dns_label(name)
    except ValueError as exc:
        raise CliError(f"server name {exc}") from None
    scope_value = parse_choice(scope, Scope, "--scope") if scope is not None else None
    mode = parse_choice(policy_mode, PolicyMode, "--policy-mode") if policy_mode is not None else None
    decision = (parse_choice(default_decision, ToolDecision, "--default-decision")
                if default_decision is not None else None)
    plain = [_checked_tool_name(t, "--tool") for t in tool or []]
    specs = [_parse_tool_spec(v) for v in tool_spec or []]
    check_unique([*plain, *(s.name for s in specs)], "tool")

    path = servers_path(metadata_dir)
    current, raw = load_metadata(metadata_dir, missing_ok=True)
    replacing = current.get(name) is not None
    if replacing and not force:
        raise CliError(f"server {name!r} already exists in {path}",
                       hint="pass --force to replace it, or pick another name")

    if from_server:
        discovered = discover(from_server, timeout)
        typer.echo("Discovered: " + (", ".join(sorted(t.name for t in discovered)) or "(no tools)"))
        tools = _merge_discovered(discovered, plain, specs, from_server)
    else:
        tools = [ToolSpec(name=t, side_effect=SideEffect.read, required_trust=Trust.low) for t in plain] + specs

    old = _raw_entry(raw["servers"], name) if replacing else {}
    entry = _scaffold_entry(old, name=name, description=description, scope=scope_value, tools=tools, mode=mode,
                            decision=decision, session_required=session_required, run=run)
    try:
        meta = validate_model(ServerMetadata, entry, source=f"{path}: server {name!r}")
    except ResourceError as exc:
        raise resource_error(exc, "fix the flags (or the existing entry) and re-run") from None

    raw["servers"] = _upsert(raw["servers"], entry)
    try:
        validate_model(ServersFile, raw, source=str(path))  # the whole file must still load
    except ResourceError as exc:
        raise resource_error(exc, f"fix {path} and re-run") from None
    write_atomic(path, dump_yaml(raw))

    verb = "Replaced" if replacing else "Added"
    listed = f": {', '.join(meta.tool_names())}" if meta.tools else ""
    typer.echo(f"{verb} server {name!r} in {path} ({_count(len(meta.tools), 'tool')}{listed})")
    if not meta.tools:
        typer.echo("note: no tools listed; every tool call will be denied as tool_side_effect_unknown until "
                   "you add them (--tool, --tool-spec or --from-server, with --force)")
    if from_server:
        _review_note(discovered, specs)
    typer.echo(f"Next: mcp-runtime server validate --metadata-dir {metadata_dir}")


def _checked_tool_name(name: str, flag: str) -> str:
    try:
        return check_tool_name(name.strip())
    except ValueError as exc:
        raise CliError(f"{flag} {exc}") from None


def _parse_tool_spec(value: str) -> ToolSpec:
    """`name:trust:side-effect`, e.g. `create_task:medium:write`."""
    name, trust, side_effect = split_spec(value, "--tool-spec", "name:trust:side-effect",
                                          "create_task:medium:write")
    name = _checked_tool_name(name, "--tool-spec")
    trusts, effects = {t.value for t in Trust}, {s.value for s in SideEffect}
    if trust.lower() in effects and side_effect.lower() in trusts:
        raise CliError(f"--tool-spec {value!r} has trust and side effect swapped",
                       hint=f"the format is name:trust:side-effect, e.g. {name}:{side_effect}:{trust}")
    return ToolSpec(
        name=name,
        required_trust=parse_choice(trust, Trust, f"--tool-spec {value!r}: trust"),
        side_effect=parse_choice(side_effect, SideEffect, f"--tool-spec {value!r}: side effect"),
    )


def _merge_discovered(discovered: Sequence[Any], plain: list[str], specs: list[ToolSpec],
                      url: str) -> list[ToolSpec]:
    """Discovered tools (sorted), read/low unless a --tool-spec of the same name says otherwise."""
    by_name = {t.name: t for t in discovered}
    unknown = [n for n in [*plain, *(s.name for s in specs)] if n not in by_name]
    if unknown:
        raise CliError(
            f"--tool/--tool-spec name {', '.join(repr(n) for n in unknown)}, which the server at {url} does not "
            f"list (it lists: {', '.join(sorted(by_name)) or 'no tools'})",
            hint="fix the tool name, or drop --from-server to declare tools by hand",
        )
    overrides = {s.name: s for s in specs}
    tools = []
    for name in sorted(by_name):
        found = by_name[name]
        _checked_tool_name(name, f"the server at {url} lists a tool whose name")
        spec = overrides.get(name) or ToolSpec(name=name, side_effect=SideEffect.read, required_trust=Trust.low)
        text = (getattr(found, "description", "") or "").strip()
        if text and spec.description is None:
            spec = spec.model_copy(update={"description": text[:4096]})
        tools.append(spec)
    return tools


def _review_note(discovered: Sequence[Any], specs: list[ToolSpec]) -> None:
    """Discovery cannot know side effects: say so, and name tools whose annotations hint at writes."""
    overridden = {s.name for s in specs}
    hinted = sorted(
        t.name for t in discovered
        if t.name not in overridden and (
            (getattr(t, "annotations", None) or {}).get("readOnlyHint") is False
            or (getattr(t, "annotations", None) or {}).get("destructiveHint") is True
        )
    )
    typer.echo("note: discovered tools are recorded with sideEffect read and requiredTrust low; review the "
               "tools that write or delete and set them with --tool-spec name:trust:write|destructive --force "
               "(or edit servers.yaml)")
    if hinted:
        typer.echo(f"note: these tools say they are not read-only: {', '.join(hinted)}")


def _raw_entry(entries: list[Any], name: str) -> dict[str, Any]:
    return next((dict(e) for e in entries if isinstance(e, dict) and e.get("name") == name), {})


def _scaffold_entry(old: dict[str, Any], *, name: str, description: str | None, scope: Scope | None,
                    tools: list[ToolSpec], mode: PolicyMode | None, decision: ToolDecision | None,
                    session_required: bool | None, run: str | None) -> dict[str, Any]:
    """The entry `server init` writes: scaffolded fields, none of the platform wiring.

    On --force the old entry is the base: tools are replaced, flags given override, and what init does
    not manage (image, imageTag, port, env vars, a custom route, ...) is kept as it was written.
    """
    def section(key: str) -> dict[str, Any]:
        value = old.get(key)
        return dict(value) if isinstance(value, dict) else {}

    entry: dict[str, Any] = {"name": name}
    if description is not None or old.get("description") is not None:
        entry["description"] = description if description is not None else old["description"]
    entry["scope"] = scope.value if scope else old.get("scope", Scope.tenant.value)
    entry["route"] = old.get("route", f"/{name}")
    entry["port"] = old.get("port", DEFAULT_APP_PORT)
    entry["replicas"] = old.get("replicas", 1)
    entry["gateway"] = {"enabled": True, **section("gateway")}
    policy = section("policy")
    policy["mode"] = mode.value if mode else policy.get("mode", PolicyMode.allow_list.value)
    policy["defaultDecision"] = decision.value if decision else policy.get("defaultDecision", ToolDecision.deny.value)
    entry["policy"] = policy
    session = section("session")
    session["required"] = session_required if session_required is not None else session.get("required", True)
    entry["session"] = session
    entry["tools"] = [dump_resource(t) for t in tools]
    if run is not None:
        entry["run"] = {"command": run, "workingDir": str(Path.cwd().resolve())}
    if not old:
        return entry
    merged = {k: entry.get(k, v) for k, v in old.items()}  # the old key order, then what init adds
    merged.update({k: v for k, v in entry.items() if k not in old})
    return merged


def _upsert(entries: list[Any], entry: dict[str, Any]) -> list[Any]:
    """Replace the entry with the same name in place, or append it; other entries stay as written."""
    result = list(entries)
    for i, existing in enumerate(result):
        if isinstance(existing, dict) and existing.get("name") == entry["name"]:
            result[i] = entry
            return result
    result.append(entry)
    return result


def discover(url: str, timeout: float) -> list[Any]:
    """The tools a running server lists, or a CliError saying why it could not be asked."""
    from mcp_runtime.runtime.discovery import DiscoveryError, discover_tools_sync

    try:
        tools = discover_tools_sync(url, timeout)
    except DiscoveryError as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise CliError(f"--from-server: {message}",
                       hint=getattr(exc, "hint", None) or "start the server, or check the URL") from None
    except ValueError as exc:
        raise CliError(f"--from-server: {exc}") from None
    return list({t.name: t for t in tools}.values())


# --- server validate -------------------------------------------------------------------------


@app.command("validate")
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
        None, "--from-server", help="Compare the metadata's tools with a running server's."
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
    path = servers_path(metadata_dir)
    model, _ = load_metadata(metadata_dir)
    if not model.servers:
        raise CliError(f"{path} lists no servers", hint="add one with 'mcp-runtime server init NAME'")
    problems = [p for meta in model.servers if (p := _server_problem(meta, path))]
    grants = load_resource_files(grant_file or [], MCPAccessGrant, "--grant-file")
    sessions = load_resource_files(session_file or [], MCPAgentSession, "--session-file")
    warnings: list[str] = []
    for source, grant in grants:
        problems += _grant_problems(source, grant, model, path, warnings)
    for source, session in sessions:
        problems += _reference_problems(source, "session", session, model, path)
        if session.phase_at(utcnow()).value != "Active":
            warnings.append(f"{source}: session {session.metadata.name!r} is {session.phase_at(utcnow()).value}")
    if problems:
        raise CliError("; ".join(problems), hint="fix the names and re-run 'mcp-runtime server validate'")

    if from_server:
        meta = _pick_server(model, server, path)
        discovered = discover(from_server, timeout)
        _compare_with_server(meta, [t.name for t in discovered], from_server, path)

    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    tools = sum(len(s.tools) for s in model.servers)
    names = ", ".join(f"{s.name} ({_count(len(s.tools), 'tool')})" for s in model.servers)
    typer.echo(f"OK {path}: {_count(len(model.servers), 'server')}, {_count(tools, 'tool')}: {names}")
    if grants or sessions:
        typer.echo(f"OK {_count(len(grants), 'grant')}, {_count(len(sessions), 'session')} match the metadata")
    if from_server:
        typer.echo(f"OK {from_server}: its {_count(len(discovered), 'tool')} match server {meta.name!r}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _server_problem(meta: ServerMetadata, path: Path) -> str | None:
    """What stops this entry from becoming an MCPServer (e.g. gateway port equal to the app port)."""
    try:
        metadata_to_server(meta)
    except ValidationError as exc:
        return f"{path}: server {meta.name!r}: {describe_validation_error(exc)}"
    return None


def known_namespace(meta: ServerMetadata) -> str | None:
    """The namespace the server is published to when the metadata fixes it (tenant needs the platform)."""
    if meta.namespace:
        return meta.namespace
    return scope_namespace(meta.scope) if meta.scope != Scope.tenant else None


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
    phase = grant.phase_at(utcnow()).value
    if phase != "Active":
        warnings.append(f"{source}: grant {name!r} is {phase}: it matches no caller")
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


# --- server generate -------------------------------------------------------------------------


@app.command("generate")
def generate(
    metadata_dir: Path = MetadataDirOption,
    output: Path = typer.Option(..., "--output", help="Directory to write one <name>.yaml per server into."),
    namespace: str | None = typer.Option(None, "--namespace", help="Namespace for every manifest (default: by scope)."),
) -> None:
    """Render one MCPServer manifest per metadata entry, for review or GitOps."""
    path = servers_path(metadata_dir)
    model, _ = load_metadata(metadata_dir)
    if not model.servers:
        raise CliError(f"{path} lists no servers", hint="add one with 'mcp-runtime server init NAME'")
    if namespace is not None:
        try:
            check_dns_label(namespace)
        except ValueError as exc:
            raise CliError(f"--namespace {exc}") from None
    if output.exists() and not output.is_dir():
        raise CliError(f"--output {output} is a file", hint="pass a directory")
    rendered = {}
    for meta in model.servers:  # render all first: one bad entry writes nothing
        problem = _server_problem(meta, path)
        if problem:
            raise CliError(problem, hint=f"fix {path} and re-run")
        rendered[meta.name] = to_yaml(metadata_to_server(meta, namespace=namespace))
    for name, text in rendered.items():
        target = output / f"{name}.yaml"
        write_atomic(target, text)
        typer.echo(f"wrote {target}")


def _register_platform_commands() -> None:
    """deploy, list, get, status, delete, logs and policy inspect talk to the platform: their own module."""
    from mcp_runtime.cli import server_platform

    server_platform.register(app)


_register_platform_commands()
