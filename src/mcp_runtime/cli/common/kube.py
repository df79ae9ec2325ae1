"""What the commands that talk to the Kubernetes API directly share: the connection flags, the client,
one way to turn an API failure into a `CliError`, printing cluster checks and pod logs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import typer

from mcp_runtime.cli.common.errors import CliError
from mcp_runtime.kube import KubeClient, KubeConfigError, KubeError
from mcp_runtime.kube.doctor import CheckResult
from mcp_runtime.kube.platform import SYSTEM_NAMESPACE

KubeconfigOption = typer.Option(None, "--kubeconfig", envvar="KUBECONFIG",
                                help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).")
ContextOption = typer.Option(None, "--context", help="Kubeconfig context (default: the current one).")
PlatformNamespaceOption = typer.Option(SYSTEM_NAMESPACE, "--namespace", help="The platform's namespace.")

_HINTS = {401: "your kubeconfig credentials were refused; refresh them",
          403: "your kubeconfig user lacks this permission; admin commands need cluster-admin",
          404: "check the name and --namespace",
          0: "check that the cluster is up: kubectl cluster-info"}


def kube_client(kubeconfig: str | None = None, context: str | None = None) -> KubeClient:
    """A client for the current cluster, or a CliError that says what to set."""
    try:
        return KubeClient.from_environment(kubeconfig, context)
    except KubeConfigError as exc:
        raise CliError(str(exc), hint="export KUBECONFIG=~/.kube/config, or pass --kubeconfig") from None


def kube_failure(exc: KubeError, doing: str) -> CliError:
    """`<doing>: <what the API server said>`, with a hint chosen by the HTTP status."""
    return CliError(f"{doing}: {exc.message}", hint=_HINTS.get(exc.status))


def require_use_kube(use_kube: bool, command: str) -> None:
    if not use_kube:
        raise CliError(
            f"`{command}` talks to the Kubernetes API directly and bypasses platform auth",
            hint="add --use-kube (needs cluster RBAC), or use `server deploy` through the platform API")


def print_pod_logs(client: KubeClient, pods: list[dict[str, Any]], query: Mapping[str, Any], *, follow: bool,
                   failure: str) -> None:
    """Every pod's log in name order, each line prefixed `[pod] ` when there are several; with `follow`,
    the first pod only (streams do not interleave). `failure` names the pod: `{namespace}`, `{pod}`."""
    pods = sorted(pods, key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"]))
    chosen = pods[:1] if follow else pods
    for pod in chosen:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        prefix = f"[{name}] " if len(chosen) > 1 else ""
        try:
            for line in client.stream_lines(f"/api/v1/namespaces/{namespace}/pods/{name}/log",
                                            query={**query, "follow": follow}):
                typer.echo(prefix + line)
        except KubeError as exc:
            raise kube_failure(exc, failure.format(namespace=namespace, pod=name)) from None


def print_checks(results: list[CheckResult]) -> None:
    """`PASS  id  detail` lines (and the fix under a failed or warned check), as `cluster doctor` and
    `bootstrap` print them."""
    for result in results:
        typer.echo(f"{result.level.value.upper():<4}  {result.id:<24} {result.detail}")
        if result.fix:
            typer.echo(f"      fix: {result.fix}")


def object_ref(obj: Mapping[str, Any]) -> str:
    """`kind/name -n namespace`, as kubectl prints an applied object."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{str(obj.get('kind', '')).lower()}/{meta.get('name')}" + (f" -n {ns}" if ns else "")


def print_applied(results: list[tuple[str, dict[str, Any]]]) -> None:
    """One `kind/name [-n ns] <action>` line per applied object."""
    for action, obj in results:
        typer.echo(f"{object_ref(obj)} {action}")
