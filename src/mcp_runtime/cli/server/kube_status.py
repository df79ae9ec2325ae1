"""`mcp-runtime server status --use-kube`: the servers' status straight from the cluster, with pod detail
(each pod's readiness, why a container is not running, restarts, node) and the recent events."""

from __future__ import annotations

from typing import Any

import typer

from mcp_runtime.cli.common.kube import kube_client, kube_failure
from mcp_runtime.cli.common.output import OutputFormat, emit_structured, print_fields, print_table
from mcp_runtime.cli.server.kube import get_server
from mcp_runtime.kube import KubeError
from mcp_runtime.kube.pods import server_detail, servers

SERVER_COLUMNS = [("NAME", "name"), ("NAMESPACE", "namespace"), ("READY", "ready"), ("STATUS", "phase"),
                  ("MESSAGE", "message")]
POD_COLUMNS = [("SERVER", "server"), ("POD", "pod"), ("READY", "ready"), ("STATUS", "status"),
               ("RESTARTS", "restarts"), ("NODE", "node"), ("STARTED", "started")]
CONTAINER_COLUMNS = [("POD", "pod"), ("CONTAINER", "container"), ("READY", "ready"), ("STATE", "state"),
                     ("REASON", "reason"), ("RESTARTS", "restarts"), ("IMAGE", "image")]
CONDITION_COLUMNS = [("CONDITION", "type"), ("STATUS", "status"), ("REASON", "reason"), ("MESSAGE", "message")]
EVENT_COLUMNS = [("LAST SEEN", "lastSeen"), ("TYPE", "type"), ("REASON", "reason"), ("OBJECT", "object"),
                 ("MESSAGE", "message")]


def kube_status(name: str | None, namespace: str | None, output: OutputFormat, kubeconfig: str | None,
                context: str | None) -> None:
    client = kube_client(kubeconfig, context)
    try:
        if name is not None:
            detail = server_detail(client, get_server(client, name, namespace or ""))
        else:
            found = [server_detail(client, s, events=0) for s in servers(client, namespace)]
    except KubeError as exc:
        raise kube_failure(exc, "cannot read the servers") from None
    if name is not None:
        _print_one(detail, output)
        return
    if emit_structured(found, output):
        return
    if not found:
        typer.echo("No MCPServers" + (f" in namespace {namespace}." if namespace else " in the cluster."))
        return
    print_table(found, SERVER_COLUMNS)
    pods = [{**p, "server": s["name"]} for s in found for p in s["pods"]]
    typer.echo("")
    if pods:
        print_table(pods, POD_COLUMNS)
    else:
        typer.echo("No pods yet.")


def _print_one(detail: dict[str, Any], output: OutputFormat) -> None:
    if emit_structured(detail, output):
        return
    print_fields([("Server", f"{detail['name']} ({detail['namespace']})"), ("Status", detail["phase"]),
                  ("Message", detail["message"]), ("Ready", detail["ready"]), ("URL", detail["url"])])
    if detail["conditions"]:
        typer.echo("")
        print_table(detail["conditions"], CONDITION_COLUMNS)
    typer.echo("")
    if not detail["pods"]:
        typer.echo(f"No pods yet: kubectl -n {detail['namespace']} describe deployment {detail['name']}")
    else:
        print_table([{**p, "server": detail["name"]} for p in detail["pods"]], POD_COLUMNS)
        typer.echo("")
        print_table([c for p in detail["pods"] for c in p["containers"]], CONTAINER_COLUMNS)
    if detail["events"]:
        typer.echo("")
        print_table(detail["events"], EVENT_COLUMNS)
