"""`server create|apply|export|patch|logs --use-kube`: admin operations straight on the Kubernetes API.

These bypass the platform API (and its auth and audit log), so every command demands `--use-kube`.
They are plain functions; `register(server_app)` adds them to the `server` command group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from mcp_runtime.cli.errors import CliError
from mcp_runtime.cli.kube_common import ContextOption, KubeconfigOption, kube_client, kube_failure, require_use_kube
from mcp_runtime.cli.output import OutputFormat, OutputOption, emit
from mcp_runtime.kube import ANNOTATION_APPLIED_HASH, KubeClient, KubeError
from mcp_runtime.manifests import APP_CONTAINER, GATEWAY_CONTAINER
from mcp_runtime.manifests.common import LABEL_SERVER
from mcp_runtime.manifests.names import label_value
from mcp_runtime.resources import (
    MCPServer,
    ResourceError,
    dump_resource,
    load_resources,
    to_yaml,
    validate_model,
)

UseKubeOption = typer.Option(False, "--use-kube", help="Talk to the Kubernetes API directly (admin; needs RBAC).")
NamespaceOption = typer.Option(..., "--namespace", "-n", help="Namespace of the server.")

_SERVER_MANAGED_META = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
                        "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "finalizers")


def _exportable(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as a user would write it: no status, no server-managed or operator metadata."""
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in _SERVER_MANAGED_META}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k != ANNOTATION_APPLIED_HASH and not k.startswith(("operator.mcpruntime.org/", "kopf."))}
    meta.pop("annotations", None)
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": meta,
            "spec": obj.get("spec", {})}


def _get_server(client: KubeClient, name: str, namespace: str) -> dict[str, Any]:
    try:
        obj = client.get("MCPServer", name, namespace)
    except KubeError as exc:
        raise kube_failure(exc, f"cannot read MCPServer {namespace}/{name}") from None
    if obj is None:
        raise CliError(f"MCPServer {name} not found in namespace {namespace}",
                       hint=f"list them: kubectl get mcpservers -n {namespace}")
    return obj


def server_apply(
    file: Path = typer.Option(..., "--file", "-f", help="YAML with MCPServer / MCPAccessGrant / MCPAgentSession."),
    namespace: str | None = typer.Option(None, "--namespace", "-n", help="For documents without a namespace."),
    use_kube: bool = UseKubeOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Create or update the resources in FILE directly in the cluster (validated first)."""
    require_use_kube(use_kube, "server apply")
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror}") from None
    try:
        resources = load_resources(text, source=str(file))
    except ResourceError as exc:
        raise CliError(str(exc)) from None
    if not resources:
        raise CliError(f"{file} holds no resources", hint="write an MCPServer manifest (server generate)")
    client = kube_client(kubeconfig, context)
    for resource in resources:
        doc = dump_resource(resource)
        doc.pop("status", None)
        meta = doc["metadata"]
        meta["namespace"] = meta.get("namespace") or namespace
        if not meta["namespace"]:
            raise CliError(f"{resource.kind} {resource.metadata.name} has no namespace",
                           hint="set metadata.namespace or pass --namespace")
        try:
            action, _ = client.apply(doc)
        except KubeError as exc:
            raise kube_failure(exc, f"cannot apply {resource.kind} {meta['namespace']}/{meta['name']}") from None
        shown = {"created": "created", "updated": "configured", "unchanged": "unchanged"}[action]
        typer.echo(f"{resource.kind.lower()}/{meta['name']} {shown} (namespace {meta['namespace']})")


def server_create(
    name: str = typer.Argument(..., help="Server name."),
    image: str = typer.Option(..., "--image", help="Image repository (or full reference)."),
    tag: str | None = typer.Option(None, "--tag", help="Image tag (default latest)."),
    namespace: str = NamespaceOption,
    port: int = typer.Option(8088, "--port", help="Port the server listens on."),
    use_kube: bool = UseKubeOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Create a minimal MCPServer directly in the cluster (add tools with `server patch`)."""
    require_use_kube(use_kube, "server create")
    spec: dict[str, Any] = {"image": image, "port": port}
    if tag:
        spec["imageTag"] = tag
    try:
        server = validate_model(MCPServer, {"metadata": {"name": name, "namespace": namespace}, "spec": spec})
    except ResourceError as exc:
        raise CliError(str(exc)) from None
    client = kube_client(kubeconfig, context)
    try:
        client.create(dump_resource(server))
    except KubeError as exc:
        raise kube_failure(exc, f"cannot create MCPServer {namespace}/{name}") from None
    typer.echo(f"mcpserver/{name} created (namespace {namespace})")


def server_export(
    name: str = typer.Argument(..., help="Server name."),
    namespace: str = NamespaceOption,
    output: OutputFormat = OutputOption,
    use_kube: bool = UseKubeOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Print the server as an apply-able manifest (YAML by default; no status or server-managed fields)."""
    require_use_kube(use_kube, "server export")
    obj = _exportable(_get_server(kube_client(kubeconfig, context), name, namespace))
    if output == OutputFormat.json:
        emit(obj, output)
    else:
        typer.echo(to_yaml(obj), nl=False)


def server_patch(
    name: str = typer.Argument(..., help="Server name."),
    namespace: str = NamespaceOption,
    patch: str = typer.Option(..., "--patch", "-p", help='JSON merge patch, e.g. \'{"spec":{"imageTag":"v2"}}\'.'),
    use_kube: bool = UseKubeOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Apply a JSON merge patch to the server; the result is validated before it is sent."""
    require_use_kube(use_kube, "server patch")
    try:
        body = json.loads(patch)
    except ValueError as exc:
        raise CliError(f"--patch is not JSON: {exc}", hint='e.g. --patch \'{"spec":{"imageTag":"v2"}}\'') from None
    if not isinstance(body, dict):
        raise CliError("--patch must be a JSON object (a merge patch)")
    client = kube_client(kubeconfig, context)
    current = _get_server(client, name, namespace)
    merged = _merge(_exportable(current), body)
    try:
        validate_model(MCPServer, merged, source=f"MCPServer {name} after the patch")
    except ResourceError as exc:
        raise CliError(str(exc), hint="nothing was changed") from None
    try:
        client.patch("MCPServer", name, namespace, body)
    except KubeError as exc:
        raise kube_failure(exc, f"cannot patch MCPServer {namespace}/{name}") from None
    typer.echo(f"mcpserver/{name} patched (namespace {namespace})")


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def server_logs(
    name: str = typer.Argument(..., help="Server name."),
    namespace: str = NamespaceOption,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep streaming new lines."),
    tail: int | None = typer.Option(None, "--tail", help="Only the last N lines."),
    gateway: bool = typer.Option(False, "--gateway", help="The mcp-gateway sidecar instead of the app."),
    use_kube: bool = UseKubeOption,
    kubeconfig: str | None = KubeconfigOption,
    context: str | None = ContextOption,
) -> None:
    """Print the logs of the server's pods (the app container, or the gateway with --gateway)."""
    require_use_kube(use_kube, "server logs")
    client = kube_client(kubeconfig, context)
    _get_server(client, name, namespace)
    container = GATEWAY_CONTAINER if gateway else APP_CONTAINER
    try:
        pods = client.list("Pod", namespace, label_selector=f"{LABEL_SERVER}={label_value(name)}")
    except KubeError as exc:
        raise kube_failure(exc, f"cannot list the pods of {namespace}/{name}") from None
    if not pods:
        raise CliError(f"MCPServer {name} has no pods yet",
                       hint=f"see why: kubectl -n {namespace} describe deployment {name}")
    pods.sort(key=lambda p: p["metadata"]["name"])
    chosen = pods[:1] if follow else pods
    for pod in chosen:
        pod_name = pod["metadata"]["name"]
        prefix = f"[{pod_name}] " if len(chosen) > 1 else ""
        path = f"/api/v1/namespaces/{namespace}/pods/{pod_name}/log"
        try:
            for line in client.stream_lines(path, query={"container": container, "follow": follow,
                                                         "tailLines": tail}):
                typer.echo(prefix + line)
        except KubeError as exc:
            raise kube_failure(exc, f"cannot read the logs of pod {pod_name}") from None


def register(server_app: typer.Typer) -> None:
    """Add the --use-kube commands to the `server` group."""
    server_app.command("create")(server_create)
    server_app.command("apply")(server_apply)
    server_app.command("export")(server_export)
    server_app.command("patch")(server_patch)
    # `server logs` is one command (server_platform.logs): the platform's logs, or these with --use-kube
