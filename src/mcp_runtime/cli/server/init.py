"""`mcp-runtime server init`: create or update a server's entry in `.mcp/servers.yaml`.

No platform needed: it writes a file, and `--from-server` asks a server running on this machine for its
tools. The point is to get tool names and side effects right before a deploy, because at the gateway a
mismatch turns into `tool_side_effect_unknown` denials.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.files import dump_yaml, resource_error, write_atomic
from mcp_runtime.cli.common.flags import check_unique, dns_label, parse_choice, split_spec, tool_name
from mcp_runtime.cli.common.metadata import MetadataDirOption, load_metadata, raw_entry, servers_path
from mcp_runtime.cli.server.common import TimeoutOption, count, discover
from mcp_runtime.cli.server.remote import (
    CaFileOption,
    CredentialFileOption,
    HeaderNameOption,
    HeaderPrefixOption,
    HeaderSecretOption,
    RemoteFlags,
    RemoteUrlOption,
    SessionTokenOption,
    discover_remote,
    remote_section,
)
from mcp_runtime.cli.server.stdio import discover_stdio, stdio_spec
from mcp_runtime.resources import (
    PolicyMode,
    ResourceError,
    Scope,
    ServerMetadata,
    ServersFile,
    SideEffect,
    ToolDecision,
    ToolSpec,
    Trust,
    dump_resource,
    validate_model,
)
from mcp_runtime.resources.pinning import ToolPin
from mcp_runtime.resources.server import DEFAULT_APP_PORT

STDIO_TIMEOUT = 120.0
"""At least this long for a stdio server's first answer: `npx`/`uvx` may download the package first."""


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
    stdio_command: str | None = typer.Option(
        None, "--stdio-command", metavar="COMMAND",
        help='A stdio MCP server: a command line ("npx -y @modelcontextprotocol/server-everything@2026.8.31") or '
             "a package (npm:<pkg>@<version>, pypi:<pkg>==<version>); its tools are discovered by starting it."),
    remote_url: str | None = RemoteUrlOption,
    header_secret: str | None = HeaderSecretOption,
    session_token: bool = SessionTokenOption,
    header_name: str = HeaderNameOption,
    header_prefix: str | None = HeaderPrefixOption,
    credential_file: Path | None = CredentialFileOption,
    ca_file: Path | None = CaFileOption,
    metadata_dir: Path = MetadataDirOption,
    description: str | None = typer.Option(None, "--description", help="Short summary for the catalog."),
    timeout: float = TimeoutOption,
) -> None:
    """Create or update the server's entry in <metadata-dir>/servers.yaml.

    Other servers in the file are kept as written; an entry with the same name is replaced only
    with --force. Tool names must match what the server implements: use --from-server to read them.
    """
    dns_label(name, "server name")
    scope_value = parse_choice(scope, Scope, "--scope") if scope is not None else None
    mode = parse_choice(policy_mode, PolicyMode, "--policy-mode") if policy_mode is not None else None
    decision = (parse_choice(default_decision, ToolDecision, "--default-decision")
                if default_decision is not None else None)
    plain, specs = _declared_tools(tool or [], tool_spec or [])

    path = servers_path(metadata_dir)
    current, raw = load_metadata(metadata_dir, missing_ok=True)
    replacing = current.get(name) is not None
    if replacing and not force:
        raise CliError(f"server {name!r} already exists in {path}",
                       hint="pass --force to replace it, or pick another name")
    if stdio_command is not None and (from_server is not None or run is not None or remote_url is not None):
        raise CliError("--stdio-command cannot be combined with --from-server, --run or --remote-url",
                       hint="a stdio server is started (and asked for its tools) from --stdio-command alone")
    stdio = stdio_spec(stdio_command) if stdio_command is not None else None
    flags = RemoteFlags(remote_url, header_secret, header_name, header_prefix, credential_file, ca_file,
                        session_token) if remote_url is not None else None
    found: tuple[dict[str, Any] | None, list[Any] | None, str | None]
    if stdio is not None:
        found = None, discover_stdio(stdio, max(timeout, STDIO_TIMEOUT)), stdio_command
    else:
        found = _discovery(flags, from_server, run, timeout, stray=bool(
            header_secret or credential_file or ca_file or session_token))
    remote, discovered, source = found
    tools = _tools(discovered, plain, specs, source)
    old = dict(raw_entry(raw, name) or {}) if replacing else {}
    entry = _scaffold_entry(old, name=name, description=description, scope=scope_value, tools=tools, mode=mode,
                            decision=decision, session_required=session_required, run=run, remote=remote)
    if stdio is not None:
        entry.pop("run", None)
        entry["stdio"] = {**dump_resource(stdio), "workingDir": str(Path.cwd().resolve())}
    meta = _write_entry(path, raw, entry)

    verb = "Replaced" if replacing else "Added"
    listed = f": {', '.join(meta.tool_names())}" if meta.tools else ""
    typer.echo(f"{verb} server {name!r} in {path} ({count(len(meta.tools), 'tool')}{listed})")
    if not meta.tools:
        typer.echo("note: no tools listed; every tool call will be denied as tool_side_effect_unknown until "
                   "you add them (--tool, --tool-spec or --from-server, with --force)")
    if discovered is not None:
        _review_note(discovered, specs)
    typer.echo(f"Next: mcp-runtime server validate --metadata-dir {metadata_dir}")


def _discovery(remote_flags: RemoteFlags | None, from_server: str | None, run: str | None, timeout: float, *,
               stray: bool) -> tuple[dict[str, Any] | None, list[Any] | None, str | None]:
    """(the entry's `remote` section, the discovered tools, where they came from) for the flags given."""
    if remote_flags is None:
        if stray:
            raise CliError("--header-secret, --session-token, --credential-file and --ca-file are for a remote server",
                           hint="add --remote-url URL")
        return None, (discover(from_server, timeout) if from_server else None), from_server
    if run is not None or from_server is not None:
        raise CliError("--remote-url is a server someone else runs: it takes neither --run nor --from-server",
                       hint="drop --run/--from-server (the remote's tools are discovered from --remote-url)")
    remote = remote_section(remote_flags)
    return remote, discover_remote(remote, remote_flags, timeout), str(remote["url"])


def _declared_tools(tools: list[str], tool_specs: list[str]) -> tuple[list[str], list[ToolSpec]]:
    """--tool names and --tool-spec specs, each name checked and given once."""
    plain = [tool_name(t, "--tool") for t in tools]
    specs = [_parse_tool_spec(v) for v in tool_specs]
    check_unique([*plain, *(s.name for s in specs)], "tool")
    return plain, specs


def _tools(discovered: list[Any] | None, plain: list[str], specs: list[ToolSpec], url: str | None) -> list[ToolSpec]:
    """The entry's tools: the discovered ones (named on stdout), else those the flags declare (read, low)."""
    if discovered is None or url is None:
        return [ToolSpec(name=t, side_effect=SideEffect.read, required_trust=Trust.low) for t in plain] + specs
    typer.echo("Discovered: " + (", ".join(sorted(t.name for t in discovered)) or "(no tools)"))
    return _merge_discovered(discovered, plain, specs, url)


def _write_entry(path: Path, raw: dict[str, Any], entry: dict[str, Any]) -> ServerMetadata:
    """Validate the entry, then the whole file with it in place, then write the file (atomically)."""
    try:
        meta = validate_model(ServerMetadata, entry, source=f"{path}: server {entry['name']!r}")
    except ResourceError as exc:
        raise resource_error(exc, "fix the flags (or the existing entry) and re-run") from None
    raw["servers"] = _upsert(raw["servers"], entry)
    try:
        validate_model(ServersFile, raw, source=str(path))  # the whole file must still load
    except ResourceError as exc:
        raise resource_error(exc, f"fix {path} and re-run") from None
    write_atomic(path, dump_yaml(raw))
    return meta


def _parse_tool_spec(value: str) -> ToolSpec:
    """`name:trust:side-effect`, e.g. `create_task:medium:write`."""
    name, trust, side_effect = split_spec(value, "--tool-spec", "name:trust:side-effect",
                                          "create_task:medium:write")
    name = tool_name(name, "--tool-spec")
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
        tool_name(name, f"the server at {url} lists a tool whose name")
        spec = overrides.get(name) or ToolSpec(name=name, side_effect=SideEffect.read, required_trust=Trust.low)
        text = (getattr(found, "description", "") or "").strip()
        if text and spec.description is None:
            spec = spec.model_copy(update={"description": text[:4096]})
        definition = getattr(found, "definition", None)
        if definition:  # the reviewed definition: the gateway hides the tool if the server changes it
            try:
                spec = spec.model_copy(update={"pin": ToolPin.of(definition)})
            except ValueError as exc:
                raise CliError(f"--from-server: {exc}", hint="a tool this large cannot be reviewed") from None
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
    typer.echo("note: each tool's definition is pinned as the server lists it now; the gateway hides a tool "
               "whose definition changes until an owner approves it (mcp-runtime server tools approve)")
    typer.echo("note: discovered tools are recorded with sideEffect read and requiredTrust low; review the "
               "tools that write or delete and set them with --tool-spec name:trust:write|destructive --force "
               "(or edit servers.yaml)")
    if hinted:
        typer.echo(f"note: these tools say they are not read-only: {', '.join(hinted)}")


def _scaffold_entry(old: dict[str, Any], *, name: str, description: str | None, scope: Scope | None,
                    tools: list[ToolSpec], mode: PolicyMode | None, decision: ToolDecision | None,
                    session_required: bool | None, run: str | None,
                    remote: dict[str, Any] | None = None) -> dict[str, Any]:
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
    if remote is None:
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
    if remote is not None:
        entry["remote"] = remote
        for deployed in ("image", "imageTag", "run", "envVars", "secretEnvVars", "port", "replicas"):
            old.pop(deployed, None)  # a server turned remote keeps nothing that would deploy it
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
