"""`mcp-runtime server create|apply|export|patch --use-kube`: admin operations straight on the Kubernetes API.

These bypass the platform API (and its auth and audit log), so every command demands `--use-kube`.
(`server logs --use-kube` is the one `server logs` command, in logs.py.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.cli.common.kube import (
    ContextOption,
    KubeconfigOption,
    kube_client,
    kube_failure,
    require_use_kube,
)
from mcp_runtime.cli.common.output import OutputFormat, OutputOption, emit
from mcp_runtime.kube import KubeClient, KubeError
from mcp_runtime.kube.client import is_platform_annotation
from mcp_runtime.resources import (
    SERVER_KIND,
    MCPServer,
    ResourceError,
    dump_resource,
    load_resources,
    to_yaml,
    validate_model,
)
from mcp_runtime.resources.server import DEFAULT_APP_PORT

UseKubeOption = typer.Option(False, "--use-kube", help="Talk to the Kubernetes API directly (admin; needs RBAC).")
NamespaceOption = typer.Option(..., "--namespace", "-n", help="Namespace of the server.")

_SERVER_MANAGED_META = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
                        "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds", "finalizers")


def _exportable(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as a user would write it: no status, no server-managed or operator metadata."""
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in _SERVER_MANAGED_META}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if not is_platform_annotation(k)}
    meta.pop("annotations", None)
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": meta,
            "spec": obj.get("spec", {})}


def get_server(client: KubeClient, name: str, namespace: str) -> dict[str, Any]:
    """The MCPServer object as the API server has it, or a CliError (also when it does not exist)."""
    try:
        obj = client.get(SERVER_KIND, name, namespace)
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
    port: int = typer.Option(DEFAULT_APP_PORT, "--port", help="Port the server listens on."),
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
    obj = _exportable(get_server(kube_client(kubeconfig, context), name, namespace))
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
    current = get_server(client, name, namespace)
    merged = _merge(_exportable(current), body)
    try:
        validate_model(MCPServer, merged, source=f"MCPServer {name} after the patch")
    except ResourceError as exc:
        raise CliError(str(exc), hint="nothing was changed") from None
    try:
        client.patch(SERVER_KIND, name, namespace, body)
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
