"""What `access grant` and `access session` share: the flags that build a grant or session YAML (`init`),
writing it, and reading YAML files to send to the platform and applying them there (`apply`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

from mcp_runtime.cli.common.api import namespaces_named
from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.files import resource_error, write_atomic
from mcp_runtime.cli.common.output import OutputFormat, emit
from mcp_runtime.client import ApiCallError, ApiClient
from mcp_runtime.resources import (
    MCPAccessGrant,
    MCPAgentSession,
    ResourceError,
    load_resource,
    to_yaml,
    validate_model,
)
from mcp_runtime.resources.common import GROUP_VERSION
from mcp_runtime.resources.kinds import kind_name

# --- init: flags and writing the YAML ------------------------------------------------------------
ServerOption = typer.Option(..., "--server", help="Name of the MCPServer it applies to.")
ServerNamespaceOption = typer.Option(..., "--namespace", help="The server's namespace, e.g. mcp-team-acme.")
HumanOption = typer.Option(None, "--human-id", help="Subject: the human (user id).")
AgentOption = typer.Option(None, "--agent-id", help="Subject: the agent, e.g. cursor.")
TeamOption = typer.Option(None, "--team-id", help="Subject: the team id (another team's id shares the server).")
ExpiresInOption = typer.Option(None, "--expires-in", help="Lifetime from now, e.g. 30m, 4h, 7d.")
ExpiresAtOption = typer.Option(None, "--expires-at", help="Absolute expiry, ISO 8601, e.g. 2026-01-31T12:00:00Z.")
FileOutputOption = typer.Option(..., "--output", help="File to write the YAML to.")

# --- apply: the file to send ---------------------------------------------------------------------
FileOption = typer.Option(..., "--file", "-f", help="YAML file (from `access grant|session init`).")


def subject(human_id: str | None, agent_id: str | None, team_id: str | None) -> dict[str, str]:
    """The `subject` of a grant or session: at least one of the three ids."""
    given = {k: v for k, v in (("humanID", human_id), ("agentID", agent_id), ("teamID", team_id)) if v}
    if not given:
        raise CliError("no subject given", hint="pass at least one of --agent-id, --team-id, --human-id")
    return given


def document(kind: type[MCPAccessGrant] | type[MCPAgentSession], name: str, namespace: str,
             spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": GROUP_VERSION, "kind": kind_name(kind), "metadata": {"name": name, "namespace": namespace},
            "spec": spec}


def write_resource(kind: type[MCPAccessGrant] | type[MCPAgentSession], data: dict[str, Any], output: Path,
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


# --- the platform: read, apply, locate ------------------------------------------------------------
def read_documents(path: Path, kind: str) -> list[dict[str, Any]]:
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


def apply(api: ApiClient, collection: str, doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create, or replace when it exists (kubectl-apply semantics); (answer, created)."""
    try:
        return api.post(f"runtime/{collection}", doc), True
    except ApiCallError as exc:
        if exc.code != "already_exists":
            raise
    meta = doc.get("metadata", {})
    namespace = meta.get("namespace") or doc.get("spec", {}).get("serverRef", {}).get("namespace")
    return api.put(f"runtime/{collection}/{namespace}/{meta.get('name')}", doc), False


def emit_applied(results: list[dict[str, Any]], output: OutputFormat) -> None:
    """`-o json|yaml` of `apply`: the one answer, or the list when the file held several."""
    if output != OutputFormat.table:
        emit(results[0] if len(results) == 1 else results, output)


def locate(api: ApiClient, collection: str, name: str, namespace: str | None) -> str:
    """The namespace of `name` when not given: the only visible one with that name."""
    if namespace:
        return namespace
    found = namespaces_named(api, collection, name)
    word = collection.rstrip("s")
    if not found:
        raise CliError(f"{word} {name} not found", hint=f"mcp-runtime access {word} list")
    if len(found) > 1:
        raise CliError(f"{word} {name} exists in several namespaces ({', '.join(found)})", hint="pass --namespace")
    return found[0]
