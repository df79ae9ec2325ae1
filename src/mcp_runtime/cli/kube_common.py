"""Shared pieces of the commands that talk to the Kubernetes API directly."""

from __future__ import annotations

import typer

from mcp_runtime.cli.errors import CliError
from mcp_runtime.kube import KubeClient, KubeConfigError, KubeError

KubeconfigOption = typer.Option(None, "--kubeconfig", envvar="KUBECONFIG",
                                help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).")
ContextOption = typer.Option(None, "--context", help="Kubeconfig context (default: the current one).")


def kube_client(kubeconfig: str | None = None, context: str | None = None) -> KubeClient:
    """A client for the current cluster, or a CliError that says what to set."""
    try:
        return KubeClient.from_environment(kubeconfig, context)
    except KubeConfigError as exc:
        raise CliError(str(exc), hint="export KUBECONFIG=~/.kube/config, or pass --kubeconfig") from None


def kube_failure(exc: KubeError, doing: str) -> CliError:
    hints = {401: "your kubeconfig credentials were refused; refresh them",
             403: "your kubeconfig user lacks this permission; admin commands need cluster-admin",
             404: "check the name and --namespace",
             0: "check that the cluster is up: kubectl cluster-info"}
    return CliError(f"{doing}: {exc.message}", hint=hints.get(exc.status))


def require_use_kube(use_kube: bool, command: str) -> None:
    if not use_kube:
        raise CliError(
            f"`{command}` talks to the Kubernetes API directly and bypasses platform auth",
            hint="add --use-kube (needs cluster RBAC), or use `server deploy` through the platform API")
