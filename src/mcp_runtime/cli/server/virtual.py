"""`mcp-runtime server virtual`: virtual servers, one governed endpoint over several servers
(docs/virtual-servers.md). `init` writes the YAML; `apply`, `list`, `get`, `delete` work on the platform.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

from mcp_runtime.cli.access.common import FileOption, apply, emit_applied, locate, read_documents
from mcp_runtime.cli.common.api import NamespaceOption
from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.files import resource_error, write_atomic
from mcp_runtime.cli.common.flags import parse_choice
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit, emit_structured
from mcp_runtime.client import client
from mcp_runtime.resources import (
    VIRTUAL_KIND,
    ConflictPolicy,
    MCPVirtualServer,
    ResourceError,
    ServersFile,
    dump_resource,
    to_yaml,
    validate_model,
)
from mcp_runtime.resources.common import GROUP_VERSION

app = typer.Typer(help="Virtual servers: one MCP endpoint (/v/<name>/mcp) over several governed servers.",
                  no_args_is_help=True)

COLUMNS = [("NAME", "metadata.name"), ("NAMESPACE", "metadata.namespace"), ("MEMBERS", "members"),
           ("POLICY", "spec.conflictPolicy"), ("STATUS", "status.phase"), ("URL", "status.url")]


@app.command("init")
def virtual_init(
    name: str = typer.Argument(..., help="Virtual server name (its endpoint is /v/<name>/mcp)."),
    namespace: str = typer.Option(..., "--namespace", "-n", help="The owning team's namespace."),
    member: list[str] = typer.Option(..., "--member", metavar="SERVER[.NAMESPACE]",
                                     help="A member server (another namespace after a dot); repeat."),
    prefix: list[str] | None = typer.Option(None, "--prefix", metavar="SERVER=PREFIX",
                                            help="Tool name prefix of a member (default '<server>_')."),
    include: list[str] | None = typer.Option(None, "--include", metavar="SERVER:TOOL",
                                             help="Offer only these tools of a member; repeat."),
    exclude: list[str] | None = typer.Option(None, "--exclude", metavar="SERVER:TOOL",
                                             help="Hide a tool of a member; repeat."),
    rename: list[str] | None = typer.Option(None, "--rename", metavar="SERVER:TOOL=NAME",
                                            help="Expose a member's tool under another name; repeat."),
    conflict_policy: str = typer.Option("prefix", "--conflict-policy", help="prefix or rename."),
    output: Path = typer.Option(..., "--output", help="File to write the YAML to."),
) -> None:
    """Write an MCPVirtualServer YAML (then 'server virtual apply -f FILE')."""
    policy = parse_choice(conflict_policy, ConflictPolicy, "--conflict-policy")
    members: dict[str, dict[str, Any]] = {}
    for value in member:
        server, _, ns = value.partition(".")
        members[server] = {"serverRef": {"name": server, **({"namespace": ns} if ns else {})}}
    for value in prefix or []:
        server, sep, text = value.partition("=")
        _member(members, server, "--prefix", value, sep)["prefix"] = text
    for flag, values, key in (("--include", include, "include"), ("--exclude", exclude, "exclude")):
        for value in values or []:
            server, tool = _pair(value, flag, "payments:echo")
            _member(members, server, flag, value).setdefault("tools", {}).setdefault(key, []).append(tool)
    for value in rename or []:
        source, sep, public = value.partition("=")
        server, tool = _pair(source, "--rename", "payments:echo=pay_echo")
        _member(members, server, "--rename", value, sep).setdefault("rename", {})[tool] = public
    doc = {"apiVersion": GROUP_VERSION, "kind": VIRTUAL_KIND, "metadata": {"name": name, "namespace": namespace},
           "spec": {"conflictPolicy": policy.value, "members": list(members.values())}}
    try:
        resource = validate_model(MCPVirtualServer, doc, source=f"virtual server {name!r}")
    except ResourceError as exc:
        raise resource_error(exc, "fix the flags and re-run") from None
    write_atomic(output, to_yaml(resource))
    typer.echo(f"wrote {output}")


def _pair(value: str, flag: str, example: str) -> tuple[str, str]:
    server, sep, tool = value.partition(":")
    if not sep or not server or not tool:
        raise CliError(f"{flag} {value!r} is not SERVER:TOOL", hint=f"for example {flag} {example}")
    return server, tool


def _member(members: dict[str, dict[str, Any]], server: str, flag: str, value: str, sep: str = "=") -> dict[str, Any]:
    if not sep:
        raise CliError(f"{flag} {value!r} is not in the form the flag takes", hint=f"see --help for {flag}")
    if server not in members:
        raise CliError(f"{flag} {value!r} names {server!r}, which is not a --member", hint=f"add --member {server}")
    return members[server]


def _shown(item: dict[str, Any]) -> dict[str, Any]:
    members = [m["serverRef"]["name"] for m in item.get("spec", {}).get("members", [])]
    return {**item, "members": ", ".join(members)}


def _documents(file: Path, namespace: str | None) -> list[dict[str, Any]]:
    """MCPVirtualServer YAML, or the `virtualServers:` of a `.mcp/servers.yaml`."""
    try:
        raw = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CliError(f"cannot read {file}: {exc}") from None
    if not (isinstance(raw, dict) and "virtualServers" in raw):
        return read_documents(file, VIRTUAL_KIND)
    try:
        entries = validate_model(ServersFile, raw, source=str(file)).virtual_servers
        return [dump_resource(entry.to_resource(namespace)) for entry in entries]
    except (ResourceError, ValueError) as exc:
        raise CliError(str(exc)) from None


@app.command("apply")
def virtual_apply(file: Path = FileOption, namespace: str | None = typer.Option(
        None, "--namespace", "-n", help="Namespace of `.mcp/servers.yaml` entries that name none."),
        output: OutputFormat = OutputOption) -> None:
    """Create or update the virtual server(s) in a YAML file: MCPVirtualServer documents, or the
    `virtualServers:` of a `.mcp/servers.yaml` (each member must be visible to you)."""
    api = client()
    results = []
    for doc in _documents(file, namespace):
        virtual, created = apply(api, "virtualservers", doc)
        results.append(virtual)
        if output == OutputFormat.table:
            meta = virtual["metadata"]
            typer.echo(f"virtual server {meta['name']} {'created' if created else 'updated'} in "
                       f"{meta['namespace']}: /v/{meta['name']}/mcp")
    emit_applied(results, output)


@app.command("list")
def virtual_list(namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """List the virtual servers you can see."""
    items = client().get("runtime/virtualservers", params={"namespace": namespace})["items"]
    emit([_shown(v) for v in items] if output == OutputFormat.table else items, output, columns=COLUMNS)


@app.command("get")
def virtual_get(name: str, namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """Show one virtual server."""
    api = client()
    virtual = api.get(f"runtime/virtualservers/{locate(api, 'virtualservers', name, namespace)}/{name}")
    emit(_shown(virtual) if output == OutputFormat.table else virtual, output, columns=COLUMNS)


@app.command("delete")
def virtual_delete(name: str, namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """Delete a virtual server; its open client sessions end (members are not touched)."""
    api = client()
    ns = locate(api, "virtualservers", name, namespace)
    virtual = api.delete(f"runtime/virtualservers/{ns}/{name}")
    if not emit_structured(virtual, output):
        typer.echo(f"virtual server {name} deleted in {ns}")
