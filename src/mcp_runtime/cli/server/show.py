"""`mcp-runtime server list|get|status`: the servers on the platform, as the active profile sees them.

A NAME without --namespace is found among the servers the caller can see.
"""

from __future__ import annotations

from typing import Any

import typer

from mcp_runtime.cli.common.api import NamespaceOption
from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.output import (
    OutputFormat,
    OutputOption,
    emit,
    emit_structured,
    print_fields,
    print_table,
)
from mcp_runtime.cli.server.common import locate, public_url, summary_row
from mcp_runtime.cli.server.kube_status import kube_status
from mcp_runtime.client import client

LIST_COLUMNS = [("NAME", "name"), ("NAMESPACE", "namespace"), ("READY", "ready"), ("STATUS", "phase"),
                ("URL", "url"), ("KIND", "kind")]
"""The columns docs/multi-team.md shows first (NAME NAMESPACE READY STATUS URL), then what this platform adds."""
STATUS_COLUMNS = [("NAME", "name"), ("NAMESPACE", "namespace"), ("READY", "ready"), ("STATUS", "phase"),
                  ("MESSAGE", "message")]
TOOL_COLUMNS = [("TOOL", "name"), ("TRUST", "requiredTrust"), ("SIDE EFFECT", "sideEffect"),
                ("DESCRIPTION", "description")]
CONDITION_COLUMNS = [("CONDITION", "type"), ("STATUS", "status"), ("REASON", "reason"), ("MESSAGE", "message")]
EVENT_COLUMNS = [("TIME", "at"), ("BY", "actor"), ("EVENT", "message")]


def list_servers(namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption) -> None:
    """List the servers you can see: READY replicas and STATUS (phase) as the runtime reports them."""
    api = client()
    items = api.get("runtime/servers", params={"namespace": namespace})["items"]
    if emit_structured(items, output):
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
    if emit_structured(server, output):
        return
    spec, meta = server.get("spec", {}), server["metadata"]
    row = summary_row(api, server)
    policy, session, run, remote = spec.get("policy", {}), spec.get("session", {}), spec.get("run"), spec.get("remote")
    print_fields([
        ("Name", meta["name"]), ("Namespace", meta.get("namespace")), ("Team ID", spec.get("teamID")),
        ("Description", spec.get("description")),
        ("Status", row["phase"] + (f" ({row['message']})" if row["message"] else "")),
        ("Ready", row["ready"]), ("URL", row["url"]), ("Kind", row["kind"]), ("Image", _image(spec)),
        ("Remote", _remote(remote)),
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
    print_table(tools, TOOL_COLUMNS)


def _remote(remote: dict[str, Any] | None) -> str | None:
    """`https://... (credential: header X-API-Key from secret saas/api-key; private CA)`: never the value."""
    if not remote:
        return None
    notes = []
    secret = remote.get("headerSecret")
    if secret:
        notes.append(f"credential: header {secret.get('header', 'Authorization')} from secret "
                     f"{secret['name']}/{secret['key']}")
    if remote.get("caBundle"):
        notes.append("private CA")
    return f"{remote['url']}" + (f" ({'; '.join(notes)})" if notes else "")


def _image(spec: dict[str, Any]) -> str | None:
    image, tag = spec.get("image"), spec.get("imageTag")
    if not image:
        return None
    return f"{image}:{tag}" if tag and ":" not in image.rsplit("/", 1)[-1] else str(image)


def status(name: str | None = typer.Argument(None, help="One server (default: all you can see)."),
           namespace: str | None = NamespaceOption, output: OutputFormat = OutputOption,
           use_kube: bool = typer.Option(False, "--use-kube", help="Read the MCPServers and their pods from the "
                                         "Kubernetes API (admin; needs RBAC): pod detail."),
           # not the shared KubeconfigOption: these only matter with --use-kube, and say so
           kubeconfig: str | None = typer.Option(None, "--kubeconfig", help="With --use-kube: kubeconfig file."),
           context: str | None = typer.Option(None, "--context", help="With --use-kube: kubeconfig context.")) -> None:
    """Phase, readiness and the runtime's message; with NAME also its conditions and recent events. With
    --use-kube, from the cluster, with each pod's readiness, container states, restarts and node."""
    if use_kube:
        if name is not None and not namespace:
            raise CliError("--use-kube with a NAME needs --namespace", hint=f"e.g. --namespace mcp-team-<team> {name}")
        kube_status(name, namespace, output, kubeconfig, context)
        return
    if name is None:
        _status_all(namespace, output)
        return
    api = client()
    ns = locate(api, name, namespace)
    answer = api.get(f"runtime/servers/{ns}/{name}/status")
    events = api.get(f"runtime/servers/{ns}/{name}/events", params={"limit": 10})["items"]
    if emit_structured({**answer, "events": events}, output):
        return
    ready = answer.get("readyReplicas")
    print_fields([("Server", f"{name} ({ns})"), ("Status", answer.get("phase")), ("Message", answer.get("message")),
                  ("Ready", f"{ready if ready is not None else 0}/{answer.get('replicas', 1)}"),
                  ("URL", public_url(api, answer.get("url")))])
    if answer.get("conditions"):
        typer.echo("")
        print_table(answer["conditions"], CONDITION_COLUMNS)
    if events:
        typer.echo("")
        print_table(events, EVENT_COLUMNS)


def _status_all(namespace: str | None, output: OutputFormat) -> None:
    api = client()
    rows = [summary_row(api, s) for s in api.get("runtime/servers", params={"namespace": namespace})["items"]]
    if emit_structured(rows, output):
        return
    if not rows:
        typer.echo("No servers.")
    else:
        emit(rows, output, columns=STATUS_COLUMNS)
